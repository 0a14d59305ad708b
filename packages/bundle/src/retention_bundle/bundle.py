"""The model bundle: everything needed to score, as XGBoost UBJ and plain JSON files.

Files of a bundle (in the BentoML store, :mod:`retention_bundle.model_store`, they are the files
of the model ``retention-<tenant>:<version>``, in ``model.path``):

| file | content |
| --- | --- |
| ``bundle.json`` | format version, tenant, feature schema (ordered names), churn stack + linear model + threshold, LTV objective + stack + horizon + BG/NBD/Gamma-Gamma parameters, the order model (``orders``: BG/NBD parameters, horizon, booster file or null; absent before it), training windows, backtest report (:mod:`retention_bundle.backtest_report`), production fit (:mod:`retention_bundle.production`; absent from older bundles), reference distributions |
| ``segmenter.json`` | scaler means/scales, centroids, persona names, actions |
| ``churn_xgb.ubj`` | churn XGBoost booster |
| ``ltv_point.ubj`` | LTV point booster (objective in ``bundle.json``) |
| ``ltv_interval.ubj`` | LTV 10%/90% quantile booster (two outputs); the 80% interval's conformal offsets are in ``bundle.json`` (``interval_calibration``) |
| ``*_evidence.ubj`` | a refitted bundle's evidence boosters: the models the gate judged (``evidence_models`` in ``bundle.json``; :meth:`ModelBundle.held_out`) |
| ``orders_xgb.ubj`` | the expected-orders booster, when the trainer kept one (``orders.booster`` in ``bundle.json``) |
| ``report.md`` | the backtest report, for people |
| ``run_report.md``, ``.html``, ``.json`` | the run report for managers, and its numbers (bundles written before it have none) |

Loading reads JSON and calls ``Booster.load_model`` on the UBJ files; nothing is unpickled or
imported from the artifact (docs/architecture.md, principle 7).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import xgboost as xgb

from retention_bundle.backtest_report import BacktestReport, BacktestWindows
from retention_bundle.json_numbers import finite
from retention_bundle.models.bgnbd import BGNBDParams
from retention_bundle.models.churn import ChurnModel, LinearChurnModel
from retention_bundle.models.ltv import IntervalBase, LTVModel, StackLink
from retention_bundle.models.orders import OrderModel
from retention_bundle.models.purchase import PurchaseModel
from retention_bundle.models.segmenter import Segmenter
from retention_bundle.production import ProductionFit
from retention_bundle.report_html import markdown_page

__all__ = ["BUNDLE_FORMAT", "ModelBundle", "read_bundle", "read_segmenter", "write_bundle"]

BUNDLE_FORMAT = 1
ORDERS_BOOSTER = "orders_xgb.ubj"


@dataclass(frozen=True)
class ModelBundle:
    tenant: str
    feature_names: tuple[str, ...]
    segmenter: Segmenter
    churn: ChurnModel
    ltv: LTVModel
    report: BacktestReport
    reference: dict[str, dict[str, list[float]]]
    markdown: str = ""
    extra: dict[str, object] = field(default_factory=dict)
    # The trainer's run report: Markdown and its numbers; empty when absent.
    run_report: str = ""
    run_report_facts: dict[str, object] = field(default_factory=dict)
    # Which cutoffs the served models were trained on (refit after promotion, or the evidence
    # model); None in bundles written before the refit, which serve the evidence model.
    production: ProductionFit | None = None
    # Expected orders and the next-order date; None in bundles written before them, which
    # `order_model` then derives from the LTV part's BG/NBD parameters.
    orders: OrderModel | None = None
    # The models the gate judged, kept beside a refit so a later gate compares with them: the
    # refit has seen labels inside the next run's test window. None when not refitted.
    evidence_churn: ChurnModel | None = None
    evidence_ltv: LTVModel | None = None

    def held_out(self) -> ModelBundle:
        """The bundle as the gate judged it: the evidence models in place of a refit's (itself
        when it was not refitted). A gate scores a champion through this, never the refit."""
        if self.evidence_churn is None or self.evidence_ltv is None:
            return self
        return replace(
            self,
            churn=self.evidence_churn,
            ltv=self.evidence_ltv,
            evidence_churn=None,
            evidence_ltv=None,
        )

    @property
    def order_model(self) -> OrderModel:
        """The bundle's order model, or for an older bundle BG/NBD alone with the parameters of
        its purchase model, over the churn horizon."""
        if self.orders is not None:
            return self.orders
        return OrderModel(self.ltv.purchase_model.bgnbd, self.windows.churn.horizon_days)

    @property
    def windows(self) -> BacktestWindows:
        """The evidence: training, validation and test cutoffs of each task (the report's)."""
        return self.report.windows

    def matrix(self, features: pl.DataFrame) -> np.ndarray:
        missing = [n for n in self.feature_names if n not in features.columns]
        if missing:
            raise ValueError(f"features frame is missing column(s) {', '.join(missing)}")
        return features.select(self.feature_names).to_numpy().astype(np.float64)


def _churn_document(churn: ChurnModel, booster: str) -> dict[str, object]:
    return {
        "model": "xgboost + logistic regression, stacked Platt calibration",
        "booster": booster,
        "linear": churn.linear.as_dict(),
        "calibration": {
            "method": "platt_stacked",
            "formula": "p = 1 / (1 + exp(-(a*m_xgb + b*m_linear + c)))",
            "a": churn.stack[0],
            "b": churn.stack[1],
            "c": churn.stack[2],
        },
        "threshold": churn.threshold,
    }


def _ltv_document(ltv: LTVModel, point: str, interval: str) -> dict[str, object]:
    return {
        "objective": ltv.objective,
        "point_booster": point,
        "interval_booster": interval,
        "interval_quantiles": [0.1, 0.9],
        # Absent before the conformal interval: the quantile booster, uncalibrated.
        "interval_calibration": {
            "method": "split_conformal",
            "formula": "low = expm1(base_low + offset_low), high = expm1(base_high + offset_high)",
            "base": ltv.interval_base,
            "offset_low": ltv.interval_offsets[0],
            "offset_high": ltv.interval_offsets[1],
        },
        "horizon_days": ltv.horizon_days,
        "stack": {
            "formula": f"{ltv.link}(ltv) = w_xgb*u + w_bgnbd*log1p(E_bgnbd) + intercept",
            # Absent before the Poisson stack, whose bundles are "log1p".
            "link": ltv.link,
            "w_xgb": ltv.stack[0],
            "w_bgnbd": ltv.stack[1],
            "intercept": ltv.stack[2],
            # Absent before the seasonal level, i.e. 1: ltv = level * link^-1(...).
            "level": ltv.level,
        },
        "purchase_model": ltv.purchase_model.as_dict(),
    }


# The evidence models' boosters, beside a refit's (see `ModelBundle.held_out`).
_EVIDENCE_FILES = ("churn_xgb_evidence.ubj", "ltv_point_evidence.ubj", "ltv_interval_evidence.ubj")


def _document(bundle: ModelBundle) -> dict[str, object]:
    document: dict[str, object] = {
        "format": BUNDLE_FORMAT,
        "tenant": bundle.tenant,
        "feature_schema": list(bundle.feature_names),
        "churn": _churn_document(bundle.churn, "churn_xgb.ubj"),
        "ltv": _ltv_document(bundle.ltv, "ltv_point.ubj", "ltv_interval.ubj"),
        **({"orders": bundle.orders.as_dict(ORDERS_BOOSTER)} if bundle.orders is not None else {}),
        "windows": bundle.windows.model_dump(mode="json"),
        "report": bundle.report.as_json(),
        "reference_distributions": bundle.reference,
        "extra": bundle.extra,
    }
    if bundle.production:
        document["production"] = bundle.production.model_dump(mode="json")
    if bundle.evidence_churn and bundle.evidence_ltv:
        churn_file, point_file, interval_file = _EVIDENCE_FILES
        document["evidence_models"] = {
            "churn": _churn_document(bundle.evidence_churn, churn_file),
            "ltv": _ltv_document(bundle.evidence_ltv, point_file, interval_file),
        }
    return document


def write_bundle(bundle: ModelBundle, directory: Path) -> None:
    """Write the bundle's files into ``directory`` (see the module docstring)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "bundle.json").write_text(json.dumps(_document(bundle), indent=1))
    (directory / "segmenter.json").write_text(json.dumps(bundle.segmenter.as_dict(), indent=1))
    bundle.churn.booster.save_model(directory / "churn_xgb.ubj")
    bundle.ltv.point.save_model(directory / "ltv_point.ubj")
    bundle.ltv.interval.save_model(directory / "ltv_interval.ubj")
    if bundle.evidence_churn and bundle.evidence_ltv:
        churn_file, point_file, interval_file = _EVIDENCE_FILES
        bundle.evidence_churn.booster.save_model(directory / churn_file)
        bundle.evidence_ltv.point.save_model(directory / point_file)
        bundle.evidence_ltv.interval.save_model(directory / interval_file)
    if bundle.orders is not None and bundle.orders.booster is not None:
        bundle.orders.booster.save_model(directory / ORDERS_BOOSTER)
    (directory / "report.md").write_text(bundle.markdown)
    if bundle.run_report:
        (directory / "run_report.md").write_text(bundle.run_report)
        (directory / "run_report.json").write_text(json.dumps(finite(bundle.run_report_facts)))
        page = markdown_page(bundle.run_report, f"Run report: {bundle.tenant}")
        (directory / "run_report.html").write_text(page)


def _booster(path: Path) -> xgb.Booster:
    booster = xgb.Booster()
    booster.load_model(path)
    booster.set_param({"nthread": 1})
    return booster


def read_bundle(directory: Path) -> ModelBundle:
    """Read a bundle from its files: JSON and UBJ only."""
    document = json.loads((directory / "bundle.json").read_text())
    if document.get("format") != BUNDLE_FORMAT:
        raise ValueError(f"unknown bundle format {document.get('format')!r}")
    churn, ltv = _read_churn(document["churn"], directory), _read_ltv(document["ltv"], directory)
    evidence = document.get("evidence_models")
    orders = _order_model(document.get("orders"), directory)
    markdown = directory / "report.md"
    run_report, run_report_facts = directory / "run_report.md", directory / "run_report.json"
    return ModelBundle(
        tenant=document["tenant"],
        feature_names=tuple(document["feature_schema"]),
        segmenter=read_segmenter(directory),
        churn=churn,
        ltv=ltv,
        report=BacktestReport.model_validate(document["report"]),
        reference=document["reference_distributions"],
        markdown=markdown.read_text() if markdown.exists() else "",
        extra=document.get("extra", {}),
        run_report=run_report.read_text() if run_report.exists() else "",
        run_report_facts=json.loads(run_report_facts.read_text())
        if run_report_facts.exists()
        else {},
        orders=orders,
        production=ProductionFit.model_validate(document["production"])
        if document.get("production")
        else None,
        evidence_churn=_read_churn(evidence["churn"], directory) if evidence else None,
        evidence_ltv=_read_ltv(evidence["ltv"], directory) if evidence else None,
    )


def _read_churn(churn_doc: dict[str, Any], directory: Path) -> ChurnModel:
    calibration = churn_doc["calibration"]
    return ChurnModel(
        booster=_booster(directory / churn_doc["booster"]),
        linear=LinearChurnModel.from_dict(churn_doc["linear"]),
        stack=(float(calibration["a"]), float(calibration["b"]), float(calibration["c"])),
        threshold=float(churn_doc["threshold"]),
    )


def _read_ltv(ltv_doc: dict[str, Any], directory: Path) -> LTVModel:
    stack = ltv_doc["stack"]
    calibration = ltv_doc.get("interval_calibration")
    raw_link, raw_base = stack.get("link", "log1p"), (calibration or {}).get("base", "quantiles")
    if raw_link not in ("log", "log1p") or raw_base not in ("quantiles", "point"):
        raise ValueError(f"unknown LTV stack link {raw_link!r} or interval base {raw_base!r}")
    link: StackLink = "log" if raw_link == "log" else "log1p"
    base: IntervalBase = "point" if raw_base == "point" else "quantiles"
    return LTVModel(
        objective=ltv_doc["objective"],
        point=_booster(directory / ltv_doc["point_booster"]),
        interval=_booster(directory / ltv_doc["interval_booster"]),
        stack=(float(stack["w_xgb"]), float(stack["w_bgnbd"]), float(stack["intercept"])),
        purchase_model=PurchaseModel.from_dict(ltv_doc["purchase_model"]),
        horizon_days=int(ltv_doc["horizon_days"]),
        link=link,
        level=float(stack.get("level", 1.0)),
        interval_base=base,
        interval_offsets=(
            (float(calibration["offset_low"]), float(calibration["offset_high"]))
            if calibration
            else (0.0, 0.0)
        ),
    )


def _order_model(doc: dict[str, Any] | None, directory: Path) -> OrderModel | None:
    """The ``orders`` block of ``bundle.json``; None when absent (bundles before it)."""
    if doc is None:
        return None
    booster = doc.get("booster")
    return OrderModel(
        bgnbd=BGNBDParams(**doc["bgnbd"]),
        horizon_days=int(doc["horizon_days"]),
        booster=_booster(directory / booster) if booster else None,
        scaled_dates=bool(doc.get("scaled_dates", False)),
    )


def read_segmenter(directory: Path) -> Segmenter:
    """Only the segmenter of a bundle's files: ``segmenter.json``, no boosters read."""
    return Segmenter.from_dict(json.loads((directory / "segmenter.json").read_text()))
