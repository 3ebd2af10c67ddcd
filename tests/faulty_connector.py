"""A plugin connector that breaks on purpose, for tests/test_connector_supervision.py.

config.yaml::

    faulty:
      kind: plugin
      class: "tests.faulty_connector:FaultyConnector"
      options: {dir: /some/dir, fail_starts: 2, send_exception: RuntimeError}

Everything it knows lives in files under ``options.dir``, so the test (another
process) can steer and observe it:

- ``starts``: how many times ``start()`` was called.  The first
  ``fail_starts`` calls raise, and so does every call while the file
  ``break-start`` exists.
- ``send-attempts.jsonl``: one line per ``send()`` call.  While
  ``break-send`` exists, ``send()`` raises ``send_exception`` (a plain
  exception, never a DeliveryError: the connector itself is broken).
- ``delivered.jsonl``: one line per message "handed to the platform".
- While ``refuse-<customer id>`` exists, ``send()`` to that customer raises a
  transient DeliveryError (the platform says "not now", e.g. a 429).
- While ``poison-<customer id>`` exists, ``send()`` to that customer raises
  ``send_exception`` (a reply that breaks the connector's code; the others go out).

Customers write through ``POST /plugin/{name}/inbound`` with
``{"customer_id", "message_id", "text"}`` (answered 202 once in the stream).
"""
from __future__ import annotations

import builtins
import json
from pathlib import Path

from aiohttp import web

from connectors.base import Connector, DeliveryError
from storage.events import Event


def _bump(path: Path) -> int:
    try:
        n = int(path.read_text() or 0)
    except FileNotFoundError:
        n = 0
    n += 1
    path.write_text(str(n))
    return n


def _append(path: Path, record: dict) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    except FileNotFoundError:
        return []


class FaultyConnector(Connector):
    kind = "faulty"

    def __init__(self, ctx):
        super().__init__(ctx)
        opts = self.config.options
        self.dir = Path(opts["dir"])
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fail_starts = int(opts.get("fail_starts", 0))
        exc = getattr(builtins, str(opts.get("send_exception", "RuntimeError")))
        assert isinstance(exc, type) and issubclass(exc, Exception)
        self.send_exception = exc

    def routes(self) -> list[web.RouteDef]:
        return [web.post(f"/plugin/{self.name}/inbound", self.inbound)]

    async def inbound(self, request: web.Request) -> web.Response:
        data = await request.json()
        event = self.inbound_event(str(data["customer_id"]), str(data["text"]),
                                   platform_msg_id=str(data["message_id"]))
        published = await self.receive(event)
        return web.json_response({"id": published.id, "duplicate": published.duplicate}, status=202)

    async def start(self) -> None:
        n = _bump(self.dir / "starts")
        if n <= self.fail_starts or (self.dir / "break-start").exists():
            raise RuntimeError(f"start fault #{n}")

    async def send(self, event: Event) -> None:
        _append(self.dir / "send-attempts.jsonl", {"id": event.id})
        if (self.dir / "break-send").exists() or (self.dir / f"poison-{event.customer_id}").exists():
            raise self.send_exception(f"send fault for {event.id}")
        if (self.dir / f"refuse-{event.customer_id}").exists():
            raise DeliveryError(f"the platform refused {event.id} for now")
        _append(self.dir / "delivered.jsonl", {"id": event.id, "text": event.text,
                                               "conversation_id": event.conversation_id,
                                               "customer_id": event.customer_id})
