"""The trainer's own state: run records and each tenant's champion, in one SQLite file.

A run record is written when a trigger is accepted and updated as the run moves on
(queued → running → published | rejected | skipped | failed); a champion pointer changes in the
same transaction as the record of the run that published it. Records survive restarts; a run
found unfinished at start-up is resumed (see `RunManager.resume`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from retention_bundle.json_numbers import finite

__all__ = ["ChampionRecord", "OutcomeRecord", "RunRecord", "RunStatus", "RunStore", "Trigger"]


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PUBLISHED = "published"
    REJECTED = "rejected"
    SKIPPED = "skipped"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self not in (RunStatus.QUEUED, RunStatus.RUNNING)


@dataclass(frozen=True)
class Trigger:
    """Why a run was asked for: `schedule`, `request`, `upload`, `drift` (features moved),
    `performance` (realized accuracy fell, `outcomes.py`), `growth` (streamed orders grew the
    lake, `growth.py`), or `restart`."""

    kind: str
    detail: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "detail": self.detail, "at": self.at.isoformat()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trigger:
        return cls(data["kind"], data.get("detail"), datetime.fromisoformat(data["at"]))


@dataclass
class RunRecord:
    run_id: str
    tenant_id: str
    status: RunStatus
    triggers: list[Trigger]
    options: dict[str, Any]
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    message: str | None = None
    model_tag: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    # What the run read from the lake: orders, customers, first and last order time.
    data: dict[str, Any] | None = None
    gate: dict[str, Any] | None = None
    report: dict[str, Any] | None = None
    markdown: str | None = None
    # The run report for managers (Markdown; `retention_trainer.run_report`), for trained runs.
    run_report: str | None = None
    # What a published run serves (`retention_bundle.production.ProductionFit` as JSON): the
    # refit on the latest complete labels, or the evidence model and why.
    production: dict[str, Any] | None = None

    def summary(self) -> dict[str, Any]:
        """The record without its reports (what a list shows)."""
        return {
            "run_id": self.run_id,
            "tenant_id": self.tenant_id,
            "status": self.status.value,
            "triggers": [t.as_dict() for t in self.triggers],
            "options": self.options,
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "message": self.message,
            "model_tag": self.model_tag,
            "timings": self.timings,
            "data": self.data,
            "gate": self.gate,
            "production": self.production,
            "has_run_report": self.run_report is not None,
        }

    def detail(self) -> dict[str, Any]:
        return {**self.summary(), "report": self.report, "markdown": self.markdown}


@dataclass(frozen=True)
class ChampionRecord:
    """Which run's bundle is a tenant's champion, as the run store keeps it (scoring's in-memory
    counterpart is `retention_scoring.champions.LoadedChampion`)."""

    tenant_id: str
    model_tag: str
    run_id: str
    metrics: dict[str, float]
    promoted_at: datetime


@dataclass(frozen=True)
class OutcomeRecord:
    """A champion's realized churn metrics for one score date (`outcomes.py`), against its
    backtest's; `drift` when the ROC-AUC drop exceeded the setting, `announced` once its
    `DriftDetected` was acknowledged by the broker."""

    tenant_id: str
    model_tag: str
    score_date: date
    horizon_days: int
    customers: int
    churners: int
    roc_auc: float | None
    brier: float
    backtest_roc_auc: float | None
    backtest_brier: float | None
    auc_drop: float | None
    drift: bool
    evaluated_at: datetime
    announced: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_tag": self.model_tag,
            "score_date": self.score_date.isoformat(),
            "horizon_days": self.horizon_days,
            "customers": self.customers,
            "churners": self.churners,
            "roc_auc": self.roc_auc,
            "brier": self.brier,
            "backtest_roc_auc": self.backtest_roc_auc,
            "backtest_brier": self.backtest_brier,
            "auc_drop": self.auc_drop,
            "drift": self.drift,
            "evaluated_at": self.evaluated_at.isoformat(),
        }


_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL UNIQUE,
    tenant_id TEXT NOT NULL,
    status TEXT NOT NULL,
    triggers TEXT NOT NULL,
    options TEXT NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    message TEXT,
    model_tag TEXT,
    timings TEXT NOT NULL,
    data TEXT,
    gate TEXT,
    report TEXT,
    markdown TEXT,
    run_report TEXT,
    production TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_tenant ON runs (tenant_id, seq);
CREATE TABLE IF NOT EXISTS champions (
    tenant_id TEXT PRIMARY KEY,
    model_tag TEXT NOT NULL,
    run_id TEXT NOT NULL,
    metrics TEXT NOT NULL,
    promoted_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outcomes (
    model_tag TEXT NOT NULL,
    score_date TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    horizon_days INTEGER NOT NULL,
    customers INTEGER NOT NULL,
    churners INTEGER NOT NULL,
    roc_auc REAL,
    brier REAL NOT NULL,
    backtest_roc_auc REAL,
    backtest_brier REAL,
    auc_drop REAL,
    drift INTEGER NOT NULL,
    evaluated_at TEXT NOT NULL,
    announced INTEGER NOT NULL,
    PRIMARY KEY (model_tag, score_date)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS outcomes_by_tenant ON outcomes (tenant_id, evaluated_at);
"""
_OUTCOME_COLUMNS = (
    "tenant_id, model_tag, score_date, horizon_days, customers, churners, roc_auc, brier, "
    "backtest_roc_auc, backtest_brier, auc_drop, drift, evaluated_at, announced"
)
_COLUMNS = (
    "run_id, tenant_id, status, triggers, options, created_at, started_at, finished_at, "
    "message, model_tag, timings, data, gate, report, markdown, run_report, production"
)
# Columns added after the first release, added to an older file when it is opened.
_ADDED_COLUMNS = {"run_report": "TEXT", "production": "TEXT"}


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _json(value: Any) -> str | None:
    # NaN/inf (a metric undefined on the data) would make invalid JSON: stored as null.
    return None if value is None else json.dumps(finite(value), allow_nan=False)


class RunStore:
    """Thread-safe: the event loop and worker threads share one connection under a lock."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        present = {row[1] for row in self._db.execute("PRAGMA table_info(runs)")}
        for column, kind in _ADDED_COLUMNS.items():
            if column not in present:
                self._db.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, run: RunRecord) -> None:
        with self._lock:
            self._db.execute(
                f"INSERT INTO runs ({_COLUMNS}) VALUES ({', '.join('?' * 17)})", self._row(run)
            )

    def save(self, run: RunRecord, champion: ChampionRecord | None = None) -> None:
        """Update a run; with `champion`, make it the tenant's champion in the same transaction."""
        row = self._row(run)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    f"UPDATE runs SET ({_COLUMNS}) = ({', '.join('?' * 17)}) WHERE run_id = ?",
                    (*row, run.run_id),
                )
                if champion is not None:
                    self._db.execute(
                        "INSERT OR REPLACE INTO champions VALUES (?, ?, ?, ?, ?)",
                        (
                            champion.tenant_id,
                            champion.model_tag,
                            champion.run_id,
                            _json(champion.metrics),
                            champion.promoted_at.isoformat(),
                        ),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def get(self, run_id: str) -> RunRecord | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM runs WHERE run_id = ?", (run_id,))
            found = row.fetchone()
        return self._record(found) if found else None

    def list(self, tenant_id: str, limit: int = 50) -> list[RunRecord]:
        """The tenant's runs, newest first."""
        return [record for _, record in self.page(tenant_id, limit)]

    def page(
        self, tenant_id: str, limit: int, before: int | None = None
    ) -> list[tuple[int, RunRecord]]:
        """Up to `limit` of the tenant's runs, newest first, each with its sequence number (the
        cursor key: unique and never reused, so a page never shifts as runs are added); with
        `before`, only runs older than that sequence number."""
        bound = "" if before is None else " AND seq < ?"
        parameters: tuple[object, ...] = (tenant_id,) if before is None else (tenant_id, before)
        with self._lock:
            rows = self._db.execute(
                f"SELECT seq, {_COLUMNS} FROM runs WHERE tenant_id = ?{bound} "
                "ORDER BY seq DESC LIMIT ?",
                (*parameters, limit),
            ).fetchall()
        return [(row[0], self._record(row[1:])) for row in rows]

    def unfinished(self) -> list[RunRecord]:
        """Runs left queued or running (by a stop or a crash), oldest first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM runs WHERE status IN (?, ?) ORDER BY seq",
                (RunStatus.QUEUED.value, RunStatus.RUNNING.value),
            ).fetchall()
        return [self._record(row) for row in rows]

    def last_run_at(self) -> dict[str, datetime]:
        """Each tenant's latest run creation time (the schedule counts from it)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT tenant_id, MAX(created_at) FROM runs GROUP BY tenant_id"
            ).fetchall()
        return {tenant: datetime.fromisoformat(at) for tenant, at in rows}

    def champion(self, tenant_id: str) -> ChampionRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT tenant_id, model_tag, run_id, metrics, promoted_at FROM champions "
                "WHERE tenant_id = ?",
                (tenant_id,),
            ).fetchone()
        return self._champion(row) if row else None

    def champions(self) -> list[ChampionRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT tenant_id, model_tag, run_id, metrics, promoted_at FROM champions"
            ).fetchall()
        return [self._champion(row) for row in rows]

    def add_outcome(self, outcome: OutcomeRecord) -> bool:
        """Keep an outcome; False (and nothing changed) if that model's date was evaluated."""
        row = (
            outcome.tenant_id,
            outcome.model_tag,
            outcome.score_date.isoformat(),
            outcome.horizon_days,
            outcome.customers,
            outcome.churners,
            outcome.roc_auc,
            outcome.brier,
            outcome.backtest_roc_auc,
            outcome.backtest_brier,
            outcome.auc_drop,
            int(outcome.drift),
            outcome.evaluated_at.isoformat(),
            int(outcome.announced),
        )
        with self._lock:
            done = self._db.execute(
                f"INSERT OR IGNORE INTO outcomes ({_OUTCOME_COLUMNS}) "
                f"VALUES ({', '.join('?' * 14)})",
                row,
            )
        return done.rowcount == 1

    def outcome(self, model_tag: str, score_date: date) -> OutcomeRecord | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_OUTCOME_COLUMNS} FROM outcomes WHERE model_tag = ? AND score_date = ?",
                (model_tag, score_date.isoformat()),
            ).fetchone()
        return self._outcome(row) if row else None

    def outcomes(self, tenant_id: str, limit: int = 50) -> list[OutcomeRecord]:
        """The tenant's evaluated outcomes, newest evaluation first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_OUTCOME_COLUMNS} FROM outcomes WHERE tenant_id = ? "
                "ORDER BY evaluated_at DESC, score_date DESC LIMIT ?",
                (tenant_id, limit),
            ).fetchall()
        return [self._outcome(row) for row in rows]

    def unannounced_drifts(self) -> list[OutcomeRecord]:
        """Outcomes over the drop whose `DriftDetected` the broker has not acknowledged yet."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_OUTCOME_COLUMNS} FROM outcomes WHERE drift = 1 AND announced = 0"
            ).fetchall()
        return [self._outcome(row) for row in rows]

    def mark_announced(self, model_tag: str, score_date: date) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE outcomes SET announced = 1 WHERE model_tag = ? AND score_date = ?",
                (model_tag, score_date.isoformat()),
            )

    @staticmethod
    def _outcome(row: tuple) -> OutcomeRecord:
        tenant, tag, score_date, horizon, customers, churners, *rest = row
        auc, brier_score, backtest_auc, backtest_brier, drop, drift, evaluated, announced = rest
        return OutcomeRecord(
            tenant_id=tenant,
            model_tag=tag,
            score_date=date.fromisoformat(score_date),
            horizon_days=horizon,
            customers=customers,
            churners=churners,
            roc_auc=auc,
            brier=brier_score,
            backtest_roc_auc=backtest_auc,
            backtest_brier=backtest_brier,
            auc_drop=drop,
            drift=bool(drift),
            evaluated_at=datetime.fromisoformat(evaluated),
            announced=bool(announced),
        )

    @staticmethod
    def _champion(row: tuple) -> ChampionRecord:
        tenant, tag, run_id, metrics, promoted_at = row
        return ChampionRecord(
            tenant, tag, run_id, json.loads(metrics), datetime.fromisoformat(promoted_at)
        )

    @staticmethod
    def _row(run: RunRecord) -> tuple[object, ...]:
        return (
            run.run_id,
            run.tenant_id,
            run.status.value,
            json.dumps([t.as_dict() for t in run.triggers]),
            json.dumps(run.options),
            run.created_at.isoformat(),
            run.started_at.isoformat() if run.started_at else None,
            run.finished_at.isoformat() if run.finished_at else None,
            run.message,
            run.model_tag,
            _json(run.timings),
            _json(run.data),
            _json(run.gate),
            _json(run.report),
            run.markdown,
            run.run_report,
            _json(run.production),
        )

    @staticmethod
    def _record(row: tuple) -> RunRecord:
        (
            run_id,
            tenant,
            status,
            triggers,
            options,
            created,
            started,
            finished,
            message,
            tag,
            timings,
            data,
            gate,
            report,
            markdown,
            run_report,
            production,
        ) = row
        return RunRecord(
            run_id=run_id,
            tenant_id=tenant,
            status=RunStatus(status),
            triggers=[Trigger.from_dict(t) for t in json.loads(triggers)],
            options=json.loads(options),
            created_at=datetime.fromisoformat(created),
            started_at=_time(started),
            finished_at=_time(finished),
            message=message,
            model_tag=tag,
            timings=json.loads(timings) if timings else {},
            data=json.loads(data) if data else None,
            gate=json.loads(gate) if gate else None,
            report=json.loads(report) if report else None,
            markdown=markdown,
            run_report=run_report,
            production=json.loads(production) if production else None,
        )
