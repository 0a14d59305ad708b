"""Fitting the purchase model (`retention_bundle.models.purchase`): BG/NBD and Gamma-Gamma by
maximum likelihood on one cutoff's registry features."""

from __future__ import annotations

import polars as pl

from retention_bundle.models.gamma_gamma import GammaGammaParams
from retention_bundle.models.purchase import PurchaseModel, purchase_summary
from retention_trainer.classical.bgnbd import fit_bgnbd
from retention_trainer.classical.gamma_gamma import fit_gamma_gamma

__all__ = ["fit_purchase_model"]


def fit_purchase_model(features: pl.DataFrame) -> PurchaseModel:
    """Fit both models on one cutoff's features (customers with a purchase by then)."""
    x, t_x, T, z = purchase_summary(features)
    bgnbd = fit_bgnbd(x, t_x, T).params
    gamma_gamma = fit_gamma_gamma(x, z).params
    if gamma_gamma.q <= 1.0:  # infinite population mean: keep the spend finite
        gamma_gamma = GammaGammaParams(gamma_gamma.p, 1.0 + 1e-3, gamma_gamma.gamma)
    return PurchaseModel(bgnbd, gamma_gamma)
