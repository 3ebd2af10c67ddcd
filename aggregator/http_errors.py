"""JSON errors for every HTTP failure: `{"error": "..."}` with a 4xx/5xx status,
never a stack trace (the answers themselves: connectors/http.py)."""
from __future__ import annotations

import logging

from aiohttp import web
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from connectors.http import json_error

log = logging.getLogger("kefu.web")


@web.middleware
async def error_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        return json_error(413, "request body too large")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_error(exc.status, exc.reason or "error")
    except (RedisConnectionError, RedisTimeoutError, ConnectionError) as exc:  # not stored: the caller may retry
        log.warning("storage unavailable", extra={"path": request.path, "error": str(exc)})
        return json_error(503, "storage unavailable, retry shortly")
    except Exception:
        log.exception("request failed", extra={"path": request.path, "method": request.method})
        return json_error(500, "internal error")
