"""The audit stream: every agent action, who did it, to which conversation, when.

One Redis stream (``Keys.audit``), trimmed to about `MAX_ENTRIES` entries, so
any process can write and `kefu audit` can read while kefu runs.  An entry
names the action and its outcome — never the text of a message, a password
or a token.  Fields of an entry:

- ``ts`` (unix seconds), ``agent`` (id, or ``unknown`` for a login under a
  name that is no agent), ``action`` (login, logout, claim, reply, transfer,
  close, reveal, presence, resend...), ``via`` (console, api, telegram, qq);
- ``conversation`` and ``message`` when the action concerns one;
- ``outcome``: ``ok`` or ``refused``, with ``reason`` (a refusal code such as
  ``forbidden``, ``owned``, ``wrong_password``) for a refusal;
- ``detail``: what else tells the action apart (a transfer's target, a
  presence status).
"""
from __future__ import annotations

import time
from typing import Any, AsyncIterator

import redis.asyncio as aioredis

from storage.keys import Keys

MAX_ENTRIES = 100_000
FIELDS = ("ts", "agent", "action", "via", "conversation", "message", "outcome", "reason", "detail")


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class AuditLog:
    def __init__(self, redis: aioredis.Redis, keys: Keys):
        self.redis = redis
        self.keys = keys

    async def record(self, agent: str, action: str, *, via: str, conversation: str = "", message: str = "",
                     reason: str = "", detail: str = "") -> None:
        """Append one entry; a `reason` makes it a refusal."""
        entry = {"ts": f"{time.time():.3f}", "agent": agent, "action": action, "via": via,
                 "outcome": "refused" if reason else "ok"}
        for k, v in (("conversation", conversation), ("message", message), ("reason", reason),
                     ("detail", detail)):
            if v:
                entry[k] = v
        await self.redis.xadd(self.keys.audit, entry, maxlen=MAX_ENTRIES, approximate=True)

    async def recent(self, n: int = 20, *, agent: str | None = None, conversation: str | None = None,
                     chunk: int = 1000) -> list[dict[str, str]]:
        """The last `n` entries matching the filters, newest first."""
        out: list[dict[str, str]] = []
        async for entry in self._newest_first(chunk):
            if (agent is None or entry.get("agent") == agent) and (
                    conversation is None or entry.get("conversation") == conversation):
                out.append(entry)
                if len(out) >= n:
                    break
        return out

    async def _newest_first(self, chunk: int) -> AsyncIterator[dict[str, str]]:
        upper = "+"
        while True:
            page = await self.redis.xrevrange(self.keys.audit, max=upper, min="-", count=chunk)
            for eid, fields in page:
                yield {"id": _s(eid), **{_s(k): _s(v) for k, v in fields.items()}}
            if len(page) < chunk:
                return
            ms, _, seq = _s(page[-1][0]).partition("-")
            upper = f"{ms}-{int(seq) - 1}" if int(seq) > 0 else f"{int(ms) - 1}"
