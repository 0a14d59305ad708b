import os
import sys

# Idle OpenMP threads (XGBoost, scikit-learn) spin by default; on busy cores that made the same
# fit 10x slower (bench/trainer). Must be set before the OpenMP runtime loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# XGBoost imports scikit-learn (and with it most of SciPy) only for its scikit-learn wrappers,
# which scoring never uses: without them a replica holds ~60 MiB less (bench/scale/floors.py).
sys.modules.setdefault("sklearn", None)

from retention_scoring.app import create_app  # noqa: E402 (after the sklearn block)
from retention_shared.service import run_service  # noqa: E402

run_service("scoring", create_app)
