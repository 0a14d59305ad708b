"""What `/readyz` says about the champions: loading holds an instance back, a missing one does not.

Every announced champion must be through its first load attempt before the instance is ready. A
tenant without a champion does not make the instance unready: it answers that tenant's score
requests with 503 and a reason, and `/readyz` names it (with no tenants at all, the instance is
ready).
"""

from __future__ import annotations

from functools import partial

from retention_scoring.champions import Champions
from retention_scoring.instance import ScoringInstance
from retention_scoring.state import ScoringState
from retention_shared.health import CheckResult, Readiness
from retention_shared.kafka.topic_reader import TopicReader

__all__ = ["add_checks", "champions_check", "models_check"]


def add_checks(readiness: Readiness, instance: ScoringInstance) -> None:
    """Caught up with the three topics read whole, and the champions' state."""
    readiness.add("customer-features", instance.features_check)
    readiness.add("customer-scores", instance.scores_check)
    readiness.add("model-events", partial(models_check, instance.models_reader, instance.champions))
    readiness.add("champions", partial(champions_check, instance.state))


async def models_check(models_reader: TopicReader, champions: Champions) -> CheckResult:
    ok, detail = models_reader.status()
    loading = champions.first_loads_pending()
    if ok and loading:
        return False, f"loading the champion of {', '.join(loading)}"
    return ok, detail


async def champions_check(state: ScoringState) -> CheckResult:
    champions = state.champions
    tenants = sorted(set(state.store.tenants) | set(champions.announced))
    missing = [t for t in tenants if champions.get(t) is None]
    if not tenants:
        return True, "no tenants yet"
    if not missing:
        return True, f"every tenant has a champion ({len(tenants)})"
    reasons = "; ".join(
        f"{t}: {champions.problems.get(t, 'no model published yet')}" for t in missing
    )
    return True, f"tenants without a champion (their scores answer 503): {reasons}"
