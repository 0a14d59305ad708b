"""Where an empty service's memory goes: resident memory added by each import, per service.

    uv run python bench/scale/floors.py

For each service, a fresh interpreter imports the heavy libraries that service loads, one at a
time in a fixed order, then the service's app module and its app object, and reports VmRSS
after each step; a step's share is what it added on top of the steps before it (a library
another already pulled in adds nothing). The running service's floor (bench/scale/run.py)
minus the last step here is what running adds: uvicorn, threads, broker connections, the
app's state.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.harness import load  # noqa: E402

SERVICE = ["pydantic", "fastapi", "aiokafka", "faststream.kafka", "prometheus_client"]
SHARED = [*SERVICE, "polars"]
STEPS = {
    "ingest": [*SHARED, "pyarrow", "pyarrow.parquet", "fastexcel"],
    "features": SHARED,
    # Training (scipy.optimize, scikit-learn) runs in a child process per run (runs/child.py).
    "trainer": [*SHARED, "numpy", "pyarrow", "scipy.special", "xgboost", "bentoml", "boto3"],
    "scoring": [*SHARED, "numpy", "scipy.special", "xgboost", "bentoml"],
    "webhooks": [*SERVICE, "httpx"],  # webhooks and the console hold no data frame
    "console": [*SERVICE, "httpx", "jinja2"],
}
CHILD = """
import importlib, json, sys
def rss():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:"))
service = sys.argv[1]
if service in ("scoring", "trainer"):  # as their __main__ does: no scikit-learn behind XGBoost
    sys.modules.setdefault("sklearn", None)
steps = [("python", rss())]
for name in sys.argv[2:]:
    importlib.import_module(name)
    steps.append((name, rss()))
app = importlib.import_module(f"retention_{service}.app")
steps.append((f"retention_{service}.app", rss()))
from retention_shared.config import Settings
import tempfile
app.create_app(Settings(dev_mode=True, data_dir=tempfile.mkdtemp(prefix="floors-")))
steps.append(("create_app()", rss()))
print(json.dumps(steps))
"""


def import_steps(service: str) -> list[tuple[str, int]]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, service, *STEPS[service]],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return [(name, kib) for name, kib in json.loads(out.stdout.strip().splitlines()[-1])]


def main() -> int:
    print(f"load average: {load()}")
    results = {}
    for service in STEPS:
        steps = import_steps(service)
        results[service] = steps
        previous = 0
        parts = []
        for name, kib in steps:
            added = kib - previous
            previous = kib
            if added >= 2048 or name in ("python", "create_app()"):
                parts.append(f"{name} +{added / 1024:.0f}")
        print(f"{service:<9} {steps[-1][1] / 1024:6.0f} MiB: " + ", ".join(parts))
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
