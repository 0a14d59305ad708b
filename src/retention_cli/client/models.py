"""`retention model` (scoring's model card) and `retention runs` (the trainer's recent runs)."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from retention_cli.client.http import (
    Api,
    ExitCode,
    add_url_option,
    api_for,
    client_command,
    positive_int,
)
from retention_cli.client.output import cell, print_json, stdout_console

MODEL_EPILOG = """\
examples:
  retention model
  retention model --json | jq .churn.model.roc_auc
"""

RUNS_EPILOG = """\
examples:
  retention runs
  retention runs --limit 5 --json | jq -r '.runs[0].status'
"""


def add_parsers(commands: Any, parent: argparse.ArgumentParser) -> None:
    model = commands.add_parser(
        "model",
        parents=[parent],
        help="the model card: champion, training window, drift, metrics vs baselines",
        description="The tenant's model card as scoring serves it (GET /v1/model): the "
        "champion's version and tag, since when it serves, its training window, drift status, "
        "and its churn and LTV backtest next to the baselines'. Exit code 1 while no model "
        "has been trained (scoring answers 503).",
        epilog=MODEL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    model.add_argument("--json", action="store_true", help="print the API's answer as JSON")
    add_url_option(model, "scoring")
    model.set_defaults(run=run_model)

    runs = commands.add_parser(
        "runs",
        parents=[parent],
        help="recent training runs, newest first",
        description="The trainer's training runs for the key's tenant, newest first "
        "(GET /v1/runs): status, what triggered each, when, the model it trained and the "
        "gate's message.",
        epilog=RUNS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    runs.add_argument(
        "--limit", type=positive_int, default=20, metavar="N", help="at most N runs (default 20)"
    )
    runs.add_argument(
        "--json", action="store_true", help='print {"runs": [...]} as the API answers them'
    )
    add_url_option(runs, "trainer")
    runs.set_defaults(run=run_runs)


@client_command
def run_model(args: argparse.Namespace) -> int:
    with api_for(args, "scoring") as api:
        card = api.json("GET", "/v1/model")
    if args.json:
        print_json(card)
        return ExitCode.OK
    # The demo's card; imported here so the other commands do not pay for it.
    from retention_cli.demo_report import print_model_card

    console = stdout_console()
    print_model_card(console, card)
    console.print(
        f"model version {card['model_version']}, trained at {card['trained_at']}, "
        f"{len(card.get('segments', []))} segments, {len(card.get('feature_schema', []))} "
        "features (--json for all of it)",
        markup=False,
    )
    return ExitCode.OK


def fetch_runs(api: Api, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` runs, newest first: one answer from a trainer that lists them all at once,
    or its pages (`limit`/`cursor`, `next_cursor`) from one that pages them."""
    found: list[dict[str, Any]] = []
    cursor = None
    while len(found) < limit:
        params: dict[str, Any] = {"limit": min(limit - len(found), 500)}
        if cursor:
            params["cursor"] = cursor
        answer = api.json("GET", "/v1/runs", params=params)
        found += answer["runs"]
        cursor = answer.get("next_cursor")
        if not cursor or not answer["runs"]:
            break
    return found[:limit]


@client_command
def run_runs(args: argparse.Namespace) -> int:
    with api_for(args, "trainer") as api:
        runs = fetch_runs(api, args.limit)
    if args.json:
        print_json({"runs": runs})
        return ExitCode.OK
    table = Table()
    for column in ("run", "status", "trigger", "created", "finished", "model", "message"):
        table.add_column(column, no_wrap=column != "message")
    for run in runs:
        triggers = run.get("triggers") or []
        trigger = ", ".join(sorted({str(t.get("kind")) for t in triggers})) or None
        table.add_row(
            cell(run["run_id"]),
            cell(run["status"]),
            cell(trigger),
            cell(_minute(run.get("created_at"))),
            cell(_minute(run.get("finished_at"))),
            cell(run.get("model_tag")),
            cell(run.get("message")),
        )
    console = stdout_console()
    console.print(table)
    console.print(f"{len(runs)} run{'' if len(runs) == 1 else 's'}", markup=False)
    return ExitCode.OK


def _minute(timestamp: str | None) -> str | None:
    """`2024-05-01T09:00:42.123+00:00` as `2024-05-01 09:00:42`: a table has no room for more."""
    return None if timestamp is None else timestamp.replace("T", " ")[:19]
