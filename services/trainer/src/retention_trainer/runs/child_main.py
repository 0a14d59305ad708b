"""The training child: `python -m retention_trainer.runs.child_main RUN_DIR EVENTS_FD`.

Reads ``RUN_DIR/request.json`` (tenant, options, champion tag), carries out `candidate.py` and
writes one JSON object per line to the file descriptor EVENTS_FD: ``started``, ``stage`` (a
stage's wall time), ``data`` (the orders summary), then exactly one of ``candidate``, ``skipped`` or ``error``.
Its settings are the trainer's own: it inherits the trainer's environment. Its stdout and stderr
are the trainer's, so its logs appear among the trainer's.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import IO, Any

from retention_shared.config import Settings
from retention_shared.logs import configure_logging
from retention_trainer.runs.candidate import Skipped, train_candidate
from retention_trainer.runs.options import RunOptions

log = logging.getLogger(__name__)


def _emitter(stream: IO[str]) -> Any:
    def emit(event: str, fields: dict[str, Any]) -> None:
        stream.write(json.dumps({"event": event, **fields}) + "\n")
        stream.flush()

    return emit


def main(run_dir: Path, events_fd: int) -> int:
    settings = Settings()
    configure_logging("trainer", settings.log_level, settings.log_json)
    request = json.loads((run_dir / "request.json").read_text())
    with os.fdopen(events_fd, "w", encoding="utf-8") as stream:
        emit = _emitter(stream)
        emit("started", {})  # the imports are done: the parent times the child's start
        try:
            candidate = train_candidate(
                settings,
                tenant=request["tenant"],
                options=RunOptions.from_dict(request["options"]),
                champion_tag=request["champion_tag"],
                out_dir=run_dir,
                emit=emit,
            )
        except Skipped as skipped:
            emit("skipped", {"message": str(skipped)})
            return 0
        except Exception as error:
            log.exception("training run failed", extra={"run_id": request.get("run_id")})
            emit("error", {"message": f"{type(error).__name__}: {error}"})
            return 1
        emit("candidate", candidate)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), int(sys.argv[2])))
