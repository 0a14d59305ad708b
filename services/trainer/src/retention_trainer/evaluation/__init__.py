"""Backtest metrics for churn and LTV."""
