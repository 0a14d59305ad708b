"""Running the features service as real processes and reading what it produced."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import polars as pl

from retention_features.store import PartitionStore
from retention_shared.config import Settings
from retention_shared.embedded_broker import free_port
from retention_shared.events import CustomerFeatures, decode_event
from retention_shared.kafka.topic_reader import read_to_end as kit_read_to_end

API_KEY = "features-test:default:admin"


@dataclass
class FeaturesProcess:
    """One features-service process with its own state directory (a StatefulSet pod)."""

    settings: Settings
    data_dir: Path
    log_path: Path
    max_batch: int = 2000
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> FeaturesProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RETENTION_")}
        env.update(
            RETENTION_KAFKA_BOOTSTRAP=self.settings.kafka_bootstrap,
            RETENTION_TOPIC_PREFIX=self.settings.topic_prefix,
            RETENTION_FEATURES_PORT=str(self.port),
            RETENTION_DATA_DIR=str(self.data_dir),
            RETENTION_API_KEYS=API_KEY,
            RETENTION_FEATURES_MAX_BATCH=str(self.max_batch),
        )
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "retention_features"], env=env, stdout=log, stderr=log
            )
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)

    def lags(self) -> dict[int, float]:
        """retention_features_consumer_lag per owned partition ({} until the first fetch)."""
        try:
            text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return {}
        found = re.findall(
            r'^retention_features_consumer_lag\{partition="(\d+)"\} (\S+)$', text, re.M
        )
        return {int(p): float(v) for p, v in found}


def wait_caught_up(
    processes: list[FeaturesProcess], partitions: int, timeout: float = 180, settle: float = 1.0
) -> None:
    """Until the processes together own every partition and none lags (twice, `settle` apart)."""
    deadline = time.monotonic() + timeout
    stable = 0
    while stable < 2:
        lags: dict[int, float] = {}
        for process in processes:
            assert process.process is not None and process.process.poll() is None, (
                process.log_path.read_text()[-3000:]
            )
            lags.update(process.lags())
        stable = stable + 1 if len(lags) == partitions and not any(lags.values()) else 0
        if time.monotonic() > deadline:
            raise TimeoutError(f"not caught up after {timeout}s: {lags}")
        time.sleep(settle)


async def read_to_end(settings: Settings, topic: str) -> list:
    """Every record of `topic`, up to the fetch high watermark of each partition."""
    records: list = []
    await kit_read_to_end(settings, topic, records.extend, timeout=600)
    return records


def last_vectors(records: list) -> dict[bytes, dict]:
    """The latest CustomerFeatures per key, without the wall-clock `computed_at`."""
    latest: dict[bytes, dict] = {}
    for record in records:
        vector = decode_event(CustomerFeatures, record.value)
        latest[record.key] = vector.model_dump(exclude={"computed_at"})
    return latest


def stored_orders(data_dirs: list[Path]) -> pl.DataFrame:
    """Every order held in the state files under `data_dirs`, in a canonical order."""
    frames = []
    for data_dir in data_dirs:
        for path in sorted((data_dir / "features").glob("*.sqlite")):
            store = PartitionStore(path)
            frames.append(store.all_history())
            store.close()
    return pl.concat(frames).sort("tenant_id", "order_id", "kind")


def assert_same_vectors(actual: dict[bytes, dict], expected: dict[bytes, dict]) -> None:
    """Same customers, same clocks, histories and source offsets; feature values within 1e-9.

    Floats may differ in the last bits between runs (polars sums on several threads); anything
    else that differs is a real difference, and the message names the fields.
    """
    assert actual.keys() == expected.keys(), f"customers differ: {set(actual) ^ set(expected)}"
    problems = []
    for key, want in expected.items():
        got = actual[key]
        fields = [f for f in want if f != "features" and got[f] != want[f]]
        fields += [
            f"features.{name}"
            for name, value in want["features"].items()
            if abs(got["features"][name] - value) > 1e-9 * max(1.0, abs(value))
        ]
        if fields:
            problems.append((key, fields))
    assert not problems, f"{len(problems)} customers differ, e.g. {problems[:5]}"
