"""`retention customers` (scoring's action list, as a table or CSV) and `retention score`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import httpx
from rich.table import Table

from retention_cli.client.http import (
    Api,
    ClientError,
    ExitCode,
    add_url_option,
    api_for,
    client_command,
    positive_int,
)
from retention_cli.client.output import cell, money, print_json, probability, stdout_console

# scoring's SortKey (retention_scoring.lists); a test keeps the two equal. Not imported: the
# scoring package would cost every invocation a second of start-up.
SORT_KEYS = (
    "revenue_at_risk",
    "churn_probability",
    "predicted_ltv",
    "expected_orders",
    "customer_id",
)
# Page size of --all when --limit does not say (scoring answers up to 10,000 per page).
ALL_PAGE_SIZE = 1000
CSV = "text/csv"

CUSTOMERS_EPILOG = """\
examples:
  retention customers --risk-band high --value-tier High,VIP --limit 20
  retention customers --segment "At Risk" --min-churn 0.6 --sort predicted_ltv
  retention customers --risk-band high --all --csv at-risk.csv
  retention customers --all --csv | wc -l
"""

SCORE_EPILOG = """\
examples:
  retention score 17850
  retention score 17850 --json | jq .churn_probability
"""


def add_parsers(commands: Any, parent: argparse.ArgumentParser) -> None:
    customers = commands.add_parser(
        "customers",
        parents=[parent],
        help="list scored customers by risk, value and segment (table or CSV)",
        description="Scoring's customer list (GET /v1/customers): filter by risk band, value "
        "tier, segment, churn probability, LTV, expected orders and next-order date, best first "
        "by --sort; a table, or CSV "
        "exactly as the API sends it. Band, tier and segment options repeat, or take a comma "
        "list (any of them matches).",
        epilog=CUSTOMERS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    filters = customers.add_argument_group("filters")
    filters.add_argument("--risk-band", action="append", metavar="BAND", help="low, medium, high")
    filters.add_argument(
        "--value-tier", action="append", metavar="TIER", help="Low, Medium, High, VIP"
    )
    filters.add_argument(
        "--segment", action="append", metavar="NAME", help="a segment of the model (`model`)"
    )
    for name, what in (
        ("churn", "churn probability"),
        ("ltv", "predicted LTV"),
        ("orders", "expected orders over the churn horizon"),
    ):
        filters.add_argument(f"--min-{name}", type=float, metavar="X", help=f"lowest {what}")
        filters.add_argument(f"--max-{name}", type=float, metavar="X", help=f"highest {what}")
    for end in ("from", "to"):
        filters.add_argument(
            f"--next-order-{end}",
            metavar="DATE",
            help=f"next-order date {end} DATE (YYYY-MM-DD, included)",
        )
    customers.add_argument(
        "--sort", choices=SORT_KEYS, help="order, highest first (default revenue_at_risk)"
    )
    customers.add_argument(
        "--limit",
        type=positive_int,
        metavar="N",
        help=f"at most N customers (default 100); with --all, the page size "
        f"(default {ALL_PAGE_SIZE})",
    )
    customers.add_argument(
        "--all", action="store_true", help="every matching customer, page after page"
    )
    customers.add_argument(
        "--csv",
        nargs="?",
        const="-",
        metavar="FILE",
        help="CSV as the API sends it, to FILE or (without FILE, or -) to stdout",
    )
    add_url_option(customers, "scoring")
    customers.set_defaults(run=run_customers)

    score = commands.add_parser(
        "score",
        parents=[parent],
        help="one customer's churn, LTV, segment and the reasons behind them",
        description="A customer's score with reasons (GET /v1/customers/{id}/score): churn "
        "probability and risk band, predicted LTV with its 80% interval, value tier, "
        "segment and recommended action, and the features that drive each score. Exit code 4 "
        "when the customer is unknown.",
        epilog=SCORE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    score.add_argument("customer_id", metavar="CUSTOMER_ID")
    score.add_argument("--json", action="store_true", help="print the API's answer as JSON")
    add_url_option(score, "scoring")
    score.set_defaults(run=run_score)


def _params(args: argparse.Namespace) -> list[tuple[str, str]]:
    params: list[tuple[str, str]] = []
    # Repeated parameters: scoring reads each of them (and comma lists within one).
    for name in ("risk_band", "value_tier", "segment"):
        params += [(name, value) for value in getattr(args, name) or []]
    for name in ("min_churn", "max_churn", "min_ltv", "max_ltv", "min_orders", "max_orders"):
        if getattr(args, name) is not None:
            params.append((name, repr(getattr(args, name))))
    for name in ("next_order_from", "next_order_to"):
        if getattr(args, name) is not None:
            params.append((name, getattr(args, name)))
    if args.sort:
        params.append(("sort", args.sort))
    limit = args.limit or (ALL_PAGE_SIZE if args.all else None)
    if limit is not None:
        params.append(("limit", str(limit)))
    return params


def _pages(api: Api, args: argparse.Namespace, accept: str) -> Iterator[httpx.Response]:
    """The first page, and with --all every next one (`next_cursor` / `X-Next-Cursor`)."""
    params = _params(args)
    cursor = None
    while True:
        page_params = params + ([("cursor", cursor)] if cursor else [])
        response = api.request(
            "GET", "/v1/customers", params=page_params, headers={"Accept": accept}
        )
        yield response
        if accept == CSV:
            cursor = response.headers.get("X-Next-Cursor")
        else:
            cursor = response.json().get("next_cursor")
        if not args.all or not cursor:
            return


@client_command
def run_customers(args: argparse.Namespace) -> int:
    with api_for(args, "scoring") as api:
        if args.csv is not None:
            _write_csv(api, args)
        else:
            _print_table(api, args)
    return ExitCode.OK


def _write_csv(api: Api, args: argparse.Namespace) -> None:
    if args.csv == "-":
        _copy_pages(api, args, sys.stdout.buffer)
        sys.stdout.flush()
        return
    # Written aside and moved into place at the end: FILE exists only when the export is whole.
    target = Path(args.csv)
    partial = target.with_name(target.name + ".part")
    try:
        with partial.open("wb") as out:
            rows, total = _copy_pages(api, args, out)
        partial.replace(target)
    except OSError as exc:
        raise ClientError(ExitCode.USAGE, f"cannot write {args.csv}: {exc.strerror}") from None
    finally:
        partial.unlink(missing_ok=True)
    of = f" of {total:,}" if total is not None else ""
    print(f"wrote {rows:,}{of} customers to {args.csv}", file=sys.stderr)


def _copy_pages(api: Api, args: argparse.Namespace, out: BinaryIO) -> tuple[int, int | None]:
    """Write the CSV pages to `out` as one CSV; (rows written, the list's total)."""
    rows, total = 0, None
    for number, response in enumerate(_pages(api, args, CSV)):
        body = response.content
        # Every page starts with the header; the file has it once.
        if number > 0:
            body = body.split(b"\n", 1)[1] if b"\n" in body else b""
        rows += body.count(b"\n") - (1 if number == 0 else 0)
        if "X-Total-Count" in response.headers:
            total = int(response.headers["X-Total-Count"])
        out.write(body)
    return rows, total


def _print_table(api: Api, args: argparse.Namespace) -> None:
    customers: list[dict[str, Any]] = []
    answer: dict[str, Any] = {}
    for response in _pages(api, args, "application/json"):
        answer = response.json()
        customers += answer["customers"]
    table = Table()
    table.add_column("customer", no_wrap=True)
    table.add_column("risk")
    for column in ("churn p", "predicted LTV", "80% interval", "revenue at risk"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("tier")
    # The segment's action is long and the same for every row of it: `score` and CSV have it.
    table.add_column("segment")
    for row in customers:
        table.add_row(
            cell(row["customer_id"]),
            cell(row["risk_band"]),
            probability(row["churn_probability"]),
            money(row["predicted_ltv"]),
            f"{money(row['ltv_low'])}–{money(row['ltv_high'])}",
            money(row["revenue_at_risk"]),
            cell(row["value_tier"]),
            cell(row["segment"]),
        )
    console = stdout_console()
    console.print(table)
    more = "" if len(customers) >= answer.get("total", 0) else "; --all for every one"
    console.print(
        f"{len(customers):,} of {answer.get('total', 0):,} customers, model "
        f"{answer.get('model_version', '–')}{more}",
        markup=False,
    )


@client_command
def run_score(args: argparse.Namespace) -> int:
    with api_for(args, "scoring") as api:
        score = api.json("GET", f"/v1/customers/{quote(args.customer_id, safe='')}/score")
    if args.json:
        print_json(score)
    else:
        print_score(score)
    return ExitCode.OK


def print_score(score: dict[str, Any]) -> None:
    # Plain print: every value is shown as served, nothing is read as markup.
    print(f"customer         {score['customer_id']}")
    print(
        f"churn            {probability(score['churn_probability'])} "
        f"(risk band {score['risk_band']})"
    )
    print(
        f"predicted LTV    {money(score['predicted_ltv'])} over {score['ltv_horizon_days']} days, "
        f"80% interval {money(score['ltv_low'])}–{money(score['ltv_high'])} "
        f"(value tier {score['value_tier']})"
    )
    print(f"revenue at risk  {money(score['revenue_at_risk'])}")
    print(f"segment          {score['segment']}")
    print(f"action           {score['action']}")
    print(f"features as of   {score.get('features_as_of') or '–'}")
    print(f"model            {score['model_version']}")
    reasons = score.get("reasons") or {}
    for task, title in (("churn", "churn"), ("ltv", "LTV")):
        if reasons.get(task):
            print(f"why ({title}):")
            for reason in reasons[task]:
                print(f"  {reason['direction']:<6}  {reason['text']}")
