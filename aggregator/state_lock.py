"""The state_dir lock: one kefu (and so one embedded Redis) per state directory.

`kefu run` holds it while it runs; `kefu audit` takes it for a moment when it
has to start the embedded Redis itself, so that no kefu starts meanwhile.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path


def try_lock(state_dir: Path) -> int | None:
    """The open, locked state_dir/kefu.lock (close it to release), or None if another
    process holds it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir / "kefu.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
