"""What every client command shares: settings from the environment and flags, one HTTP client per
service, and the mapping of every failure to a documented exit code and a one-line message.

Exit codes (README, "Command line"): 0 ok; 1 the service answered an error; 2 usage or
configuration; 3 the service cannot be reached; 4 not found (a 404), or an upload that failed.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Callable
from enum import IntEnum
from importlib.metadata import version
from typing import Any

import httpx
from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from retention_shared.config import Settings

__all__ = [
    "Api",
    "ClientError",
    "ClientSettings",
    "ExitCode",
    "add_url_option",
    "api_for",
    "client_command",
    "common_options",
    "describe_error_body",
    "describe_problem",
    "positive_int",
]


class ExitCode(IntEnum):
    OK = 0
    SERVICE_ERROR = 1  # the service answered 4xx/5xx (a wrong key, a bad filter, no model yet)
    USAGE = 2  # argparse's own code for a bad command line; also missing or bad configuration
    UNREACHABLE = 3  # connection refused, unknown host, timeout
    FAILED = 4  # the thing asked about does not exist (404), or an upload finished failed


class ClientError(Exception):
    """A failure with its exit code; the message is one line naming the problem."""

    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _default_port(service: str) -> int:
    return int(Settings.model_fields[f"{service}_port"].default)


class ClientSettings(BaseSettings):
    """The client's own variables. The URLs default to the local stack's ports, which honour
    `RETENTION_<SERVICE>_PORT` like `retention up` does, so both find each other in one shell."""

    model_config = SettingsConfigDict(env_prefix="RETENTION_", extra="ignore")

    api_key: SecretStr | None = None
    ingest_url: str | None = None
    scoring_url: str | None = None
    trainer_url: str | None = None
    ingest_port: int = _default_port("ingest")
    scoring_port: int = _default_port("scoring")
    trainer_port: int = _default_port("trainer")

    def url_of(self, service: str) -> str:
        configured = getattr(self, f"{service}_url")
        return (configured or f"http://127.0.0.1:{getattr(self, f'{service}_port')}").rstrip("/")


USER_AGENT = f"retention-cli/{version('retention')}"


def common_options() -> argparse.ArgumentParser:
    """Options every client command takes (a parent parser)."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection")
    group.add_argument(
        "--api-key",
        metavar="KEY",
        help="API key (default: $RETENTION_API_KEY; prefer the variable: flags show in `ps`)",
    )
    group.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long to wait for each answer (default 30)",
    )
    return parent


def positive_int(value: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value}: must be at least 1")
    return number


def add_url_option(parser: argparse.ArgumentParser, service: str) -> None:
    variable = f"RETENTION_{service.upper()}_URL"
    port = _default_port(service)
    parser.add_argument(
        f"--{service}-url",
        metavar="URL",
        help=f"the {service} service (default: ${variable}, else http://127.0.0.1:"
        f"${{RETENTION_{service.upper()}_PORT:-{port}}})",
    )


class Api:
    """One service's HTTP API with the caller's key; every failure becomes a ClientError."""

    def __init__(self, service: str, base_url: str, key: str, timeout: float) -> None:
        self.service = service
        self.base_url = base_url
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {key}", "User-Agent": USER_AGENT},
            timeout=timeout,
        )

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise ClientError(
                ExitCode.UNREACHABLE,
                f"cannot connect to {self.service} at {self.base_url} ({exc}); is it running? "
                f"set RETENTION_{self.service.upper()}_URL or --{self.service}-url",
            ) from None
        except httpx.TimeoutException:
            raise ClientError(
                ExitCode.UNREACHABLE,
                f"{self.service} at {self.base_url} did not answer {method} {path} in time "
                "(--timeout)",
            ) from None
        except httpx.HTTPError as exc:
            raise ClientError(
                ExitCode.UNREACHABLE,
                f"the connection to {self.service} at {self.base_url} failed: {exc}",
            ) from None
        if response.is_error:
            raise _answered_error(self.service, response)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ClientError(
                ExitCode.SERVICE_ERROR,
                f"{self.service} at {self.base_url} answered {method} {path} with something "
                f"other than JSON ({response.headers.get('content-type', 'no content type')}); "
                "is the URL the right service?",
            ) from None


_HINTS = {
    401: " (check RETENTION_API_KEY or --api-key)",
    403: " (the key's roles do not allow this)",
}


def _answered_error(service: str, response: httpx.Response) -> ClientError:
    status = response.status_code
    code = ExitCode.FAILED if status == 404 else ExitCode.SERVICE_ERROR
    text = describe_error_body(response)
    return ClientError(
        code,
        f"{service} answered {status} {response.reason_phrase}: {text}{_HINTS.get(status, '')}",
    )


def _one_line(text: str, limit: int = 500) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_error_body(response: httpx.Response) -> str:
    """The problem an error answer names, in one line: RFC 9457 problem+json, else the older
    `{"detail": ...}` bodies (a sentence, one {field, problem}, or a list of them)."""
    try:
        body = response.json()
    except ValueError:
        return _one_line(response.text) or response.reason_phrase
    return _one_line(describe_problem(body))


def describe_problem(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("status"), int) and "title" in body:
        errors = [_entry(e) for e in body.get("errors") or [] if isinstance(e, dict)]
        text = "; ".join(e for e in errors if e) or str(body.get("detail") or body["title"])
        # An extension member such as ingest's stable reason code, when the problem carries one.
        if isinstance(body.get("code"), str) and body["code"] not in text:
            text += f" ({body['code']})"
        return text
    if isinstance(body, dict) and "detail" in body:
        detail = body["detail"]
        if isinstance(detail, list):
            return "; ".join(_entry(e) if isinstance(e, dict) else str(e) for e in detail)
        if isinstance(detail, dict):
            return _entry(detail)
        return str(detail)
    return json.dumps(body)


def _entry(entry: dict[str, Any]) -> str:
    """One {field, problem[, code]} (or FastAPI's own {loc, msg}) as `field: problem (code)`."""
    field = entry.get("field")
    if field is None and isinstance(entry.get("loc"), list):
        field = ".".join(str(part) for part in entry["loc"])
    problem = entry.get("problem") or entry.get("msg") or ""
    text = f"{field}: {problem}" if field else str(problem)
    if entry.get("code"):
        text += f" ({entry['code']})"
    return text


def api_for(args: argparse.Namespace, service: str) -> Api:
    """The service's API as the flags and environment configure it; ClientError(USAGE) when the
    configuration is missing or wrong, before anything is sent."""
    try:
        settings = ClientSettings()
    except ValidationError as exc:
        first = exc.errors()[0]
        variable = "RETENTION_" + str(first["loc"][0]).upper()
        raise ClientError(ExitCode.USAGE, f"{variable}: {first['msg']}") from None
    key = args.api_key or (settings.api_key.get_secret_value() if settings.api_key else "")
    if not key.strip():
        raise ClientError(ExitCode.USAGE, "no API key: set RETENTION_API_KEY or pass --api-key")
    url = (getattr(args, f"{service}_url", None) or settings.url_of(service)).rstrip("/")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise ClientError(
            ExitCode.USAGE, f"{service} URL {url!r} is not an http:// or https:// URL"
        )
    if not args.timeout > 0:
        raise ClientError(ExitCode.USAGE, "--timeout must be positive")
    return Api(service, url, key.strip(), args.timeout)


def client_command(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Runs a command: a ClientError is printed as `retention <command>: <message>` on stderr and
    becomes its exit code."""

    @functools.wraps(run)
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except ClientError as error:
            print(f"retention {args.command}: {error.message}", file=sys.stderr)
            return int(error.code)
        except KeyboardInterrupt:
            return 130
        except BrokenPipeError:
            # `retention customers --csv | head`: the reader left; no traceback for that.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0

    return wrapped
