"""Models: the model that scores the customers now (scoring's model card), how it did in its
backtest against the baselines, whether today's customers still look like those it learned from
(drift, PSI per feature), and every training run (the trainer's run history, each run's report),
with "Retrain now" for admins and its progress as it runs.

Two services answer this page: scoring for the card, the trainer for the runs. One of them not
answering leaves the other's part on screen with a note in place of the missing part.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import RedirectResponse

from retention_console.pages.deps import Api, CheckedForm, CurrentSession, require_role
from retention_console.rendering import is_htmx, number, render
from retention_console.services import ApiError, NoModelYet, ServiceUnavailable, UserApi
from retention_shared.auth import Role
from retention_shared.features import FEATURES_BY_NAME

router = APIRouter()

RUNS_SHOWN = 20
# Run ids are the trainer's (uuid4 hex); anything else must not reach its URL as a path.
RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# The trainer's page cursors are base64url; anything else is not passed on (the latest runs show).
RUNS_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,4096}")
MAX_REASON = 500
DEFAULT_REASON = "Retrain now, from the console"

# Backtest metrics in the order a reader meets them; `False`: lower is better.
CHURN_METRICS = {
    "roc_auc": ("ROC AUC", True),
    "roc_auc_active_365d": ("ROC AUC, customers active in the last year", True),
    "pr_auc": ("PR AUC", True),
    "f1": ("F1", True),
    "lift_top_decile": ("Lift in the riskiest 10%", True),
    "brier": ("Brier score", False),
}
LTV_RANKING = {
    "spearman": ("Spearman rank correlation", True),
    "normalized_gini": ("Normalized Gini", True),
    "top10_capture": ("Revenue captured by the top 10%", True),
}
LTV_ERRORS = {
    "mae": ("Mean absolute error", False),
    "rmse": ("Root mean squared error", False),
}
BASELINES = {
    "recency": "Recency only",
    "rfm_logistic": "RFM logistic regression",
    "bgnbd": "BG/NBD",
    "past_spend_scaled": "Past spend, scaled",
    "bgnbd_gamma_gamma": "BG/NBD + Gamma-Gamma",
    "recent_spend": "Spend in the last horizon",
    "bgnbd_occasions": "BG/NBD on the features",
}
# Where a metric the console does not know yet is shown (on the 0–1 scale of its task).
_TAKES_OTHERS = {"churn": CHURN_METRICS, "ltv": LTV_RANKING}
_KNOWN = {**CHURN_METRICS, **LTV_RANKING, **LTV_ERRORS}
SERIES_COLOURS = ("#1f5fbf", "#8a94a6", "#b54708", "#0e7c86", "#7a4fc9", "#c4327a")

STATUS_LABELS = {
    "queued": "Queued",
    "running": "Running",
    "published": "Published",
    "rejected": "Rejected",
    "skipped": "Skipped",
    "failed": "Failed",
}
FINISHED = ("published", "rejected", "skipped", "failed")
# What a run does, in the trainer's order, by the stage names of its timings. The trainer records
# a run when it starts and when it ends, so a running run shows the stages done before training.
STAGES = (
    (("lake_wait",), "waiting until the lake holds every order sent before the run"),
    (
        (
            "lake_read",
            "training_sets",
            "churn",
            "baselines",
            "rolling_origin",
            "ltv",
            "bootstrap",
            "segments",
            "bundle",
        ),
        "reading the orders, training and backtesting",
    ),
    (("gate",), "comparing with the current model"),
    (("report",), "writing the run report"),
    (("publish",), "publishing the result"),
)
STAGE_LABELS = {
    "lake_wait": "Waiting for the lake",
    "lake_read": "Reading the orders",
    "training_sets": "Building training sets",
    "churn": "Training the churn model",
    "baselines": "Scoring the baselines",
    "rolling_origin": "Rolling-origin backtest",
    "ltv": "Training the LTV model",
    "bootstrap": "Bootstrap intervals against the baselines",
    "segments": "Segmenting customers",
    "bundle": "Bundling the model",
    "gate": "Comparing with the current model",
    "report": "Writing the run report",
    "publish": "Publishing",
}
TRIGGERS = {
    "request": "Asked for",
    "upload": "Upload",
    "schedule": "Schedule",
    "drift": "Drift",
    "performance": "Realized accuracy fell",
    "growth": "New orders",
    "restart": "Restart",
}


@router.get("/models")
async def models_page(request: Request, session: CurrentSession, api: Api) -> Response:
    older = request.query_params.get("runs_cursor")
    older = older if older and RUNS_CURSOR.fullmatch(older) else None
    (card, card_problem), (runs, next_cursor, runs_problem), outcome = await asyncio.gather(
        _model_card(api), _runs(api, older), _latest_outcome(api)
    )
    asked = request.query_params.get("run")
    progress = next(
        (
            r
            for r in runs
            if (r["run_id"] == asked) or (asked is None and r["status"] not in FINISHED)
        ),
        None,
    )
    return render(
        request,
        "models.html",
        page="models",
        card=card,
        card_problem=card_problem,
        facts=model_facts(card, outcome) if card else None,
        backtest=backtest(card) if card else None,
        drift=drift_view(card) if card else None,
        quality=quality_view(card) if card else None,
        runs=[run_view(r) for r in runs],
        runs_problem=runs_problem,
        older_runs=older is not None,
        next_runs_cursor=next_cursor,
        progress=run_view(progress) if progress else None,
    )


@router.post("/models/retrain")
async def retrain(
    request: Request, session: CurrentSession, api: Api, form: CheckedForm
) -> Response:
    require_role(session, Role.ADMIN)
    reason = str(form.get("reason") or "").strip()[:MAX_REASON] or DEFAULT_REASON
    asked = await api.post("trainer", "/v1/retrain", json={"reason": reason})
    run_id = asked["run_id"]
    if not is_htmx(request):
        return RedirectResponse(f"/models?run={run_id}", status_code=303)
    run = await api.get("trainer", f"/v1/runs/{run_id}")
    return render(request, "models_run.html", run=run_view(run))


@router.get("/models/runs/{run_id}")
async def run_progress(
    request: Request, session: CurrentSession, api: Api, run_id: str
) -> Response:
    """One run's progress, polled by its panel every 2 s until it has finished."""
    _check_run_id(run_id)
    if not is_htmx(request):
        return RedirectResponse(f"/models?run={run_id}", status_code=303)
    run = await api.get("trainer", f"/v1/runs/{run_id}")
    return render(request, "models_run.html", run=run_view(run))


@router.get("/models/runs/{run_id}/report")
async def run_report(session: CurrentSession, api: Api, run_id: str) -> Response:
    """The trainer's report page as it wrote it, with its own policy (no script, nothing remote)."""
    _check_run_id(run_id)
    upstream = await api.get_raw("trainer", f"/v1/runs/{run_id}/report", format="html")
    headers = {}
    if policy := upstream.headers.get("content-security-policy"):
        headers["Content-Security-Policy"] = policy
    return Response(
        upstream.content,
        media_type=upstream.headers.get("content-type", "text/html; charset=utf-8"),
        headers=headers,
    )


@router.get("/models/runs/{run_id}/report.md")
async def run_report_markdown(session: CurrentSession, api: Api, run_id: str) -> Response:
    _check_run_id(run_id)
    upstream = await api.get_raw("trainer", f"/v1/runs/{run_id}/report", format="md")
    return Response(
        upstream.content,
        media_type=upstream.headers.get("content-type", "text/markdown; charset=utf-8"),
        headers={"Content-Disposition": f'attachment; filename="run-report-{run_id}.md"'},
    )


def _check_run_id(run_id: str) -> None:
    if not RUN_ID.fullmatch(run_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"There is no run {run_id!r}.")


async def _model_card(api: UserApi) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return await api.get("scoring", "/v1/model"), None
    except NoModelYet:
        return None, None
    except ServiceUnavailable as error:
        return (
            None,
            f"The scoring service is not answering ({error.reason}), so the model card cannot be shown.",
        )


async def _latest_outcome(api: UserApi) -> dict[str, Any] | None:
    """The trainer's latest realized outcome (its outcome monitor), or None: none yet, or the
    trainer not answering (the runs' part says so)."""
    try:
        answer = await api.get("trainer", "/v1/outcomes", limit=1)
    except (ServiceUnavailable, ApiError):
        return None
    found = answer.get("outcomes") or []
    return found[0] if found else None


async def _runs(
    api: UserApi, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None, str | None]:
    """A page of runs (newest first; `cursor`: older ones), the next page's cursor, a problem."""
    params: dict[str, Any] = {"limit": RUNS_SHOWN} | ({"cursor": cursor} if cursor else {})
    try:
        answer = await api.get("trainer", "/v1/runs", **params)
    except ServiceUnavailable as error:
        return (
            [],
            None,
            f"The trainer is not answering ({error.reason}), so the runs cannot be shown.",
        )
    except ApiError as error:
        if error.status != status.HTTP_422_UNPROCESSABLE_CONTENT:
            raise
        # A link to older runs kept from before a trainer change: its cursor is not one now.
        return [], None, "That page of older runs is gone; the latest runs are on the first page."
    return answer["runs"], answer.get("next_cursor"), None


# --- the model card -------------------------------------------------------------------------


def when(value: str | None) -> str:
    """An API timestamp to the minute, in UTC."""
    if not value:
        return "–"
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def model_facts(
    card: dict[str, Any], outcome: dict[str, Any] | None = None
) -> list[tuple[str, str]]:
    window = card.get("training_window") or {}
    churn_window = (card.get("windows") or {}).get("churn") or {}
    facts = [
        ("Version", card["model_version"]),
        ("Champion since", when(card.get("champion_since"))),
        ("Trained", when(card.get("trained_at"))),
        ("Training data", f"{_day(window.get('start'))} to {_day(window.get('end'))}"),
    ]
    if churn_window.get("test_cutoff"):
        facts.append(
            (
                "Backtest",
                f"predictions at {churn_window['test_cutoff']} checked against the next "
                f"{churn_window.get('horizon_days', '–')} days",
            )
        )
    served = served_window(card.get("production"))
    if served:
        facts.append(("Served model", served))
    realized = realized_view(card, outcome)
    if realized:
        facts.append(("Realized", realized))
    facts.append(("Features", number(len(card.get("feature_schema") or []))))
    return facts


def realized_view(card: dict[str, Any], outcome: dict[str, Any] | None) -> str | None:
    """The served model's realized churn ROC AUC against its backtest's, in a sentence (None
    until the trainer has measured this model's scores once their horizon passed)."""
    if not outcome or outcome.get("model_tag") != card.get("model_tag"):
        return None
    auc, promised = outcome.get("roc_auc"), outcome.get("backtest_roc_auc")
    measured = f"ROC AUC {auc:.3f}" if auc is not None else "ROC AUC undefined (one class)"
    against = f" against {promised:.3f} in the backtest" if promised is not None else ""
    sentence = (
        f"{measured}{against} for its predictions of {outcome['score_date']}, checked against "
        f"the next {outcome['horizon_days']} days; Brier score {outcome['brier']:.3f}"
    )
    if outcome.get("drift"):
        sentence += " — more than the allowed drop, so a retrain was asked for"
    return sentence


def served_window(production: dict[str, Any] | None) -> str | None:
    """The production window in a sentence: what the served models were trained on (None for a
    model published before the refit, which serves the backtested one)."""
    if not production:
        return None
    if not production.get("refitted"):
        return str(production.get("reason") or "the backtested model, not refitted")
    churn = (production.get("churn") or {}).get("training_cutoffs") or ["–"]
    ltv = (production.get("ltv") or {}).get("training_cutoffs") or ["–"]
    return (
        f"refitted after the backtest on outcomes up to {production.get('data_end', '–')} "
        f"(churn cutoffs to {churn[-1]}, lifetime value to {ltv[-1]})"
    )


def _day(value: str | None) -> str:
    return value[:10] if value else "–"


# --- backtest ---------------------------------------------------------------------------------


def backtest(card: dict[str, Any]) -> list[dict[str, Any]]:
    """Per group of metrics on one scale: a table (model and every baseline, best marked) and
    grouped horizontal bars of the same numbers."""
    groups = []
    for task, title, metrics, note in (
        (
            "churn",
            "Churn: who will stop buying",
            CHURN_METRICS,
            "Higher is better, but for the Brier score.",
        ),
        (
            "ltv",
            "Lifetime value: ranking customers by what they will spend",
            LTV_RANKING,
            "Higher is better.",
        ),
        ("ltv", "Lifetime value: error in money", LTV_ERRORS, "Lower is better."),
    ):
        section = card.get(task) or {}
        model = section.get("model") or {}
        baselines = section.get("baselines") or {}
        names = [m for m in metrics if m in model] + [
            m for m in model if m not in _KNOWN and metrics is _TAKES_OTHERS[task]
        ]
        if not names:
            continue
        columns = [("Model", model)] + [
            (BASELINES.get(name, name), values) for name, values in baselines.items()
        ]
        rows = []
        for metric in names:
            label, higher = _KNOWN.get(metric, (metric, True))
            cells = [of.get(metric) for _, of in columns]
            known = [v for v in cells if isinstance(v, int | float)]
            best = (max(known) if higher else min(known)) if known else None
            rows.append({"metric": metric, "label": label, "cells": cells, "best": best})
        groups.append(
            {
                "id": f"backtest-{task}-{len(groups)}",
                "title": title,
                "note": note,
                "columns": [name for name, _ in columns],
                "rows": rows,
                "money": metrics is LTV_ERRORS,
                "chart": _metric_bars(columns, rows),
                "label": _metric_label(title, columns, rows),
            }
        )
    return groups


def _metric_bars(columns: list[tuple[str, dict]], rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "animation": False,
        "tooltip": {"trigger": "axis", "axisPointer": {"type": "shadow"}},
        "legend": {"top": 0},
        "grid": {"left": 8, "right": 16, "bottom": 8, "top": 56, "containLabel": True},
        "xAxis": {"type": "value"},
        "yAxis": {
            "type": "category",
            "inverse": True,
            "data": [row["label"] for row in rows],
            "axisLabel": {"width": 130, "overflow": "break", "lineHeight": 14},
        },
        "series": [
            {
                "name": name,
                "type": "bar",
                "itemStyle": {"color": SERIES_COLOURS[i % len(SERIES_COLOURS)]},
                "data": [
                    round(v, 4) if isinstance(v, int | float) else None
                    for v in (row["cells"][i] for row in rows)
                ],
            }
            for i, (name, _) in enumerate(columns)
        ],
    }


def _metric_label(title: str, columns: list[tuple[str, dict]], rows: list[dict[str, Any]]) -> str:
    parts = [
        f"{row['label']}: "
        + ", ".join(
            f"{name} {number(value, 3) if value is not None else 'none'}"
            for (name, _), value in zip(columns, row["cells"], strict=True)
        )
        for row in rows
    ]
    return f"Bar chart, {title}. " + "; ".join(parts) + ". The same figures are in the table."


# --- calibration, importance, orders -----------------------------------------------------------

IMPORTANCE_SHOWN = 8


def quality_view(card: dict[str, Any]) -> dict[str, Any] | None:
    """What the card says beyond the backtest table: how well churn probabilities are calibrated
    (the reliability bins), which features move the scores most (mean absolute contribution),
    and how expected orders and next-order dates did against BG/NBD. None for a model trained
    before these were measured."""
    churn, ltv = card.get("churn") or {}, card.get("ltv") or {}
    orders = card.get("orders")
    importance = {
        task: [
            {"name": name, "label": _feature_label(name), "value": value}
            for name, value in list((section.get("importance") or {}).items())[:IMPORTANCE_SHOWN]
        ]
        for task, section in (("churn", churn), ("ltv", ltv))
    }
    bins = [b for b in churn.get("reliability") or [] if b.get("count")]
    if not (bins or importance["churn"] or importance["ltv"] or orders):
        return None
    rows = []
    if orders:
        rows = [("Model", orders.get("model") or {})] + [
            (BASELINES.get(name, name), values)
            for name, values in (orders.get("baselines") or {}).items()
        ]
    return {
        "ece": churn.get("expected_calibration_error"),
        "bins": bins,
        "importance": importance,
        "orders": orders,
        "order_rows": [
            {
                "name": name,
                "mae": values.get("mae"),
                "days": values.get("next_order_median_abs_days"),
            }
            for name, values in rows
        ],
    }


# --- drift -------------------------------------------------------------------------------------


def drift_view(card: dict[str, Any]) -> dict[str, Any]:
    drift = card.get("drift") or {}
    threshold = drift.get("threshold")
    features = sorted(
        (
            {
                "name": name,
                "label": _feature_label(name),
                "psi": psi,
                "over": threshold is not None and psi > threshold,
            }
            for name, psi in (drift.get("psi") or {}).items()
        ),
        key=lambda f: -f["psi"],
    )
    view = {
        "status": drift.get("status", "not checked yet"),
        "checked_at": when(drift.get("checked_at")),
        "threshold": threshold,
        "features": features,
        "drifted": [_feature_label(name) for name in drift.get("drifted_features") or []],
    }
    if features:
        view["chart"] = _drift_bars(features, threshold)
        view["label"] = (
            f"Bar chart of the population stability index per feature, threshold {threshold}. "
            + "; ".join(f"{f['label']}: {number(f['psi'], 3)}" for f in features)
            + ". The same figures are in the table."
        )
    return view


def _feature_label(name: str) -> str:
    feature = FEATURES_BY_NAME.get(name)
    return feature.label if feature is not None and feature.label else name


def _drift_bars(features: list[dict[str, Any]], threshold: float | None) -> dict[str, Any]:
    series: dict[str, Any] = {
        "name": "PSI",
        "type": "bar",
        "data": [
            {
                "value": round(f["psi"], 4),
                "itemStyle": {"color": "#b42318" if f["over"] else "#1f5fbf"},
            }
            for f in features
        ],
    }
    if threshold is not None:
        series["markLine"] = {
            "symbol": "none",
            "silent": True,
            "lineStyle": {"color": "#b42318", "type": "dashed"},
            "label": {"formatter": f"threshold {threshold}", "position": "start"},
            "data": [{"xAxis": threshold}],
        }
    return {
        "baseOption": _drift_base(features, series),
        # On a phone the feature names get less room, the bars more.
        "media": [{"query": {"maxWidth": 500}, "option": {"yAxis": {"axisLabel": {"width": 110}}}}],
    }


def _drift_base(features: list[dict[str, Any]], series: dict[str, Any]) -> dict[str, Any]:
    return {
        "animation": False,
        "tooltip": {"trigger": "axis", "axisPointer": {"type": "shadow"}},
        "grid": {"left": 8, "right": 24, "bottom": 24, "top": 28, "containLabel": True},
        "xAxis": {"type": "value", "name": "PSI", "nameLocation": "middle", "nameGap": 24},
        "yAxis": {
            "type": "category",
            "inverse": True,
            "data": [f["label"] for f in features],
            "axisLabel": {"width": 200, "overflow": "truncate"},
        },
        "series": [series],
    }


# --- runs --------------------------------------------------------------------------------------


def run_view(run: dict[str, Any]) -> dict[str, Any]:
    state = run["status"]
    finished = state in FINISHED
    timings = run.get("timings") or {}
    gate = run.get("gate") or {}
    started = run.get("started_at") or run.get("created_at")
    return {
        **run,
        "short_id": run["run_id"][:8],
        "finished": finished,
        "status_label": STATUS_LABELS.get(state, state),
        "trigger": _triggers(run.get("triggers") or []),
        "started": when(started),
        "duration": _duration(started, run.get("finished_at")) if finished else None,
        "candidate": gate.get("candidate") or {},
        "champion": gate.get("champion") or {},
        "now": None if finished else _current_stage(state, timings),
        "stages": [
            (STAGE_LABELS.get(name, name), _seconds(seconds)) for name, seconds in timings.items()
        ],
        "has_report": bool(run.get("has_run_report")) and state in ("published", "rejected"),
    }


def _triggers(triggers: list[dict[str, Any]]) -> str:
    named = []
    for trigger in triggers:
        text = TRIGGERS.get(trigger.get("kind", ""), trigger.get("kind", ""))
        if trigger.get("kind") == "request" and trigger.get("detail"):
            text += f": {trigger['detail']}"
        named.append(text)
    return ", ".join(dict.fromkeys(named)) or "–"


def _current_stage(state: str, timings: dict[str, float]) -> str:
    if state == "queued":
        return "waiting for the lake to hold every order sent before it, and for any other run to finish"
    for names, label in STAGES:
        if not any(name in timings for name in names):
            return label
    return "finishing"


def _duration(start: str | None, end: str | None) -> str | None:
    if not start or not end:
        return None
    try:
        seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except ValueError:
        return None
    return _seconds(seconds)


def _seconds(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"
