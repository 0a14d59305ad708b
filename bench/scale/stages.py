"""The pipeline's stages, observed from outside as a user or an operator would see them.

Every milestone is read from a service's own answers, never from its internals:

| milestone | when | read from |
| --- | --- | --- |
| `ingested` | the upload is `done`: every order event published and acknowledged | ingest `GET /v1/uploads/{id}` |
| `features` | features consumed every published order and its lag is 0 on every partition | features `/metrics`: `retention_messages_total{topic=transactions,direction=consumed}`, `retention_features_consumer_lag` |
| `trained` | the training run the upload asked for finished (it must publish a champion) | trainer `GET /v1/runs` |
| `served` | scoring serves that run's model | scoring `GET /v1/model` |
| `materialized` | scoring holds every vector features published (lag 0) | scoring `/metrics`: consumed `customer-features`, `retention_scoring_consumer_lag` |
| `scored` | scoring published a first `CustomerScore` for every customer of the upload | scoring `/metrics`: published `customer-scores` |

The milestones are checked together every `POLL_SECONDS`, and each is stamped the first time it
holds, so stages that overlap (features catch up while the trainer trains) are timed as they
really ran.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from retention_cli.stack import Stack
from retention_shared.topics import Topics

POLL_SECONDS = 0.5
MILESTONES = ("ingested", "features", "trained", "served", "materialized", "scored")
FINISHED_RUNS = {"published", "rejected", "skipped", "failed"}


class StageFailed(RuntimeError):
    pass


def metric_values(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def total(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    return sum(
        value
        for sample, have, value in samples
        if sample == name and all(have.get(k) == v for k, v in labels.items())
    )


@dataclass
class Pipeline:
    """Upload `data` to `stack` and stamp each milestone (monotonic seconds)."""

    stack: Stack
    api_key: str
    topics: Topics = field(default_factory=Topics.with_prefix)
    at: dict[str, float] = field(default_factory=dict)
    upload: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    model_version: str | None = None
    counts: dict[str, float] = field(default_factory=dict)
    started: float = math.nan
    upload_id: str | None = None

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.stack.settings.port_of(service)}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def send(self, client: httpx.Client, data: Path) -> None:
        """`POST /v1/uploads` with the file, as `retention upload` sends it; `started` is set
        just before the request."""
        self.started = time.monotonic()
        with data.open("rb") as file:
            answer = client.post(
                f"{self.url('ingest')}/v1/uploads",
                files={"file": (data.name, file, "application/octet-stream")},
                headers=self.headers,
                timeout=600,
            )
        if answer.status_code != 202:
            raise StageFailed(f"upload refused: {answer.status_code} {answer.text[:500]}")
        self.upload_id = answer.json()["upload_id"]

    def follow(
        self,
        client: httpx.Client,
        timeout: float,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        """Poll until every milestone is stamped; `on_tick` may raise to abort (memory cap)."""
        deadline = self.started + timeout
        while len(self.at) < len(MILESTONES):
            if (crashed := self.stack.exited()) != []:
                names = ", ".join(f"{s.name} ({s.process.returncode})" for s in crashed)
                raise StageFailed(f"exited during the run: {names}")
            if time.monotonic() > deadline:
                missing = [m for m in MILESTONES if m not in self.at]
                raise StageFailed(f"not reached after {timeout:.0f} s: {', '.join(missing)}")
            if on_tick is not None:
                on_tick()
            self._check(client)
            time.sleep(POLL_SECONDS)

    def _stamp(self, milestone: str) -> None:
        if milestone not in self.at:
            self.at[milestone] = time.monotonic()
            elapsed = self.at[milestone] - self.started
            print(f"    {elapsed:7.1f} s  {milestone}", flush=True)

    def _check(self, client: httpx.Client) -> None:
        if "ingested" not in self.at:
            status = client.get(
                f"{self.url('ingest')}/v1/uploads/{self.upload_id}", headers=self.headers
            ).json()
            if status["state"] == "failed":
                raise StageFailed(f"upload failed: {status.get('error')}")
            if status["state"] == "done":
                published = (status.get("progress") or {}).get("orders_published")
                self.upload = status["result"] | {"orders_published": published}
                self._stamp("ingested")
        if "ingested" not in self.at:
            return
        published = self.upload["orders_published"]
        customers = self.upload["customers"]
        if "features" not in self.at:
            samples = metric_values(client.get(f"{self.url('features')}/metrics").text)
            consumed = total(
                samples,
                "retention_messages_total",
                service="features",
                topic=self.topics.transactions,
                direction="consumed",
            )
            lag = total(samples, "retention_features_consumer_lag")
            self.counts["features_consumed"] = consumed
            self.counts["features_vectors_published"] = total(
                samples,
                "retention_messages_total",
                service="features",
                topic=self.topics.customer_features,
                direction="published",
            )
            if consumed >= published and lag == 0:
                self._stamp("features")
        if "trained" not in self.at:
            runs = client.get(f"{self.url('trainer')}/v1/runs", headers=self.headers).json()
            done = [r for r in runs["runs"] if r["status"] in FINISHED_RUNS]
            if done:
                self.run = done[-1]  # newest first: the earliest finished run is the upload's
                if self.run["status"] != "published":
                    raise StageFailed(f"the training run did not publish a model: {self.run}")
                self.model_version = str(self.run["model_tag"]).rpartition(":")[2]
                self._stamp("trained")
        if "trained" in self.at and "served" not in self.at:
            answer = client.get(f"{self.url('scoring')}/v1/model", headers=self.headers)
            if answer.status_code == 200 and answer.json()["model_version"] == self.model_version:
                self._stamp("served")
        if "scored" in self.at and "materialized" in self.at:
            return
        samples = metric_values(client.get(f"{self.url('scoring')}/metrics").text)
        materialized = total(
            samples,
            "retention_messages_total",
            service="scoring",
            topic=self.topics.customer_features,
            direction="consumed",
        )
        scores = total(
            samples,
            "retention_messages_total",
            service="scoring",
            topic=self.topics.customer_scores,
            direction="published",
        )
        self.counts["scoring_vectors_consumed"] = materialized
        self.counts["scores_published"] = scores
        if (
            "features" in self.at
            and materialized >= self.counts["features_vectors_published"]
            and total(samples, "retention_scoring_consumer_lag") == 0
        ):
            self._stamp("materialized")
        if "served" in self.at and "materialized" in self.at and scores >= customers:
            self._stamp("scored")

    def elapsed(self, milestone: str) -> float:
        return self.at.get(milestone, math.nan) - self.started

    def served_customers(self, client: httpx.Client) -> int:
        """How many customers scoring's segment table counts (a check, after the run)."""
        answer = client.get(f"{self.url('scoring')}/v1/segments", headers=self.headers)
        answer.raise_for_status()
        return sum(segment["customers"] for segment in answer.json()["segments"])

    def features_customers(self, client: httpx.Client) -> float:
        """The features service's own count of customers (a gauge it refreshes every 15 s)."""
        samples = metric_values(client.get(f"{self.url('features')}/metrics").text)
        return total(samples, "retention_features_customers")
