import os

# Idle OpenMP threads (XGBoost, scikit-learn) spin by default; on busy cores that made the same
# fit 10x slower (bench/trainer). Must be set before the OpenMP runtime loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from retention_scoring.app import create_app
from retention_shared.service import run_service

run_service("scoring", create_app)
