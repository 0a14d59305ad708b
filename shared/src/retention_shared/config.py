"""The one settings model every service reads; configured only through `RETENTION_*` variables.

Every field's default is documented in README ("Configuration"); keep the two in step.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class SaslMechanism(StrEnum):
    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


class ClockMode(StrEnum):
    """How recency-like features find "now": the tenant's latest event time, or wall time."""

    TENANT = "tenant"
    WALL = "wall"


class TenantLabels(StrEnum):
    """How `/metrics` names tenants: as they are, as a short hash, or not at all."""

    PLAIN = "plain"
    HASHED = "hashed"
    DROPPED = "dropped"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RETENTION_", extra="ignore")

    # Kafka connection.
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Comma-separated bootstrap servers.")
    kafka_security_protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    kafka_sasl_mechanism: SaslMechanism = SaslMechanism.PLAIN
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    # Off by default: the embedded Tansu broker does not implement InitProducerId.
    kafka_idempotent_producer: bool = False
    topic_prefix: str = Field(
        "", description="Prepended to every topic name and consumer group id, e.g. 'acme.'."
    )
    topic_partitions: int = Field(
        6, ge=1, description="Partitions for topics this project creates."
    )
    topic_replication_factor: int = Field(1, ge=1)

    # HTTP.
    bind_host: str = "127.0.0.1"
    scoring_port: int = 8000
    ingest_port: int = 8001
    features_port: int = 8002
    trainer_port: int = 8003
    console_port: int = 8004
    webhooks_port: int = 8005
    broker_port: int = 9092
    # Where the embedded broker keeps its log: empty = in memory (lost when it restarts), or one
    # of Tansu's durable engines. S3 credentials from AWS_*, endpoint from s3_endpoint_url.
    broker_storage: str = Field("", description="s3://bucket/ or postgres://... for Tansu.")

    # Auth: "key:tenant:role1+role2,..."; a secret, so only ever from the environment.
    api_keys: SecretStr = SecretStr("")
    dev_mode: bool = False

    # Local state (SQLite files, lake, uploads). Models live under BentoML's own BENTOML_HOME.
    data_dir: Path = Path(".retention")

    clock: ClockMode = ClockMode.TENANT
    # How naive order timestamps are read when a tenant has not said otherwise.
    default_timezone: str = "Europe/London"
    max_orders_per_request: int = Field(1000, ge=1)
    # How long ingest waits for the broker's acknowledgements before answering 503.
    publish_timeout_seconds: float = Field(10.0, gt=0)
    max_upload_bytes: int = Field(500 * 1024 * 1024, ge=1)
    # Any other request body (JSON batches); a 1,000-order batch is well under this.
    max_request_bytes: int = Field(10 * 1024 * 1024, ge=1)
    # Unpacked size and rows of one upload: a small gzip can unpack to gigabytes.
    max_upload_unpacked_bytes: int = Field(2 * 1024 * 1024 * 1024, ge=1)
    max_upload_rows: int = Field(50_000_000, ge=1)

    # Bounds on what an order may say (far above any real retailer; beyond → a reason code).
    max_quantity: float = Field(1_000_000, gt=0, description="Largest |quantity| of one line.")
    max_unit_price: float = Field(1_000_000, gt=0, description="Largest unit price.")
    max_order_total: float = Field(100_000_000, gt=0, description="Largest |total| of one order.")
    # An order may be dated at most this far after it arrives (clock skew), and not before the floor.
    max_future_skew_hours: float = Field(24.0, ge=0)
    min_order_date: date = date(1970, 1, 1)
    # A record a consumer fails on this many times in a row goes to the dead-letter path.
    poison_max_attempts: int = Field(3, ge=1)

    # Largest batch the features service applies at once: while catching up, bigger batches
    # recompute each customer fewer times (one vector per touched customer per batch: 2.5 per
    # customer at 10,000 on an upload of 4x online_retail_II); when caught up, batches are
    # small anyway.
    features_max_batch: int = Field(30000, ge=1)

    # Trainer. The lake is local Parquet under data_dir unless lake_url names an S3 location;
    # S3 credentials come from the standard AWS_* variables (boto3 reads them).
    lake_url: str | None = Field(None, description="s3://bucket/prefix for the transaction lake.")
    s3_endpoint_url: str | None = Field(None, description="S3-compatible endpoint, e.g. MinIO.")
    model_export_url: str | None = Field(
        None, description="s3://bucket/prefix where champion bundles are exported."
    )
    retrain_every_hours: float = Field(24.0, ge=0, description="Scheduled retrain; 0 turns it off.")
    cutoff_every_days: int = Field(30, ge=1)
    min_training_customers: int = Field(200, ge=1)
    min_training_history_days: int = Field(180, ge=1)
    # Earlier test origins (30 days apart) a run also evaluates, for the backtest's paired
    # bootstrap intervals against the baselines (docs/trainer.md); 0 = the test cutoff alone.
    trainer_rolling_origins: int = Field(3, ge=0, le=12)
    # Above this many customers, a run's training examples use a deterministic sample of this
    # many (validation and test still use everyone; docs/trainer.md, "Customer sampling"); 0 = no cap.
    trainer_max_customers: int = Field(50_000, ge=0)
    # Above this many customers, the earlier rolling origins and the bootstrap evaluate a sample
    # of this many (same rule; the test cutoff's numbers stay on everyone); 0 = no cap.
    trainer_max_evaluation_customers: int = Field(50_000, ge=0)
    # Streamed orders (HTTP, `orders.raw`) retrain a tenant once its lake has grown by this share
    # of the orders, or this many days of new data, since its latest run read it; 0 = off.
    retrain_growth_orders_share: float = Field(0.10, ge=0)
    retrain_growth_days: float = Field(30.0, ge=0)
    # The outcome monitor: a served churn model whose realized ROC-AUC falls more than this
    # share below its backtest's publishes DriftDetected(kind=performance).
    outcome_auc_drop: float = Field(0.10, gt=0, lt=1)
    # How often the trainer checks lake growth and outcomes of tenants whose lake changed.
    trainer_watch_seconds: float = Field(60.0, gt=0)

    # Scoring.
    drift_check_minutes: float = Field(15.0, gt=0)
    drift_psi_threshold: float = Field(0.2, gt=0)
    max_scores_per_request: int = Field(1000, ge=1)
    # A score pass publishes `customer-scores` in chunks of this many, each acknowledged before
    # the next goes (docs/scoring.md, "Events").
    scoring_publish_chunk: int = Field(
        1000, ge=1, description="Score events sent per acknowledged chunk of a score pass."
    )
    # Changed vectors are scored against the cached population; everyone's clock moves when the
    # tenant clock crosses a UTC day, or once the tenant has had no new vector this long.
    scoring_settle_seconds: float = Field(
        10.0,
        ge=0,
        description="Quiet seconds after which the whole tenant is moved to its exact clock.",
    )
    # Sharded scoring (docs/scoring.md, "Sharding"): each replica holds only the customer-features
    # partitions it owns in its consumer group and routes other customers' requests to their owner.
    scoring_sharded: bool = Field(
        False, description="Scoring replicas each hold a share of the customers (partitions)."
    )
    scoring_replica_url: str | None = Field(
        None,
        description="How other scoring replicas reach this one (sharded); default "
        "http://<bind_host>:<scoring_port>.",
    )
    scoring_forward_timeout_seconds: float = Field(
        5.0, gt=0, description="Time limit of a request forwarded to another scoring replica."
    )

    # Console: where it finds the services (default: this host's ports above), and its sessions.
    console_ingest_url: str | None = None
    console_features_url: str | None = None
    console_trainer_url: str | None = None
    console_scoring_url: str | None = None
    # Signs session cookies; a secret, only ever from the environment. Empty: a random one per
    # process (sessions end when the console restarts).
    console_session_secret: SecretStr = SecretStr("")
    console_session_minutes: float = Field(480.0, gt=0, description="Idle time before sign-out.")
    console_cookie_secure: bool = Field(
        False, description="Send the session cookie over HTTPS only."
    )

    # Webhooks (docs/webhooks.md). Targets on private, loopback, link-local, ... addresses are
    # refused unless inside one of these comma-separated networks (e.g. 127.0.0.1/32 for a
    # receiver on this machine); checked on subscribing and again before every attempt.
    webhooks_allowed_networks: str = Field(
        "", description="CIDRs exempt from the private-address rule, e.g. '127.0.0.1/32'."
    )
    webhooks_max_attempts: int = Field(6, ge=1, description="Attempts before a delivery parks.")
    # Full jitter: the wait before attempt n+1 is uniform in [0, min(max, base * 2**(n-1))].
    webhooks_retry_base_seconds: float = Field(30.0, gt=0)
    webhooks_retry_max_seconds: float = Field(3600.0, gt=0)
    webhooks_timeout_seconds: float = Field(10.0, gt=0, description="One attempt's time limit.")
    webhooks_max_concurrency: int = Field(32, ge=1, description="Attempts in flight at once.")
    webhooks_max_per_subscription: int = Field(
        4, ge=1, description="Attempts in flight to one subscription at once."
    )

    # /metrics: tenant label values as they are, hashed, or dropped (see docs/operations.md).
    metrics_tenant_labels: TenantLabels = TenantLabels.PLAIN

    log_level: str = "INFO"
    log_json: bool = True

    def consumer_group(self, name: str) -> str:
        """The group id of consumer group `name` in this deployment: prefixed like the topics, so
        two deployments sharing a Kafka cluster never share a group (and its offsets)."""
        return self.topic_prefix + name

    @field_validator("topic_prefix")
    @classmethod
    def _prefix_is_a_topic_name_part(cls, value: str) -> str:
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        if not set(value) <= allowed:
            raise ValueError("may only contain letters, digits, '.', '_' and '-'")
        return value

    @field_validator("broker_storage")
    @classmethod
    def _storage_tansu_can_use(cls, value: str) -> str:
        # This Tansu build refuses sqlite:// and file://; say so before starting it.
        if value and not value.startswith(("memory://", "s3://", "postgres://", "postgresql://")):
            raise ValueError("must be empty (in memory), s3://bucket/ or postgres://...")
        return value

    def port_of(self, service: str) -> int:
        return int(getattr(self, f"{service}_port"))

    def console_url_of(self, service: str) -> str:
        """Where the console reaches `service`'s HTTP API."""
        configured = getattr(self, f"console_{service}_url")
        return (configured or f"http://127.0.0.1:{self.port_of(service)}").rstrip("/")


def load_settings() -> Settings:
    return Settings()
