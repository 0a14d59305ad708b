"""Files a user sent for an upload, kept by the console between the preview and the import.

The data page previews a file before importing it with the mapping the user chose, and the file
must not travel through the browser twice. It is kept here, in a temporary directory of this
process, under a random id bound to the session that sent it: another session (or a guessed id)
finds nothing. A session keeps one file at a time (a new one replaces it); a file is deleted
once imported, and an hour after it was sent if it never was. Nothing here is ever served back.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

# Long enough to read a preview and choose a mapping, short enough that files do not pile up.
KEEP_SECONDS = 3600.0
COPY_CHUNK = 1024 * 1024


class StagedFileTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the file is larger than {limit} bytes")
        self.limit = limit


@dataclass
class StagedFile:
    id: str
    session_id: str = field(repr=False)
    filename: str
    path: Path
    size: int
    staged_at: float
    # The last preview ingest gave for it, and the choices it was asked with (the form's values).
    preview: dict[str, Any] = field(default_factory=dict)
    choices: dict[str, Any] = field(default_factory=dict)


class StagedFiles:
    def __init__(
        self,
        max_bytes: int,
        keep_seconds: float = KEEP_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes = max_bytes
        self._keep = keep_seconds
        self._clock = clock
        self._root: Path | None = None
        self._files: dict[str, StagedFile] = {}
        self._lock = threading.Lock()

    def stage(self, session_id: str, filename: str, source: IO[bytes]) -> StagedFile:
        """Copy `source` into a new staged file for the session (replacing its previous one);
        raises `StagedFileTooLarge` past `max_bytes`, keeping nothing."""
        self.sweep()
        staged_id = secrets.token_urlsafe(18)
        directory = self._directory() / staged_id
        directory.mkdir()
        path = directory / "file"
        size = 0
        try:
            with open(path, "wb") as out:
                while chunk := source.read(COPY_CHUNK):
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise StagedFileTooLarge(self.max_bytes)
                    out.write(chunk)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        staged = StagedFile(staged_id, session_id, filename, path, size, self._clock())
        with self._lock:
            previous = [f for f in self._files.values() if f.session_id == session_id]
            self._files[staged_id] = staged
        for old in previous:
            self.discard(old)
        return staged

    def find(self, session_id: str, staged_id: str) -> StagedFile | None:
        """The session's staged file of that id, if it is still kept."""
        self.sweep()
        with self._lock:
            staged = self._files.get(staged_id)
        if staged is None or not secrets.compare_digest(staged.session_id, session_id):
            return None
        return staged

    def discard(self, staged: StagedFile) -> None:
        with self._lock:
            self._files.pop(staged.id, None)
        shutil.rmtree(staged.path.parent, ignore_errors=True)

    def discard_session(self, session_id: str) -> None:
        """Forget what a session kept (it signed out: nobody can reach the file any more)."""
        with self._lock:
            kept = [f for f in self._files.values() if f.session_id == session_id]
        for staged in kept:
            self.discard(staged)

    def sweep(self) -> None:
        """Delete the files kept longer than an hour."""
        oldest = self._clock() - self._keep
        with self._lock:
            expired = [f for f in self._files.values() if f.staged_at <= oldest]
        for staged in expired:
            self.discard(staged)

    def close(self) -> None:
        """Delete every staged file (the console is stopping: their sessions end with it)."""
        with self._lock:
            self._files.clear()
            root, self._root = self._root, None
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)

    def _directory(self) -> Path:
        with self._lock:
            if self._root is None or not self._root.exists():
                # Private to this process (mode 0700), so other users of the machine cannot read.
                self._root = Path(tempfile.mkdtemp(prefix="retention-console-staged-"))
            return self._root
