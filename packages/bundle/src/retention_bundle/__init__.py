"""The model bundle: what the trainer writes and the scoring service reads, and nothing else.

- `bundle`: the bundle's files (JSON and XGBoost UBJ, no pickle), read and written;
- `models`: the predict and explain halves of the churn, LTV, purchase (BG/NBD × Gamma-Gamma)
  and segment models (fitting is the trainer's);
- `predict`: scores and churn contributions of a features frame;
- `backtest_report`: the typed backtest report that travels in the bundle (the held-out
  evidence); `production`: which cutoffs the served models were trained on (the refit);
- `drift_reference`: the reference distributions scoring measures drift against;
- `model_store`: bundles in the BentoML model store; `export`: to and from S3
  (`retention-bundle[s3]`);
- `report_html`: a report's Markdown as a self-contained HTML page; `json_numbers`: NaN as null.
"""
