"""`retention upload`: an export to ingest (`POST /v1/uploads`), and with --wait its progress
until done, then the accepted and rejected counts."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from retention_cli.client.http import (
    Api,
    ClientError,
    ExitCode,
    add_url_option,
    api_for,
    client_command,
    describe_problem,
)
from retention_cli.client.output import print_json

POLL_SECONDS = 0.5
# Ingest inspects the file (format, columns, mapping) before it answers the upload.
POST_READ_TIMEOUT = 600.0
FINISHED = ("done", "failed")

EPILOG = """\
examples:
  retention upload orders.csv
  retention upload export.xlsx --mapping mapping.json --timezone America/New_York --wait
  id=$(retention upload orders.parquet)   # the upload id alone on stdout

mapping.json names the file's column for each canonical field, e.g.
  {"customer_id": "Client", "order_id": "Invoice", "order_datetime": "Date",
   "product_id": "SKU", "quantity": "Qty", "unit_price": "Price"}
"""


def add_parser(commands: Any, parent: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "upload",
        parents=[parent],
        help="upload an export (CSV, TSV, XLSX, Parquet, CDNOW text; gzip or not) to ingest",
        description="Upload an export of orders to ingest (POST /v1/uploads) and print the "
        "upload id. Ingest reads, cleans and publishes it in the background; --wait follows it "
        "with a progress bar, then prints the accepted rows and the rejected ones by reason. "
        "Exit code 4 when the upload fails (e.g. no usable rows).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", type=Path, metavar="FILE")
    parser.add_argument(
        "--mapping",
        type=Path,
        metavar="FILE",
        help="JSON file: canonical name -> column (default: the tenant's saved mapping, else "
        "the layout ingest recognises)",
    )
    parser.add_argument(
        "--timezone", metavar="TZ", help="IANA zone of naive timestamps, e.g. Europe/London"
    )
    parser.add_argument("--wait", action="store_true", help="follow the upload until it ends")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the API's answer as JSON (with --wait: the final status)",
    )
    add_url_option(parser, "ingest")
    parser.set_defaults(run=run)


def _read_mapping(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ClientError(ExitCode.USAGE, f"cannot read the mapping {path}: {exc}") from None


@client_command
def run(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise ClientError(ExitCode.USAGE, f"{args.file}: no such file")
    form = {"mapping": _read_mapping(args.mapping), "timezone": args.timezone}
    with api_for(args, "ingest") as api:
        try:
            file = args.file.open("rb")
        except OSError as exc:
            raise ClientError(ExitCode.USAGE, f"cannot read {args.file}: {exc.strerror}") from None
        with file:
            response = api.request(
                "POST",
                "/v1/uploads",
                files={"file": (args.file.name, file)},
                data={name: value for name, value in form.items() if value is not None},
                timeout=httpx.Timeout(args.timeout, read=max(args.timeout, POST_READ_TIMEOUT)),
            )
        answer = response.json()
        upload_id = answer["upload_id"]
        if not args.wait:
            if args.json:
                print_json(answer)
            else:
                print(upload_id)
            return ExitCode.OK
        if not args.json:
            print(upload_id, flush=True)
        status = _follow(api, upload_id)
    if args.json:
        print_json(status)
    else:
        _print_outcome(status, api)
    if status["state"] == "failed":
        error = status.get("error") or {}
        raise ClientError(
            ExitCode.FAILED, f"upload {upload_id} failed: {describe_problem({'detail': error})}"
        )
    return ExitCode.OK


def _follow(api: Api, upload_id: str) -> dict[str, Any]:
    """Poll the upload's status until it is done or failed, drawing its progress on stderr."""
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        TextColumn("{task.completed:>12,.0f}"),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,  # the final counts stay on screen (and, not on a terminal, are printed once)
    )
    with progress:
        reading = progress.add_task("rows read", total=None, note="")
        publishing: TaskID | None = None
        while True:
            status = api.json("GET", f"/v1/uploads/{upload_id}")
            counts = status.get("progress") or {}
            rejected = sum((counts.get("rejected_by_reason") or {}).values())
            progress.update(
                reading,
                completed=counts.get("rows_read", 0),
                note=f"accepted {counts.get('accepted', 0):,}, rejected {rejected:,}",
            )
            # Reading is over once the orders are counted; then their publishing is measurable.
            if "orders" in counts:
                progress.update(reading, total=counts.get("rows_read", 0))
                if publishing is None:
                    publishing = progress.add_task("published", total=counts["orders"], note="")
                progress.update(
                    publishing,
                    completed=counts.get("orders_published", 0),
                    note=f"of {counts['orders']:,} orders",
                )
            if status["state"] in FINISHED:
                if status["state"] == "done" and publishing is not None:
                    progress.update(publishing, completed=counts["orders"])
                return status
            time.sleep(POLL_SECONDS)


def _print_outcome(status: dict[str, Any], api: Api) -> None:
    # Once done the result has every count; a failed upload keeps its progress so far.
    counts = status.get("result") or status.get("progress") or {}
    reasons: dict[str, int] = counts.get("rejected_by_reason") or {}
    rejected = counts.get("rejected", sum(reasons.values()))
    print(
        f"upload {status['upload_id']} {status['state']}: {counts.get('rows_read', 0):,} rows "
        f"read, {counts.get('accepted', 0):,} accepted, {rejected:,} rejected"
    )
    if status.get("result"):
        result = status["result"]
        print(
            f"{result.get('order_events', 0):,} orders of {result.get('customers', 0):,} "
            f"customers, {result.get('first_order_at')} .. {result.get('last_order_at')}"
        )
    if reasons:
        print("rejected by reason:")
        width = max(len(reason) for reason in reasons)
        for reason, count in sorted(reasons.items(), key=lambda item: (-item[1], item[0])):
            print(f"  {reason:<{width}}  {count:>10,}")
        print(f"rejected rows: {api.base_url}/v1/uploads/{status['upload_id']}/rejects.csv")
    sys.stdout.flush()
