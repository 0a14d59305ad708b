"""Erasing a customer, end to end on the real broker: the four services as processes, the real
orders of `online_retail_slice.parquet` uploaded to ingest, a champion so scoring serves scores.

The customer is 12437, the one customer of the slice with a row ingest rejects (a "Manual" line
at price 0), so they are in features, scores, the lake *and* a stored rejects.csv. Their five
digits occur in no other value of the slice (invoices, stock codes, descriptions, other ids):
checked below, as is their absence from the data directory (model bundle included) before any
order arrives — so a byte search for "12437" finds their data and nothing else. A second
customer, never erased, shows the same search finds what is there.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import polars as pl
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from retention_cli.stack import Stack
from retention_shared.config import Settings
from retention_shared.events import CustomerErased, decode_event
from retention_shared.kafka.clients import aiokafka_options
from retention_shared.topics import Topics
from retention_trainer.consumers.transactions import GROUP_ID as LAKE_GROUP
from tests.support.features_service import FeaturesProcess, read_to_end, wait_caught_up
from tests.support.kafka_reading import read_until
from tests.support.problems import first_problem
from tests.support.scoring_service import (
    announce,
    model_published,
    store_bundle,
    train_bundle,
    wait_for,
)
from tests.support.stack import API_KEYS, auth, running_stack, url
from tests.support.uci_orders import TEST_DATA

pytestmark = pytest.mark.slow

SLICE = TEST_DATA / "online_retail_slice.parquet"
ERASED = "12437"
KEPT = "12583"  # the first customer of the slice, never erased
FEATURES_KEY = {"Authorization": "Bearer features-test"}
READ_KEY = "e2e-read"
SERVICES = {"features", "ingest", "scoring", "trainer"}


def occurrences(root: Path, needle: str) -> list[str]:
    """Every file under `root` whose content holds `needle`: raw bytes (SQLite files and their
    WAL, CSV, JSON, model files), Parquet decoded (its pages are compressed), gzip unpacked."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if data.startswith(b"PAR1"):
            frame = pl.read_parquet(io.BytesIO(data))
            data = frame.write_ndjson().encode() + b"".join(name.encode() for name in frame.columns)
        elif data.startswith(b"\x1f\x8b"):
            data = gzip.decompress(data)
        if needle.encode() in data:
            found.append(str(path.relative_to(root)))
    return found


def test_the_erased_id_occurs_nowhere_else_in_the_slice() -> None:
    raw = pl.read_parquet(SLICE)
    customers = raw.get_column("CustomerID").drop_nulls().cast(pl.Int64).cast(pl.String)
    other_values = pl.concat(
        [
            customers.filter(customers != ERASED),
            *(
                raw.get_column(c).drop_nulls().cast(pl.String)
                for c in raw.columns
                if c != "CustomerID"
            ),
        ]
    )
    assert not other_values.str.contains(ERASED, literal=True).any()
    assert (customers == ERASED).any() and (customers == KEPT).any()
    rejected = raw.filter((pl.col("CustomerID") == float(ERASED)) & (pl.col("UnitPrice") <= 0))
    assert rejected.height == 1


@pytest.fixture
def stack(kafka_settings: Settings, tmp_path: Path) -> Iterator[tuple[Stack, FeaturesProcess]]:
    """Ingest, trainer and scoring from the stack; features as a process of its own on the same
    data directory, so the test can restart it without its state."""
    with running_stack(
        kafka_settings,
        tmp_path / "services.log",
        services=("ingest", "trainer", "scoring"),
        RETENTION_API_KEYS=f"{API_KEYS},{READ_KEY}:default:read",
        RETENTION_RETRAIN_EVERY_HOURS="0",
        # The upload's retrain request then ends as a quick "skipped" run.
        RETENTION_MIN_TRAINING_CUSTOMERS="1000000",
    ) as services:
        features = FeaturesProcess(
            kafka_settings, kafka_settings.data_dir, tmp_path / "features.log"
        ).start()
        try:
            yield services, features
        finally:
            features.stop()


def features_url(features: FeaturesProcess, customer: str) -> str:
    return f"http://127.0.0.1:{features.port}/v1/customers/{customer}/features"


def confirmations(settings: Settings, erasure_id: str) -> list[CustomerErased]:
    """The `CustomerErased` of `erasure_id`, once all four services confirmed it."""
    topic = Topics.with_prefix(settings.topic_prefix).erasure_audit

    def mine(records: list) -> list[CustomerErased]:
        events = [decode_event(CustomerErased, r.value) for r in records]
        return [e for e in events if e.erasure_id == erasure_id]

    records = asyncio.run(
        read_until(
            settings, topic, lambda rs: {e.service for e in mine(rs)} == SERVICES, timeout=120
        )
    )
    assert all(ERASED.encode() not in r.value and r.key for r in records)
    return mine(records)


def first_order(customer_id: str) -> dict:
    """The customer's first invoice of the slice, as `POST /v1/orders` takes it."""
    raw = pl.read_parquet(SLICE).filter(pl.col("CustomerID") == float(customer_id))
    invoice = raw.filter(pl.col("InvoiceNo") == raw["InvoiceNo"][0])
    return {
        "order_id": invoice["InvoiceNo"][0],
        "customer_id": customer_id,
        "order_datetime": invoice["InvoiceDate"][0].isoformat(),
        "lines": [
            {"product_id": code, "quantity": quantity, "unit_price": price}
            for code, quantity, price in invoice.select(
                "StockCode", "Quantity", "UnitPrice"
            ).iter_rows()
        ],
    }


async def lake_applied(settings: Settings) -> bool:
    """Whether the trainer's lake consumer committed every `transactions` record."""
    topic = Topics.with_prefix(settings.topic_prefix).transactions
    ends: dict[int, int] = {}
    for record in await read_to_end(settings, topic):
        ends[record.partition] = record.offset + 1
    consumer = AIOKafkaConsumer(group_id=settings.consumer_group(LAKE_GROUP), **aiokafka_options(settings))
    await consumer.start()
    try:
        for partition, end in ends.items():
            if (await consumer.committed(TopicPartition(topic, partition)) or 0) < end:
                return False
        return True
    finally:
        await consumer.stop()


def last_records(settings: Settings, topic: str, key: bytes) -> list:
    records = asyncio.run(read_to_end(settings, topic))
    return [r for r in records if r.key == key]


def test_an_erased_customer_is_gone_from_every_service_file_and_topic(
    stack: tuple[Stack, FeaturesProcess], kafka_settings: Settings, tmp_path: Path
) -> None:
    services, features = stack
    data_dir = kafka_settings.data_dir
    topics = Topics.with_prefix(kafka_settings.topic_prefix)
    scoring, ingest = url(services, "scoring"), url(services, "ingest")
    tag = store_bundle(train_bundle(), Path(services.env["BENTOML_HOME"]), tmp_path)
    asyncio.run(announce(kafka_settings, model_published("default", tag)))
    assert occurrences(data_dir, ERASED) == [], "the id must not occur before its orders"

    with SLICE.open("rb") as file:
        upload = httpx.post(
            f"{ingest}/v1/uploads", files={"file": (SLICE.name, file)}, headers=auth(), timeout=60
        )
    assert upload.status_code == 202, upload.text
    upload_id = upload.json()["upload_id"]
    wait_for(
        lambda: (
            httpx.get(f"{ingest}/v1/uploads/{upload_id}", headers=auth()).json()["state"]
            in ("done", "failed")
        ),
        timeout=120,
        what="the upload ends",
    )
    rejects = (data_dir / "ingest" / "uploads" / upload_id / "rejects.csv").read_text()
    assert ",Manual,1," in rejects and f",{ERASED}.0," in rejects

    # Everywhere before: features, scores, the lake, customer-scores, the files.
    for customer in (ERASED, KEPT):
        wait_for(
            lambda c=customer: (
                httpx.get(features_url(features, c), headers=FEATURES_KEY).status_code == 200
            ),
            timeout=120,
            what=f"features has {customer}",
        )
        wait_for(
            lambda c=customer: (
                httpx.get(f"{scoring}/v1/customers/{c}/score", headers=auth()).status_code == 200
            ),
            timeout=120,
            what=f"scoring scores {customer}",
        )
    lake_dir = data_dir / "lake"
    wait_for(
        lambda: any("lake" in f for f in occurrences(data_dir, ERASED)),
        timeout=60,
        what="the lake holds the customer",
    )
    score_key = f"default:{ERASED}".encode()
    asyncio.run(
        read_until(
            kafka_settings,
            topics.customer_scores,
            lambda rs: any(r.key == score_key for r in rs),
            timeout=60,
        )
    )
    before = occurrences(data_dir, ERASED)
    assert any(f.startswith(f"features/{topics.transactions}-") for f in before), before
    assert any(f.startswith("ingest/uploads/") for f in before), before
    listed = httpx.get(f"{scoring}/v1/customers?limit=10000", headers=auth()).json()
    assert ERASED in {c["customer_id"] for c in listed["customers"]}
    segments = httpx.get(f"{scoring}/v1/segments", headers=auth()).json()

    # Who may ask: a read key may not; another tenant's key gets the answer an unknown id gets
    # and erases nothing of this tenant.
    forbidden = httpx.delete(f"{scoring}/v1/customers/{ERASED}", headers=auth(READ_KEY))
    assert forbidden.status_code == 403, forbidden.text
    bad = httpx.delete(f"{scoring}/v1/customers/%E2%80%AE{ERASED}", headers=auth())
    assert bad.status_code == 422 and first_problem(bad)[0] == "customer_id"
    unknown = httpx.delete(f"{scoring}/v1/customers/no-such-customer", headers=auth())
    other = httpx.delete(f"{scoring}/v1/customers/{ERASED}", headers=auth("e2e-other"))
    assert other.status_code == unknown.status_code == 202, other.text
    assert other.json().keys() == unknown.json().keys()
    assert other.json()["tenant_id"] == "other"
    for done in (other, unknown):
        confirmations(kafka_settings, done.json()["erasure_id"])
    assert httpx.get(features_url(features, ERASED), headers=FEATURES_KEY).status_code == 200
    assert httpx.get(f"{scoring}/v1/customers/{ERASED}/score", headers=auth()).status_code == 200
    assert occurrences(lake_dir, ERASED) and occurrences(data_dir / "ingest", ERASED)

    erasure = httpx.delete(f"{scoring}/v1/customers/{ERASED}", headers=auth())
    assert erasure.status_code == 202, erasure.text
    audit = confirmations(kafka_settings, erasure.json()["erasure_id"])
    removed = {event.service: event.removed for event in audit}
    assert removed["features"]["orders"] > 0 and removed["trainer"]["lake_rows"] > 0
    assert removed["ingest"]["reject_rows"] >= 1 and removed["ingest"]["order_fingerprints"] > 0
    assert {event.requested_by for event in audit} == {audit[0].requested_by}
    assert audit[0].requested_by.startswith("default/admin/key:")
    assert "e2e-key" not in audit[0].requested_by
    progress = f"{scoring}/v1/erasures/{erasure.json()['erasure_id']}"
    wait_for(
        lambda: httpx.get(progress, headers=auth()).json()["complete"],
        timeout=30,
        what="scoring reports the erasure complete",
    )
    status = httpx.get(progress, headers=auth())
    assert status.json()["waiting_for"] == [] and ERASED not in status.text
    assert {c["service"] for c in status.json()["confirmations"]} == SERVICES
    assert httpx.get(progress, headers=auth("e2e-other")).status_code == 404
    assert httpx.get(progress, headers=auth(READ_KEY)).status_code == 403

    # A 404 everywhere, and gone from lists and segment counts.
    assert httpx.get(features_url(features, ERASED), headers=FEATURES_KEY).status_code == 404
    wait_for(
        lambda: (
            httpx.get(f"{scoring}/v1/customers/{ERASED}/score", headers=auth()).status_code == 404
        ),
        timeout=30,
        what="scoring forgets the customer",
    )
    assert httpx.get(f"{scoring}/v1/customers/{ERASED}/features", headers=auth()).status_code == 404
    after = httpx.get(f"{scoring}/v1/customers?limit=10000", headers=auth()).json()
    assert after["total"] == listed["total"] - 1
    assert ERASED not in {c["customer_id"] for c in after["customers"]}
    counted = sum(
        s["customers"]
        for s in httpx.get(f"{scoring}/v1/segments", headers=auth()).json()["segments"]
    )
    assert counted == sum(s["customers"] for s in segments["segments"]) - 1
    assert httpx.get(features_url(features, KEPT), headers=FEATURES_KEY).status_code == 200

    # Tombstones close both compacted topics' histories of the customer.
    for topic in (topics.customer_features, topics.customer_scores):
        assert last_records(kafka_settings, topic, score_key)[-1].value is None, topic

    # No file under the data directory (features state and WAL, lake, rejects, ingest and
    # trainer stores, model store) holds the id; the kept customer is still found.
    assert occurrences(data_dir, ERASED) == []
    assert any(
        f.startswith(f"features/{topics.transactions}-") for f in occurrences(data_dir, KEPT)
    )

    # Upstream sends the customer's first order again (an export re-sent): ingest accepts and
    # publishes it, but features and the lake skip it and ingest keeps no fingerprint of it.
    again = httpx.post(f"{ingest}/v1/orders", json=first_order(ERASED), headers=auth())
    assert again.status_code == 200 and again.json()["accepted"] == 1, again.text
    wait_caught_up([features], partitions=kafka_settings.topic_partitions)
    wait_for(
        lambda: asyncio.run(lake_applied(kafka_settings)),
        timeout=60,
        what="the lake consumer applied every transactions record",
    )
    assert httpx.get(features_url(features, ERASED), headers=FEATURES_KEY).status_code == 404
    assert occurrences(data_dir, ERASED) == []

    # A replay does not bring the customer back: features restarted without its state files.
    features.stop()
    for state in (data_dir / "features").glob("*.sqlite*"):
        if state.name.startswith(topics.transactions):
            state.unlink()
    features.start()
    wait_caught_up([features], partitions=kafka_settings.topic_partitions)
    wait_for(
        lambda: httpx.get(features_url(features, KEPT), headers=FEATURES_KEY).status_code == 200,
        timeout=60,
        what="features rebuilt",
    )
    assert httpx.get(features_url(features, ERASED), headers=FEATURES_KEY).status_code == 404
    assert last_records(kafka_settings, topics.customer_features, score_key)[-1].value is None
    time.sleep(1)
    assert httpx.get(f"{scoring}/v1/customers/{ERASED}/score", headers=auth()).status_code == 404
    assert occurrences(data_dir, ERASED) == []

    # A features instance that lost its whole data directory, erasure list included, reads every
    # request again (a new consumer group) and forgets the customer once more.
    features.stop()
    shutil.rmtree(data_dir / "features")
    features.start()
    wait_caught_up([features], partitions=kafka_settings.topic_partitions)
    wait_for(
        lambda: httpx.get(features_url(features, KEPT), headers=FEATURES_KEY).status_code == 200,
        timeout=60,
        what="features rebuilt from nothing",
    )
    wait_for(
        lambda: (
            httpx.get(features_url(features, ERASED), headers=FEATURES_KEY).status_code == 404
            and occurrences(data_dir / "features", ERASED) == []
        ),
        timeout=60,
        what="the rebuilt features forget the customer again",
    )
    assert last_records(kafka_settings, topics.customer_features, score_key)[-1].value is None
