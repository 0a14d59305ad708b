"""The production refit: the promoted candidate, trained again on the latest complete labels.

The gate decides on held-out evidence: the backtest's training cutoffs end a validation window
before the test cutoff, so the model it judged has never seen the last quarter or half-year. Once
a candidate is promoted, :func:`refit_for_production` fits the same model again — same
parameters, same choices made on the validation cutoff (the boosters' numbers of rounds, the LTV
objective, the churn stack, calibration and threshold, the LTV stack), no new selection — on the
training cutoffs shifted so the latest is *data end − horizon* for each task
(:func:`~retention_trainer.training_set.production_cutoffs`, the same spacing), and the LTV
stack's BG/NBD × Gamma-Gamma part is fitted on everything known at data end. The order model
(expected orders, next-order date) follows the churn cutoffs: its method and date rule kept, its
booster (if it has one) refitted, its BG/NBD parameters fitted at data end. The held-out report
stays the bundle's evidence, unchanged; the bundle's ``production``
(:class:`~retention_bundle.production.ProductionFit`) records what is served and on which cutoffs.
The evidence models travel beside the refit, and a later gate scores the champion through them
(:meth:`~retention_bundle.bundle.ModelBundle.held_out`): the refit was trained on labels that
reach into the next run's test window, so comparing it there would favour the champion.

When the shifted cutoffs add none to the evidence ones (a history too short to shift), the
evidence model is served as it is and the record says so.
"""

from __future__ import annotations

import dataclasses
from datetime import date

import numpy as np
import polars as pl

from retention_bundle.backtest_report import BacktestWindows, TaskWindow
from retention_bundle.bundle import ModelBundle
from retention_bundle.production import ProductionFit, ProductionWindow
from retention_trainer.fitting.churn import refit_churn_model
from retention_trainer.fitting.ltv import refit_ltv_model
from retention_trainer.fitting.orders import fit_order_bgnbd, refit_order_model
from retention_trainer.fitting.purchase import fit_purchase_model
from retention_trainer.fitting.seasonal import seasonal_cutoff, with_seasonal_level
from retention_trainer.pipeline import TrainingRun
from retention_trainer.sampling import sample_customers, sampled_orders
from retention_trainer.training_set import last_event_date, production_cutoffs, training_examples

__all__ = ["refit_for_production", "render_windows"]


def _window(evidence: TaskWindow, cutoffs: tuple[date, ...], rows: int) -> ProductionWindow:
    return ProductionWindow(
        task=evidence.task,
        horizon_days=evidence.horizon_days,
        every_days=evidence.every_days,
        training_cutoffs=list(cutoffs),
        training_rows=rows,
    )


def _evidence_model(run: TrainingRun, data_end: date, reason: str) -> ModelBundle:
    windows, report = run.report.windows, run.report
    production = ProductionFit(
        refitted=False,
        reason=reason,
        data_end=data_end,
        purchase_model_cutoff=windows.ltv.test_cutoff,
        churn=_window(
            windows.churn, tuple(windows.churn.training_cutoffs), report.churn.training_rows
        ),
        ltv=_window(windows.ltv, tuple(windows.ltv.training_cutoffs), report.ltv.training_rows),
    )
    return dataclasses.replace(run.bundle, production=production)


def refit_for_production(run: TrainingRun, orders: pl.DataFrame) -> ModelBundle:
    """The bundle to store and serve for a promoted run: its models refitted on the latest
    complete labels of ``orders`` (the run's own orders), or the evidence model when the history
    leaves nothing to shift (see the module docstring). CPU-bound: call it in a worker thread."""
    data_end = last_event_date(orders)
    windows = run.report.windows
    shifted = {
        w.task: production_cutoffs(orders, horizon_days=w.horizon_days, every_days=w.every_days)
        for w in (windows.churn, windows.ltv)
    }
    for w in (windows.churn, windows.ltv):
        if not set(shifted[w.task]) - set(w.training_cutoffs):
            return _evidence_model(
                run,
                data_end,
                f"not refitted: with data ending {data_end}, the {w.task} cutoffs whose "
                f"{w.horizon_days}-day labels are complete are the evidence model's own; "
                "serving the model the gate judged",
            )
    horizons = {
        "churn_horizon_days": windows.churn.horizon_days,
        "ltv_horizon_days": windows.ltv.horizon_days,
    }
    # The refit trains on the customers the gate's evidence trained on (the same sample: the
    # rule is deterministic and these are the run's own orders); data end scores everyone.
    sampling = run.report.sampling
    sample = None
    if sampling is not None and sampling.sampled:
        sample, _ = sample_customers(orders, run.report.tenant, sampling.max_customers)
    fitted = {*shifted["churn"], *shifted["ltv"]}
    if sample is None:
        examples = training_examples(orders, {*fitted, data_end}, **horizons)
    else:
        examples = pl.concat(
            [
                training_examples(sampled_orders(orders, sample), fitted, **horizons),
                training_examples(orders, {data_end}, **horizons),
            ]
        )
    bundle = run.bundle

    def at(cutoffs: tuple[date, ...]) -> pl.DataFrame:
        return examples.filter(pl.col("cutoff").is_in(cutoffs))

    churn_train, ltv_train = at(shifted["churn"]), at(shifted["ltv"])
    churn = refit_churn_model(
        bundle.churn, bundle.matrix(churn_train), churn_train["churned"].to_numpy()
    )
    orders_model = (
        refit_order_model(
            bundle.orders, churn_train, bundle.feature_names, fit_order_bgnbd(at((data_end,)))
        )
        if bundle.orders is not None
        else None
    )
    ltv = refit_ltv_model(
        bundle.ltv,
        bundle.matrix(ltv_train),
        np.asarray(ltv_train["future_spend"].to_numpy(), dtype=float),
        fit_purchase_model(at((data_end,))),
    )
    # The served model scores from data end: its season's level, measured a year before it.
    season = seasonal_cutoff(data_end, shifted["ltv"], windows.ltv.every_days // 2)
    at_season = at((season,)) if season is not None else None
    ltv, _ = with_seasonal_level(
        ltv, at_season, bundle.matrix(at_season) if at_season is not None else None
    )
    production = ProductionFit(
        refitted=True,
        reason=(
            f"refitted after promotion on the latest cutoffs with complete labels (data ends "
            f"{data_end}: churn up to {shifted['churn'][-1]}, LTV up to {shifted['ltv'][-1]}), "
            "with the settings the gate judged"
        ),
        data_end=data_end,
        purchase_model_cutoff=data_end,
        churn=_window(windows.churn, shifted["churn"], churn_train.height),
        ltv=_window(windows.ltv, shifted["ltv"], ltv_train.height),
    )
    # The evidence models stay in the bundle: the next run's gate compares with them, since the
    # refit has seen labels inside that run's test window (`ModelBundle.held_out`).
    return dataclasses.replace(
        bundle,
        churn=churn,
        ltv=ltv,
        orders=orders_model,
        production=production,
        evidence_churn=bundle.churn,
        evidence_ltv=bundle.ltv,
    )


def render_windows(evidence: BacktestWindows, production: ProductionFit) -> str:
    """Both windows as Markdown: what the held-out numbers were measured on, and what the served
    models were trained on."""
    lines = [
        "## Production refit",
        "",
        f"{production.reason[0].upper()}{production.reason[1:]}.",
        "",
        "| task | evidence: training cutoffs | test cutoff | served: training cutoffs | "
        "training rows | data end |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for held_out, served in ((evidence.churn, production.churn), (evidence.ltv, production.ltv)):
        lines.append(
            f"| {served.task} | {held_out.training_cutoffs[0]} to {held_out.training_cutoffs[-1]} "
            f"| {held_out.test_cutoff} | {served.training_cutoffs[0]} to "
            f"{served.training_cutoffs[-1]} | {served.training_rows:,} | {production.data_end} |"
        )
    return "\n".join(lines) + "\n"
