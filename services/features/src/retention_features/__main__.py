import gc

from retention_features.app import create_app
from retention_shared.service import run_service

# The running totals are a large, long-lived heap of small containers, and each batch allocates
# tens of thousands of objects that live until it is published: with the default thresholds the
# collector rescans that heap many times per batch (~20-30% of a replay's CPU, bench/features).
# Collecting the young generation every 50,000 allocations instead costs a fraction of that.
gc.set_threshold(50_000, 20, 10)

run_service("features", create_app)
