"""bench/scoring/gathered.py: how long a gathered answer of sharded scoring takes — the customer
list (`GET /v1/customers`), which the replica asked merges from every replica's share.

Run from the repository root:

    uv run python bench/scoring/gathered.py --data data/online_retail.parquet --replicas 3

Set-up as `bench/scoring/replicas.py` (a real bundle, every customer's vector on an embedded
Tansu broker). Then `--replicas` sharded replicas (one set per run; a second set started on
the same broker after the first stopped once never got ready: readiness waited for the erasure
group's join, tests/scoring/service/test_restart.py); each is warmed (its
population scored), then asked `--requests` lists of `--limit` customers by one client, one
request at a time, round robin over the replicas (each asked replica gathers from the
others). Printed: the latency's median and 90th percentile. About 2 minutes.
`--delay-ms D` puts a proxy before each replica as the others reach it (`DelayedReplicas`),
as if each share took D ms more: asked in turn a list waits about (replicas − 1) × D, at once
about D.

Compare two commits in the same sitting by running this script in a worktree of each: the
machine's 2 cores are shared by the replicas, the broker and the client, so only numbers
taken together compare.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from aiohttp import ClientSession, web  # noqa: E402

from bench.harness import data_file, load, table  # noqa: E402
from bench.scoring.replicas import (  # noqa: E402
    HEADERS,
    on_embedded_broker,
    trained_tenant,
    wait_sharded,
)
from bench.scoring.run import wait_first_score  # noqa: E402
from retention_shared.config import Settings  # noqa: E402
from retention_shared.embedded_broker import free_port  # noqa: E402
from tests.support.stack import running_stack, url  # noqa: E402


class DelayedReplicas:
    """What the other replicas reach instead of a replica (its announced URL): a proxy that
    waits `delay` seconds, then passes the request on — a replica on another machine, or a busy
    one. On this machine the replicas share 2 cores, so without it their own time is short and
    hardly overlaps."""

    def __init__(self, count: int, delay: float) -> None:
        self.delay = delay
        self.ports = [free_port() for _ in range(count)]
        self.targets: dict[int, str] = {}  # proxy port → the replica behind it, once started
        self.loop = asyncio.new_event_loop()

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.ports[i]}"

    def start(self) -> None:
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._serve(), self.loop).result(timeout=30)

    async def _serve(self) -> None:
        self.session = ClientSession()
        for port in self.ports:
            app = web.Application()
            app.router.add_route("*", "/{path:.*}", self._pass_on)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()

    async def _pass_on(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.delay)
        target = self.targets[request.url.port or 0] + request.rel_url.path_qs
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with self.session.request(
            request.method, target, headers=headers, data=await request.read()
        ) as answer:
            body = await answer.read()
            kept = {k: v for k, v in answer.headers.items() if k.lower() in _KEPT}
            return web.Response(status=answer.status, body=body, headers=kept)


_KEPT = {"content-type", "retry-after", "x-total-count", "x-next-cursor"}


def list_latencies(bases: list[str], requests: int, limit: int) -> list[float]:
    """Milliseconds of each gathered list, asked one at a time, round robin over `bases`."""
    took: list[float] = []
    with httpx.Client(headers=HEADERS, timeout=30) as client:
        for i in range(requests):
            began = time.perf_counter()
            response = client.get(f"{bases[i % len(bases)]}/v1/customers", params={"limit": limit})
            took.append((time.perf_counter() - began) * 1000)
            response.raise_for_status()
    return took


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--data", type=Path, default=None)
    cli.add_argument("--requests", type=int, default=120)
    cli.add_argument("--limit", type=int, default=100)
    cli.add_argument("--partitions", type=int, default=6)
    cli.add_argument("--replicas", type=int, default=2)
    cli.add_argument(
        "--delay-ms", type=float, default=0.0, help="added before each replica's share"
    )
    args = cli.parse_args()
    data = data_file(args.data)
    return on_embedded_broker(
        "scoring-gathered",
        args.partitions,
        lambda work, settings: run(args, data, work, settings),
    )


def run(args: argparse.Namespace, data: Path, work: Path, settings: Settings) -> int:
    customers, env = trained_tenant(data, work, settings)
    env["RETENTION_SCORING_SHARDED"] = "true"
    replicas = args.replicas
    delayed = DelayedReplicas(replicas, args.delay_ms / 1000) if args.delay_ms else None
    if delayed is not None:
        delayed.start()
    with ExitStack() as running:
        stacks = [
            running.enter_context(
                running_stack(
                    settings,
                    work / f"{replicas}-{i}.log",
                    services=("scoring",),
                    **env,
                    **({"RETENTION_SCORING_REPLICA_URL": delayed.url(i)} if delayed else {}),
                )
            )
            for i in range(replicas)
        ]
        bases = [url(stack, "scoring") for stack in stacks]
        if delayed is not None:
            delayed.targets.update(zip(delayed.ports, bases, strict=True))
        wait_sharded(bases, args.partitions)
        for base in bases:
            wait_first_score(base, customers[0])
        list_latencies(bases, 3 * replicas, args.limit)  # every population scored
        took = list_latencies(bases, args.requests, args.limit)
        p50, p90 = statistics.median(took), statistics.quantiles(took, n=10)[-1]
        print(f"  {replicas} sharded: p50 {p50:.1f} ms  p90 {p90:.1f} ms", flush=True)
    delay = f", each share delayed {args.delay_ms:g} ms" if args.delay_ms else ""
    print(
        table([(f"{replicas} sharded replicas{delay}", f"p50 {p50:.1f} ms", f"p90 {p90:.1f} ms")])
    )
    print(f"load average at end: {load()}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
