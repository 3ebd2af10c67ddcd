"""What `kefu run` tells the person who started it, in words rather than JSON.

A new user looks at the terminal, not at the log lines: where to open the
console and the demo chat page, and — while the shipped demo passwords still
work — that anyone who has read the README can sign in.
"""
from __future__ import annotations

import logging
import sys
from typing import TextIO

from aggregator.config import Settings

log = logging.getLogger("kefu")

# The demo values of the shipped config.yaml (and its README): not secrets.
DEMO_SECRETS = frozenset({"alice-demo-password", "bob-demo-password", "change-me-site-secret"})


def demo_secrets_in_use(settings: Settings) -> tuple[list[str], list[str]]:
    """(agents whose password, channels whose secret) is a published demo value."""
    agents = [a.id for a in settings.agents if a.password.get_secret_value() in DEMO_SECRETS]
    channels = [name for name, ch in settings.channels.items()
                if getattr(ch, "secret", None) is not None and ch.secret.get_secret_value() in DEMO_SECRETS]
    return agents, channels


def base_url(settings: Settings) -> str:
    """Where a browser on this machine reaches kefu (public_url when set)."""
    web = settings.web
    if web.public_url:
        return web.public_url
    host = web.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{web.port}"


def announce(settings: Settings, out: TextIO | None = None) -> None:
    """Print where to go next, and warn about demo passwords (also to the log)."""
    out = out or sys.stderr
    url = base_url(settings)
    lines = ["", "kefu is running.", f"  agent console:  {url}/console/"]
    if any(ch.kind == "webchat" for ch in settings.channels.values()):
        lines.append(f"  demo chat page: {url}/webchat/")
    print("\n".join(lines + warn_demo_secrets(settings)) + "\n", file=out, flush=True)


def warn_demo_secrets(settings: Settings) -> list[str]:
    """Log a warning while demo passwords are in use; the lines to show a person."""
    agents, channels = demo_secrets_in_use(settings)
    if not agents and not channels:
        return []
    log.warning("demo passwords in use", extra={"agents": agents, "channels": channels})
    what = [f"agents {', '.join(agents)}"] if agents else []
    what += [f"channel secret of {', '.join(channels)}"] if channels else []
    return ["", f"WARNING: demo passwords are in use ({'; '.join(what)}).",
            "  Anyone who has read kefu's README can sign in with them. Set the environment",
            "  variables config.yaml names (e.g. ALICE_PASSWORD, SITE_SECRET) and restart",
            "  before anyone else can reach this address."]
