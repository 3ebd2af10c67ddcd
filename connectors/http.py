"""JSON error answers for aiohttp handlers: `{"error": "..."}` with a 4xx status.

Connectors' HTTP edges (web chat, API channel, Telegram webhook, OneBot) and
the agent API answer refusals alike; aggregator/http_errors.py turns every
other failure into one of these too."""
from __future__ import annotations

from aiohttp import web

from storage.limits import retry_after


def json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def too_many_requests(wait: float, what: str) -> web.Response:
    """429 of an abuse limit (storage/limits.py): `what` was refused, and when to retry."""
    seconds = retry_after(wait)
    response = json_error(429, f"{what}, try again in {seconds} s")
    response.headers["Retry-After"] = str(seconds)
    return response
