import os
import sys

# Idle OpenMP threads (XGBoost, scikit-learn) spin by default; on busy cores that made the same
# fit 10x slower (bench/trainer). Must be set before the OpenMP runtime loads; the training child
# inherits it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Training runs in a child process (runs/child.py); this process only stores, schedules,
# promotes and monitors. scikit-learn (and with it SciPy's optimizers), which XGBoost would pull
# in for wrappers nobody here uses, stays out: an import of it fails loudly instead of costing
# memory for the process's lifetime.
sys.modules.setdefault("sklearn", None)

from retention_shared.service import run_service  # noqa: E402 (after the sklearn block)
from retention_trainer.app import create_app  # noqa: E402

run_service("trainer", create_app)
