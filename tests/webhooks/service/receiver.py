"""A webhook receiver on loopback for the tests: records every request, answers per path.

`/ok/<name>` answers 204; `/flaky/<name>` answers 500 to its first `FLAKY_FAILURES` requests,
then 204; `/down/<name>` answers 500 until `Receiver.up` is set.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FLAKY_FAILURES = 3


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float  # unix time it arrived


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.up = threading.Event()
        self._lock = threading.Lock()
        self._counts: dict[str, int] = defaultdict(int)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                status = owner._answer(self.path)
                with owner._lock:
                    owner.received.append(
                        Received(
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            status,
                            time.time(),
                        )
                    )
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _answer(self, path: str) -> int:
        with self._lock:
            self._counts[path] += 1
            count = self._counts[path]
        if path.startswith("/flaky/"):
            return 500 if count <= FLAKY_FAILURES else 204
        if path.startswith("/down/"):
            return 204 if self.up.is_set() else 500
        return 204

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
