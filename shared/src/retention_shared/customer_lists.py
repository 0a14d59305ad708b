"""Customer lists shown in more than one place (the console, the demo, README): one definition.

A list is the query parameters of scoring's `GET /v1/customers`, so a caller passes it as is and
a link to the console's customer list carries the same filter and order.
"""

from __future__ import annotations

from typing import Final

__all__ = ["HIGH_VALUE_AT_RISK"]

# "High-value customers at risk", the list a CRM team exports first: medium or high churn risk
# among High/VIP predicted value, ordered by revenue at risk (churn probability x predicted LTV),
# so the most valuable come first. High risk alone (p >= 0.6) among High/VIP value is a handful
# of customers or none: a model ranks the best customers as the least likely to leave.
HIGH_VALUE_AT_RISK: Final[dict[str, str | int]] = {
    "risk_band": "medium,high",
    "value_tier": "High,VIP",
    "sort": "revenue_at_risk",
    "limit": 10,
}
