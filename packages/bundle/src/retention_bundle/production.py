"""The production fit a bundle records: which cutoffs the served models were trained on.

The gate judges a candidate on held-out evidence (the backtest report's ``windows``: training
cutoffs whose labels end before the test cutoff, then the test cutoff). A promoted candidate is
then refitted with the same settings on the latest cutoffs whose labels are complete — the last
one is *data end − horizon* — and that refit is what is stored and served, carrying the held-out
report unchanged as its evidence. This record says which of the two the bundle serves and on
which cutoffs it was trained, so the model card can state both windows.

It travels in ``bundle.json`` under ``production``; bundles written before it have none (read as
None: they serve the evidence model, trained on the report's training cutoffs).
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ProductionFit", "ProductionWindow"]


class _Part(BaseModel):
    # Unknown keys (from a newer trainer) are ignored, as the report's readers do.
    model_config = ConfigDict(extra="ignore", frozen=True)


class ProductionWindow(_Part):
    """The cutoffs one served model was trained on."""

    task: Literal["churn", "ltv"]
    horizon_days: int = Field(description="Days after a cutoff that its label looks at.")
    every_days: int = Field(description="Days between training cutoffs.")
    training_cutoffs: list[date] = Field(
        description="Refitted: the latest is data end − horizon. Otherwise the evidence ones."
    )
    training_rows: int = Field(description="Customer × cutoff examples the model was fitted on.")


class ProductionFit(_Part):
    """What the bundle serves: the refit on the latest complete labels, or the evidence model."""

    refitted: bool = Field(
        description="True: refitted on the latest complete labels after promotion. False: the "
        "model the gate judged is served as it is (`reason` says why)."
    )
    reason: str = Field(description="Why the served model is the one it is, in a sentence.")
    data_end: date = Field(description="Date of the last order the run read.")
    purchase_model_cutoff: date = Field(
        description="Cutoff the BG/NBD × Gamma-Gamma parameters of the LTV stack were fitted at."
    )
    churn: ProductionWindow
    ltv: ProductionWindow
