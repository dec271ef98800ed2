"""Calling for help: apprise notifications and healthchecks-style pings.

- apprise (any service it knows: Slack, e-mail, Matrix, Discord, ntfy, a JSON webhook, …) gets
  a message when a run fails, and when it succeeds if ``on-success = true``. The message names
  the plan, the step that failed and why, and the command that shows more.
- A healthchecks-style URL gets ``<url>/start`` when a run begins, ``<url>`` when it succeeded
  and ``<url>/fail`` when it did not, each with the summary as the request body and the same
  ``rid`` (run id) so the service can pair them. An interrupted run sends no end ping: a
  backup that did not finish is reported by the service when its grace time runs out.

A notification that cannot be delivered never changes a run's outcome: it is logged and kept
in the run record (``delivery_errors``), which ``plan history`` shows. URLs carry secrets
(tokens, check ids), so messages name only their scheme and host.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from urllib.parse import urlsplit

import aiohttp

from ..clock import Clock
from .history import RunRecord
from .plans import Plan
from .report import VERDICTS, headline, problem_lines, step_lines

log = logging.getLogger(__name__)
PING_TIMEOUT = 10.0
PING_ATTEMPTS = 3
MAX_BODY = 90_000  # healthchecks keeps up to 100 kB of a ping's body


def redact(url: str) -> str:
    """A URL without its secrets (tokens, check ids, passwords): scheme, host and port."""
    parts = urlsplit(url)
    if not parts.scheme:
        return "a URL without a scheme"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    path = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{path}"


def message(plan: Plan, record: RunRecord, see_more: str) -> tuple[str, str]:
    """Title and body of the notification for ``record``."""
    verdict = VERDICTS[record.status]
    title = f"backup-my-bucket: plan {plan.name} {verdict}"
    lines = [f"Plan {plan.name} ({plan.describe()}) {verdict} on {record.host}."]
    lines.append(headline(record) + ".")
    lines += problem_lines(record, limit=5)
    lines += step_lines(record)
    lines.append(f"See more: {see_more} plan history {plan.name}")
    return title, "\n".join(lines)


class Notifier:
    """Sends a plan's pings and notifications; ``see_more`` is how this machine calls bmb
    (``bmb --config /etc/backup-my-bucket.toml``), for the "see more" line."""

    def __init__(self, clock: Clock, *, see_more: str = "bmb") -> None:
        self.clock = clock
        self.see_more = see_more

    async def started(self, plan: Plan, record: RunRecord) -> None:
        if plan.notify.healthchecks:
            await self._ping(plan.notify.healthchecks + "/start", record, "")

    async def finished(self, plan: Plan, record: RunRecord) -> None:
        """The end of a run (not an interrupted one): ping, then notify if asked."""
        title, body = message(plan, record, self.see_more)
        if plan.notify.healthchecks:
            url = plan.notify.healthchecks + ("" if record.ok else "/fail")
            await self._ping(url, record, body)
        if plan.notify.apprise and (not record.ok or plan.notify.on_success):
            await self._apprise(plan, record, title, body)

    async def _ping(self, url: str, record: RunRecord, body: str) -> None:
        rid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{record.host}/{record.plan}/{record.run_id}"))
        timeout = aiohttp.ClientTimeout(total=PING_TIMEOUT)
        error = ""
        for attempt in range(PING_ATTEMPTS):
            if attempt:
                await self.clock.sleep(2.0**attempt)
            try:
                async with (
                    aiohttp.ClientSession(timeout=timeout) as session,
                    session.post(url, params={"rid": rid}, data=body[-MAX_BODY:].encode()) as r,
                ):
                    if r.status < 400:
                        return
                    error = f"HTTP {r.status}"
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                error = type(exc).__name__
        self._failed(record, f"ping {redact(url)}: {error}")

    async def _apprise(self, plan: Plan, record: RunRecord, title: str, body: str) -> None:
        import apprise  # imported here: it takes a while (its plugins), and only failures need it

        sender, added = apprise.Apprise(), []
        for url in plan.notify.apprise:
            if sender.add(url):
                added.append(redact(url))
            else:
                self._failed(record, f"apprise cannot use {redact(url)}")
        if not added:
            return
        kind = apprise.NotifyType.SUCCESS if record.ok else apprise.NotifyType.FAILURE
        sent = await asyncio.to_thread(sender.notify, body=body, title=title, notify_type=kind)
        if not sent:
            self._failed(record, f"apprise could not notify every service ({', '.join(added)})")

    def _failed(self, record: RunRecord, error: str) -> None:
        log.error("plan %s: could not deliver: %s", record.plan, error)
        record.delivery_errors.append(error)
