"""A real Dovecot IMAP server for the tests, with its own config in a temp directory.

Debian's `dovecot-imapd` provides the binary (CI installs it); nothing of the
machine's own Dovecot is used or touched.  One user (passwd-file), maildir
storage, listening on a free port on 127.0.0.1: plain IMAP (STARTTLS offered
when TLS files are given) and, with TLS files, IMAPS.  Run as root it drops
to Debian's `dovecot`/`dovenull` users as Dovecot requires; as anyone else it
runs entirely as that user.

Mail arrives either through IMAP APPEND (`append`) or, also while the server
is down, written straight into the maildir as an MTA would (`deliver`).
No chroot for its helper processes, so that it also runs without root.
"""
from __future__ import annotations

import asyncio
import imaplib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from tests.kefu_harness import free_port

BINARY = shutil.which("dovecot") or ("/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None)
MISSING = "Dovecot is not installed (Debian: apt-get install dovecot-imapd)"


class DovecotServer:
    def __init__(self, *, idle: bool = True, tls: tuple[Path, Path] | None = None,
                 user: str = "support", password: str = "imap-secret"):
        """`tls`: (certificate chain PEM, private key PEM) → IMAPS on `tls_port`, STARTTLS on `port`."""
        if BINARY is None:
            raise RuntimeError(MISSING)
        self.user, self.password = user, password
        self.idle = idle
        self.tls = tls
        self.dir = Path(tempfile.mkdtemp(prefix="kefu-dovecot-"))
        self.dir.chmod(0o755)  # the mail processes run as another user when we are root
        self.port = free_port()
        self.tls_port = free_port() if tls else 0
        self.proc: subprocess.Popen | None = None
        if os.geteuid() == 0:
            internal = pwd.getpwnam("dovecot")
            self.uid, self.gid = internal.pw_uid, internal.pw_gid
            users = ("dovecot", "dovenull")
        else:
            self.uid, self.gid = os.getuid(), os.getgid()
            me = pwd.getpwuid(self.uid).pw_name
            users = (me, me)
        self.maildir = self.dir / "mail" / user
        self.maildir.parent.mkdir()
        os.chown(self.maildir.parent, self.uid, self.gid)
        (self.dir / "passwd").write_text(
            f"{user}:{{PLAIN}}{password}:{self.uid}:{self.gid}::{self.maildir}::\n")
        self.config = self.dir / "dovecot.conf"
        self.config.write_text(self._config(*users))

    def _config(self, internal_user: str, login_user: str) -> str:
        d = self.dir
        group = "dovecot" if internal_user == "dovecot" else internal_user
        ssl = (f"ssl = yes\nssl_cert = <{self.tls[0]}\nssl_key = <{self.tls[1]}\n" if self.tls else "ssl = no\n")
        capability = "" if self.idle else "imap_capability = IMAP4rev1 LITERAL+ SASL-IR ID ENABLE UIDPLUS\n"
        return f"""\
base_dir = {d}/run
state_dir = {d}/state
instance_name = kefu-test-{uuid.uuid4().hex[:8]}
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
{ssl}disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal_user}
default_internal_group = {group}
default_login_user = {login_user}
first_valid_uid = {self.uid}
mail_location = maildir:{d}/mail/%u
{capability}passdb {{
  driver = passwd-file
  args = scheme=PLAIN {d}/passwd
}}
userdb {{
  driver = passwd-file
  args = {d}/passwd
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.tls_port}
  }}
}}
"""

    # -- process --------------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> "DovecotServer":
        self.proc = subprocess.Popen([BINARY, "-F", "-c", str(self.config)], start_new_session=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not self._greets():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"dovecot did not start:\n{self.log()}")
            time.sleep(0.02)
        return self

    def _greets(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                return s.recv(64).startswith(b"* OK")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server and every process of it (open connections die too); the mail stays."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: master and children
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        path = self.dir / "dovecot.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else "(no log)"

    # -- mail ---------------------------------------------------------------------------
    def deliver(self, raw: bytes, mailbox: str = "INBOX") -> None:
        """Write a mail into the maildir as a local delivery agent would (works while stopped)."""
        box = self.maildir if mailbox == "INBOX" else self.maildir / f".{mailbox}"
        for sub in ("tmp", "new", "cur"):
            (box / sub).mkdir(parents=True, exist_ok=True)
        for path in (self.maildir, box, box / "tmp", box / "new", box / "cur"):
            os.chown(path, self.uid, self.gid)
        name = f"{time.time_ns()}.{uuid.uuid4().hex}.kefu-test"
        tmp = box / "tmp" / name
        tmp.write_bytes(raw)
        os.chown(tmp, self.uid, self.gid)
        tmp.rename(box / "new" / name)

    async def append(self, raw: bytes, mailbox: str = "INBOX") -> int:
        """APPEND a mail through IMAP, as another client would; returns its UID."""
        def run() -> int:
            with self.session() as imap:
                typ, data = imap.append(mailbox, None, None, raw)
                assert typ == "OK", data
                return int(data[0].split(b"]")[0].split()[-1])  # [APPENDUID <validity> <uid>]
        return await asyncio.to_thread(run)

    async def flags(self, uid: int, mailbox: str = "INBOX") -> bytes:
        def run() -> bytes:
            with self.session() as imap:
                imap.select(mailbox, readonly=True)
                typ, data = imap.uid("FETCH", str(uid), "(FLAGS)")
                return data[0] or b""
        return await asyncio.to_thread(run)

    async def recreate(self, mailbox: str) -> None:
        """Delete and create `mailbox` again: a new UIDVALIDITY, as after a restore."""
        def run() -> None:
            with self.session() as imap:
                imap.delete(mailbox)
                typ, data = imap.create(mailbox)
                assert typ == "OK", data
        await asyncio.to_thread(run)

    async def create(self, mailbox: str) -> None:
        def run() -> None:
            with self.session() as imap:
                typ, data = imap.create(mailbox)
                assert typ == "OK", data
        await asyncio.to_thread(run)

    def session(self) -> imaplib.IMAP4:
        imap = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        imap.login(self.user, self.password)
        return imap
