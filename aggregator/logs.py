"""Structured logs for operators: one JSON object (or key=value line) per event.

Log calls pass context as `extra={...}`; message text of customers is never
logged by kefu, and as a last line of defence every line is masked on the way
out (routing/masking.py: bank card, mobile and resident ID numbers; bot tokens in URLs).
"""
from __future__ import annotations

import json
import logging
import re
import sys
import time

from routing.masking import mask_text

# A bot token inside a URL (Telegram's /bot<id>:<secret>/method), as HTTP client libraries
# log it: the secret part never reaches the log.
_BOT_TOKEN = re.compile(r"(bot\d+:)[A-Za-z0-9_-]+")


def redact(line: str) -> str:
    """What every log line goes through: card, phone and ID numbers masked, bot tokens cut."""
    return _BOT_TOKEN.sub(r"\1…", mask_text(line))


_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": round(record.created, 3), "level": record.levelname.lower(),
               "logger": record.name, "msg": record.getMessage()}
        out.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(out, ensure_ascii=False, default=str))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD)
        line = (f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.localtime(record.created))} "
                f"{record.levelname.lower():7} {record.name}: {record.getMessage()} {extra}").rstrip()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


def setup(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # HTTP clients log every request URL at INFO, and Telegram's carry the bot token.
    for noisy in ("aiohttp.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
