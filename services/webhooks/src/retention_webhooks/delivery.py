"""Sending recorded deliveries: signed POSTs, concurrently within bounds, retried, then parked.

A loop takes due deliveries from the store and starts an attempt for each while fewer than
`webhooks_max_concurrency` are under way in all and fewer than `webhooks_max_per_subscription`
for its subscription, so a slow or failing subscriber holds at most its own share and never the
others (or the consumer, which only records). Each attempt checks the target again and
connects to the checked address (targets.py), signs the stored body with a fresh
`webhook-timestamp` and the message's stable `webhook-id`, and follows no redirect. A 2xx is
delivered; anything else is retried with full-jitter backoff (backoff.py) until the delivery's
attempt budget is spent, and then parked until an admin redelivers it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Sequence

import httpx

from retention_shared.config import Settings
from retention_shared.tasks import cancel
from retention_webhooks import telemetry
from retention_webhooks.backoff import retry_delay
from retention_webhooks.signing import sign
from retention_webhooks.store import DeliveryState, DueDelivery, WebhookStore
from retention_webhooks.targets import IPNetwork, Target, TargetRefused, checked_target

log = logging.getLogger(__name__)

USER_AGENT = "Retention-Webhooks/1"
IDLE_POLL_SECONDS = 0.25
GAUGES_EVERY_SECONDS = 5.0
MAX_ERROR_LENGTH = 500


def request_for(target: Target) -> tuple[httpx.URL, dict[str, str], dict[str, object]]:
    """The URL to connect to (the checked address, not the name, so DNS cannot change it
    between check and connect), the Host header and, for https, the name TLS verifies."""
    url = httpx.URL(target.url)
    default_port = 443 if target.scheme == "https" else 80
    host = f"[{target.host}]" if ":" in target.host else target.host
    headers = {"host": host if target.port == default_port else f"{host}:{target.port}"}
    extensions: dict[str, object] = {}
    if target.scheme == "https":
        extensions["sni_hostname"] = target.host
    return url.copy_with(host=str(target.address)), headers, extensions


class Deliverer:
    def __init__(
        self,
        store: WebhookStore,
        settings: Settings,
        allowed: Sequence[IPNetwork],
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.allowed = tuple(allowed)
        self._client = client
        self._wake = asyncio.Event()
        self._in_flight: dict[str, str] = {}  # delivery id -> subscription id
        self._attempts: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._gauges_at = 0.0

    async def start(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(
                follow_redirects=False,
                trust_env=False,  # a proxy would connect by name, undoing the address check
                timeout=self.settings.webhooks_timeout_seconds,
                headers={"user-agent": USER_AGENT},
                limits=httpx.Limits(max_connections=self.settings.webhooks_max_concurrency),
            )
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        await cancel([self._task, *self._attempts])
        if self._client is not None:
            await self._client.aclose()

    def wake(self) -> None:
        """Something is due now (newly recorded, or redelivered)."""
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def _run(self) -> None:
        while True:
            try:
                self._start_due()
                self._update_gauges()
            except Exception:  # the store failed once: keep the loop, try again shortly
                log.exception("reading due webhook deliveries failed; retrying")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(IDLE_POLL_SECONDS):
                    await self._wake.wait()
            self._wake.clear()

    def _start_due(self) -> None:
        room = self.settings.webhooks_max_concurrency - len(self._in_flight)
        if room <= 0:
            return
        per_subscription = Counter(self._in_flight.values())
        # The store is local SQLite and the query indexed: cheap enough for the loop itself.
        cap = self.settings.webhooks_max_per_subscription
        for delivery in self.store.due(time.time(), room * cap, cap, skip=self._in_flight):
            if room <= 0:
                break
            if (
                per_subscription[delivery.subscription_id]
                >= self.settings.webhooks_max_per_subscription
            ):
                continue
            per_subscription[delivery.subscription_id] += 1
            room -= 1
            self._in_flight[delivery.id] = delivery.subscription_id
            task = asyncio.create_task(self._attempt(delivery))
            self._attempts.add(task)
            task.add_done_callback(self._attempts.discard)

    def _update_gauges(self) -> None:
        if time.monotonic() - self._gauges_at < GAUGES_EVERY_SECONDS:
            return
        self._gauges_at = time.monotonic()
        for state, count in self.store.counts().items():
            telemetry.DELIVERIES.labels(state).set(count)

    async def _attempt(self, delivery: DueDelivery) -> None:
        try:
            status, error = await self._send(delivery)
            at = time.time()
            attempts = delivery.attempts + 1
            next_at = None
            if error is not None and attempts < delivery.budget:
                next_at = at + retry_delay(
                    attempts,
                    self.settings.webhooks_retry_base_seconds,
                    self.settings.webhooks_retry_max_seconds,
                )
            state = await asyncio.to_thread(
                self.store.attempted, delivery, at, status, error, next_at
            )
            outcome = {DeliveryState.DELIVERED: "delivered", DeliveryState.PARKED: "parked"}
            telemetry.ATTEMPTS.labels(
                delivery.tenant_id, delivery.type, outcome.get(state, "failed")
            ).inc()
            if state is DeliveryState.PARKED:
                log.warning(
                    "webhook delivery parked",
                    extra={"delivery_id": delivery.id, "attempts": attempts, "error": error},
                )
        except Exception:  # recording failed: the delivery stays due and is tried again
            log.exception("a webhook attempt could not be recorded")
        finally:
            self._in_flight.pop(delivery.id, None)
            self._wake.set()

    async def _send(self, delivery: DueDelivery) -> tuple[int | None, str | None]:
        """One signed POST: (status, None) on a 2xx, else (status or None, what went wrong)."""
        assert self._client is not None
        try:
            target = await checked_target(delivery.url, self.allowed)
        except TargetRefused as refused:
            return None, f"refused: {refused}"[:MAX_ERROR_LENGTH]
        url, headers, extensions = request_for(target)
        timestamp = int(time.time())
        headers |= {
            "content-type": "application/json",
            "webhook-id": delivery.message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(
                delivery.secret, delivery.message_id, timestamp, delivery.body
            ),
        }
        started = time.perf_counter()
        try:
            # Streamed and not read: a subscriber's answer body is never needed, whatever its size.
            async with self._client.stream(
                "POST", url, content=delivery.body, headers=headers, extensions=extensions
            ) as response:
                status = response.status_code
        except httpx.HTTPError as error:
            return None, f"{type(error).__name__}: {error}"[:MAX_ERROR_LENGTH] or type(
                error
            ).__name__
        finally:
            telemetry.ATTEMPT_DURATION.observe(time.perf_counter() - started)
        if 200 <= status < 300:
            return status, None
        if 300 <= status < 400:
            return status, f"HTTP {status}: redirects are not followed; subscribe the final URL"
        return status, f"HTTP {status}"
