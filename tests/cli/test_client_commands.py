"""The client commands' contract with scripts, without a stack: the command line, exit codes and
one-line messages. A local fake service answers only where its answer is what is under test
(the error-body shapes, a paged run list); the real services are in test_client_stack.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from retention_cli.client import COMMANDS
from retention_cli.client.customers import SORT_KEYS
from retention_cli.client.http import ExitCode, describe_problem
from retention_cli.main import main
from retention_scoring.lists import SortKey
from retention_shared.embedded_broker import free_port
from tests.support.paths import REPO


def retention(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The command as a script runs it: a process of its own, with only `env`'s RETENTION_*."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RETENTION_")}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "retention_cli.main", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
    )


@dataclass
class FakeService:
    """Answers GET `path` with a canned (status, content type, body); records each query."""

    answers: dict[str, list[tuple[int, str, str]]]
    queries: list[dict[str, list[str]]] = field(default_factory=list)
    url: str = ""


@contextmanager
def fake_service(answers: dict[str, list[tuple[int, str, str]]]) -> Iterator[FakeService]:
    fake = FakeService(answers)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            fake.queries.append(parse_qs(parts.query))
            queue = fake.answers.get(parts.path) or [(404, "text/plain", "no such path")]
            status, content_type, body = queue.pop(0) if len(queue) > 1 else queue[0]
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


PROBLEM = "application/problem+json"


def test_version_is_the_package_version() -> None:
    result = retention("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"retention {version('retention')}"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_client_command_has_a_description_and_an_example(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as shown:
        main([command, "--help"])
    assert shown.value.code == 0
    text = capsys.readouterr().out
    description = text.split("\n\n")[1]
    assert len(description) > 40, text
    examples = text.split("examples:\n", 1)[1]
    assert f"  retention {command}" in examples
    # RawDescriptionHelpFormatter: each example keeps its own line.
    assert all(line.startswith("  ") for line in examples.strip("\n").splitlines()[:2])


@pytest.mark.parametrize("command", ["up", "demo", "backtest"])
def test_the_stack_commands_are_still_there(command: str) -> None:
    with pytest.raises(SystemExit) as shown:
        main([command, "--help"])
    assert shown.value.code == 0


def test_sort_keys_are_scorings() -> None:
    assert tuple(SORT_KEYS) == tuple(key.value for key in SortKey)


def test_no_api_key_is_a_configuration_error() -> None:
    result = retention("model")
    assert result.returncode == ExitCode.USAGE == 2
    assert result.stderr == "retention model: no API key: set RETENTION_API_KEY or pass --api-key\n"


def test_bad_configuration_is_named() -> None:
    bad_port = retention("runs", RETENTION_API_KEY="k", RETENTION_TRAINER_PORT="eighty")
    assert bad_port.returncode == 2
    assert bad_port.stderr.startswith("retention runs: RETENTION_TRAINER_PORT: Input should be")
    bad_url = retention("score", "c1", "--scoring-url", "localhost:8000", RETENTION_API_KEY="k")
    assert bad_url.returncode == 2
    assert "scoring URL 'localhost:8000' is not an http:// or https:// URL" in bad_url.stderr


def test_a_bad_command_line_is_argparses_code_2() -> None:
    result = retention("customers", "--limit", "0", RETENTION_API_KEY="k")
    assert result.returncode == 2 and "--limit: 0: must be at least 1" in result.stderr
    result = retention("customers", "--sort", "name", RETENTION_API_KEY="k")
    assert result.returncode == 2 and "invalid choice: 'name'" in result.stderr


def test_a_missing_file_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    result = retention("upload", str(tmp_path / "orders.csv"), RETENTION_API_KEY="k")
    assert result.returncode == 2
    assert result.stderr == f"retention upload: {tmp_path / 'orders.csv'}: no such file\n"


def test_a_service_that_is_not_there_is_exit_code_3() -> None:
    port = free_port()  # nothing listens on it
    result = retention("model", RETENTION_API_KEY="k", RETENTION_SCORING_PORT=str(port))
    assert result.returncode == ExitCode.UNREACHABLE == 3
    assert result.stderr.startswith(
        f"retention model: cannot connect to scoring at http://127.0.0.1:{port} "
    )
    assert result.stderr.count("\n") == 1 and result.stdout == ""


def test_the_url_variable_wins_over_the_port() -> None:
    port = free_port()
    result = retention(
        "runs",
        RETENTION_API_KEY="k",
        RETENTION_TRAINER_PORT="1",
        RETENTION_TRAINER_URL=f"http://127.0.0.1:{port}/",
    )
    assert result.returncode == 3
    assert f"cannot connect to trainer at http://127.0.0.1:{port} " in result.stderr


# The error bodies the services send: RFC 9457 problems, and the `{"detail": ...}` shapes they
# answered before (a sentence, one {field, problem}, a list of them, ingest's coded error).
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {
                "type": "about:blank",
                "title": "Unprocessable Entity",
                "status": 422,
                "detail": "query.min_churn: Input should be less than or equal to 1",
                "errors": [
                    {
                        "field": "query.min_churn",
                        "problem": "Input should be less than or equal to 1",
                    }
                ],
            },
            "query.min_churn: Input should be less than or equal to 1",
        ),
        (
            {
                "type": "about:blank",
                "title": "Service Unavailable",
                "status": 503,
                "detail": "no model has been trained for this tenant yet",
                "errors": [],
            },
            "no model has been trained for this tenant yet",
        ),
        (
            {
                "type": "about:blank",
                "title": "Unprocessable Entity",
                "status": 422,
                "detail": "file: column 'Client' is missing",
                "errors": [{"field": "file", "problem": "column 'Client' is missing"}],
                "code": "missing_column",
            },
            "file: column 'Client' is missing (missing_column)",
        ),
        (
            {"detail": [{"field": "query.sort", "problem": "not a sort key"}]},
            "query.sort: not a sort key",
        ),
        (
            {"detail": {"field": "Authorization", "problem": "unknown API key"}},
            "Authorization: unknown API key",
        ),
        ({"detail": {"problem": "no model yet"}}, "no model yet"),
        ({"detail": "Not Found"}, "Not Found"),
        (
            {
                "detail": {
                    "code": "no_usable_rows",
                    "field": None,
                    "problem": "all 3 rows were rejected",
                }
            },
            "all 3 rows were rejected (no_usable_rows)",
        ),
    ],
)
def test_error_bodies_become_one_sentence(body: dict, expected: str) -> None:
    assert describe_problem(body) == expected


def test_a_problem_answer_is_exit_code_1_with_the_problem_on_one_line() -> None:
    problem = {
        "type": "about:blank",
        "title": "Unprocessable Entity",
        "status": 422,
        "detail": "query.segment: no segment 'Gold'; this model's segments: 'Champions',\n'At risk'",
        "errors": [
            {
                "field": "query.segment",
                "problem": "no segment 'Gold'; this model's segments: 'Champions',\n'At risk'",
            }
        ],
    }
    with fake_service({"/v1/customers": [(422, PROBLEM, json.dumps(problem))]}) as fake:
        result = retention(
            "customers", "--segment", "Gold", RETENTION_API_KEY="k", RETENTION_SCORING_URL=fake.url
        )
    assert result.returncode == ExitCode.SERVICE_ERROR == 1
    assert result.stderr == (
        "retention customers: scoring answered 422 Unprocessable Entity: query.segment: "
        "no segment 'Gold'; this model's segments: 'Champions', 'At risk'\n"
    )
    assert fake.queries == [{"segment": ["Gold"]}]


def test_not_found_is_exit_code_4_and_the_id_is_one_path_segment() -> None:
    body = {"detail": {"field": "customer_id", "problem": "no customer 'a/b c'"}}
    with fake_service(
        {"/v1/customers/a%2Fb%20c/score": [(404, "application/json", json.dumps(body))]}
    ) as fake:
        result = retention("score", "a/b c", RETENTION_API_KEY="k", RETENTION_SCORING_URL=fake.url)
    assert result.returncode == ExitCode.FAILED == 4
    assert result.stderr == (
        "retention score: scoring answered 404 Not Found: customer_id: no customer 'a/b c'\n"
    )


def test_an_answer_that_is_not_json_is_named() -> None:
    page = "<html><body><h1>502 Bad Gateway</h1>\n</body></html>"
    with fake_service({"/v1/model": [(502, "text/html", page)]}) as fake:
        result = retention("model", RETENTION_API_KEY="k", RETENTION_SCORING_URL=fake.url)
    assert result.returncode == 1
    assert result.stderr == (
        "retention model: scoring answered 502 Bad Gateway: "
        "<html><body><h1>502 Bad Gateway</h1> </body></html>\n"
    )


def _run(run_id: str) -> dict:
    return {
        "run_id": run_id,
        "status": "published",
        "triggers": [{"kind": "upload"}],
        "created_at": "2024-05-01T09:00:00+00:00",
        "finished_at": None,
        "model_tag": None,
        "message": None,
    }


def test_runs_reads_the_list_whole_or_paged() -> None:
    whole = {"tenant_id": "default", "runs": [_run("r3"), _run("r2"), _run("r1")]}
    with fake_service({"/v1/runs": [(200, "application/json", json.dumps(whole))]}) as fake:
        result = retention("runs", "--json", RETENTION_API_KEY="k", RETENTION_TRAINER_URL=fake.url)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"runs": whole["runs"]}
    assert fake.queries == [{"limit": ["20"]}]

    pages = [
        {"tenant_id": "default", "runs": [_run("r3"), _run("r2")], "next_cursor": "c1"},
        {"tenant_id": "default", "runs": [_run("r1")], "next_cursor": "c2"},
    ]
    answers = [(200, "application/json", json.dumps(page)) for page in pages]
    with fake_service({"/v1/runs": answers}) as fake:
        result = retention(
            "runs", "--limit", "3", "--json", RETENTION_API_KEY="k", RETENTION_TRAINER_URL=fake.url
        )
    assert result.returncode == 0, result.stderr
    assert [run["run_id"] for run in json.loads(result.stdout)["runs"]] == ["r3", "r2", "r1"]
    # The second page asks for what is still missing, after the first page's cursor.
    assert fake.queries == [{"limit": ["3"]}, {"limit": ["1"], "cursor": ["c1"]}]


def test_readme_documents_every_command_variable_and_exit_code() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Command line\n", 1)[1].split("\n## ", 1)[0]
    for command in COMMANDS:
        assert f"| `{command} " in section or f"| `{command}" in section, command
    for variable in ("API_KEY", "INGEST_URL", "SCORING_URL", "TRAINER_URL"):
        assert f"`RETENTION_{variable}`" in section
    documented = [int(code) for code in re.findall(r"^\| (\d) \|", section, flags=re.MULTILINE)]
    assert documented == [code.value for code in ExitCode]
