"""Waiting on a fake server's state without sleeping: `notify()` on every change,
`wait_for(predicate)` re-checks the predicate after each one until a timeout."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


class Changes:
    def __init__(self, name: str):
        self.name = name
        self._changed = asyncio.Event()

    def notify(self) -> None:
        ev, self._changed = self._changed, asyncio.Event()
        ev.set()

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            ev = self._changed
            result = predicate()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{self.name}.wait_for: condition not met in {timeout}s")
            try:
                await asyncio.wait_for(ev.wait(), remaining)
            except TimeoutError:
                pass
