"""Backtests: the metrics for churn and LTV, the baselines scored next to the models, the
rolling-origin evaluation with its paired bootstrap, and the report they fill in."""
