"""`retention backtest`: the trainer's protocol offline on any export, before streaming it.

The file goes through ingest's own reading, mapping and cleaning, then through the trainer's
point-in-time training and backtest, with the rolling evaluation over up to four test origins and
its paired bootstrap intervals against the best baseline, then the production refit a promoted
trainer run gets (the same model on the latest complete labels); the report is printed as
Markdown (a compact table of the rolling block included, then both windows), or as JSON only
(the report's keys, plus `production`: the refit's windows).
`--report FILE` also writes the run report a trained run gets (no previous champion to compare
with), as Markdown or as an HTML page by the file's extension.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from retention_bundle.report_html import markdown_page
from retention_ingest.errors import IngestError
from retention_ingest.file_ingest import ingest_file
from retention_ingest.mapping import ColumnMapping
from retention_shared.features import orders_from_event_columns
from retention_trainer.pipeline import (
    ROLLING_ORIGINS,
    SHORT_LTV_HORIZON_DAYS,
    train_and_backtest,
)
from retention_trainer.refit import refit_for_production, render_windows
from retention_trainer.run_report import build_run_report
from retention_trainer.sampling import DEFAULT_MAX_CUSTOMERS, DEFAULT_MAX_EVALUATION_CUSTOMERS
from retention_trainer.training_set import CHURN_HORIZON_DAYS, LTV_HORIZON_DAYS

TENANT = "backtest"
REPORT_SUFFIXES = (".md", ".html")


def _report_path(value: str) -> Path:
    path = Path(value)
    if path.suffix.lower() not in REPORT_SUFFIXES:
        raise argparse.ArgumentTypeError(f"{value!r}: the run report is a .md or .html file")
    return path


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "backtest", help="train and backtest on an export (CSV/XLSX/Parquet/CDNOW) offline"
    )
    parser.add_argument("--data", type=Path, required=True, help="the export to evaluate")
    parser.add_argument("--mapping", type=Path, help="JSON file: canonical name -> column")
    parser.add_argument("--timezone", default="Europe/London", help="zone of naive timestamps")
    parser.add_argument("--json", action="store_true", help="print only the report's JSON")
    parser.add_argument(
        "--report",
        type=_report_path,
        metavar="FILE",
        help="also write the run report for managers: FILE.md (Markdown) or FILE.html",
    )
    parser.add_argument("--churn-horizon", type=int, default=CHURN_HORIZON_DAYS, metavar="DAYS")
    parser.add_argument(
        "--ltv-horizon",
        type=int,
        metavar="DAYS",
        help=f"default {LTV_HORIZON_DAYS}; {SHORT_LTV_HORIZON_DAYS} when the history is too short",
    )
    parser.add_argument(
        "--max-customers",
        type=int,
        default=DEFAULT_MAX_CUSTOMERS,
        metavar="N",
        help=f"train on a deterministic sample of N customers above N (default {DEFAULT_MAX_CUSTOMERS:,}; 0: all)",
    )
    parser.add_argument(
        "--max-evaluation-customers",
        type=int,
        default=DEFAULT_MAX_EVALUATION_CUSTOMERS,
        metavar="N",
        help="evaluate the earlier rolling origins and the bootstrap on a deterministic sample "
        f"of N customers above N (default {DEFAULT_MAX_EVALUATION_CUSTOMERS:,}; 0: all)",
    )
    parser.add_argument("--churn-test-cutoff", type=date.fromisoformat, metavar="YYYY-MM-DD")
    parser.add_argument("--ltv-test-cutoff", type=date.fromisoformat, metavar="YYYY-MM-DD")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        mapping = ColumnMapping.parse(args.mapping.read_text()) if args.mapping else None
        with tempfile.TemporaryDirectory(prefix="retention-backtest-") as work:
            cleaned = ingest_file(
                args.data,
                tenant_id=TENANT,
                source="backtest",
                work_dir=Path(work),
                mapping=mapping,
                timezone=args.timezone,
            )
            orders = orders_from_event_columns(cleaned.events())
    except (IngestError, OSError) as error:
        problem = error.as_detail() if isinstance(error, IngestError) else {"problem": str(error)}
        print(
            f"retention backtest: {problem.get('code', 'unreadable')}: {problem['problem']}",
            file=sys.stderr,
        )
        return 2
    if not args.json:
        print(
            f"{cleaned.rows_read:,} rows read, {cleaned.accepted:,} accepted, "
            f"{cleaned.rejected:,} rejected {dict(cleaned.rejected_by_reason)}; "
            f"{orders.height:,} orders of {cleaned.customers:,} customers",
            file=sys.stderr,
        )
    try:
        training = train_and_backtest(
            orders,
            tenant=TENANT,
            churn_horizon_days=args.churn_horizon,
            ltv_horizon_days=args.ltv_horizon,
            churn_test_cutoff=args.churn_test_cutoff,
            ltv_test_cutoff=args.ltv_test_cutoff,
            # Always the rolling evaluation, whatever a trainer's setting says: the command is
            # where a model change is judged before it ships.
            rolling_origins=ROLLING_ORIGINS,
            max_customers=args.max_customers,
            max_evaluation_customers=args.max_evaluation_customers,
        )
    except ValueError as error:
        print(f"retention backtest: {error}", file=sys.stderr)
        return 2
    for note in training.report.notes:
        print(f"retention backtest: {note}", file=sys.stderr)
    # The model a trainer run would serve once promoted: refitted on the latest complete labels.
    served = refit_for_production(training, orders)
    assert served.production is not None
    training = dataclasses.replace(training, bundle=served)
    if args.report:
        markdown = build_run_report(training, orders).markdown
        page = args.report.suffix.lower() == ".html"
        try:
            args.report.write_text(
                markdown_page(markdown, f"Run report: {args.data.name}") if page else markdown
            )
        except OSError as error:
            print(f"retention backtest: cannot write {args.report}: {error}", file=sys.stderr)
            return 2
    if args.json:
        production = served.production.model_dump(mode="json")
        print(json.dumps(training.report.as_json() | {"production": production}))
    else:
        print(training.markdown)
        print(render_windows(training.report.windows, served.production))
    return 0
