"""Example values the scoring routes' OpenAPI answers share: one customer's score fields and one
row of the segment table, written once so the examples agree with each other."""

# What every answer about one scored customer has (score, list row, score event).
SCORED_CUSTOMER = {
    "customer_id": "14646",
    "churn_probability": 0.71,
    "risk_band": "high",
    "predicted_ltv": 2480.5,
    "ltv_low": 1210.0,
    "ltv_high": 3975.2,
    "value_tier": "VIP",
    "segment": "At risk",
    "action": "Reach out personally with a tailored win-back offer now.",
}

# One segment as `GET /v1/segments` and `GET /v1/insights` list it.
SEGMENT_ROW = {
    "segment": "At risk",
    "customers": 412,
    "revenue_share": 0.18,
    "mean_churn_probability": 0.64,
    "revenue_at_risk": 182034.5,
    "predicted_ltv": 284402.1,
    "action": "Reach out personally with a tailored win-back offer now.",
}
