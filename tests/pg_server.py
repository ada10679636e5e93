"""A private PostgreSQL server for the tests: ``initdb`` and ``postgres`` in a temporary folder.

The server listens on a free port of 127.0.0.1 only, trusts local connections, runs as a
non-root user (``postgres`` when the tests run as root: the server refuses to run as root) and
is stopped by its pid. Debian's ``postgresql`` package provides the programs; ``.ci/run``
installs it when it can. Where they are missing, :func:`find_bindir` says why, and the tests
that need the server skip with that reason.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ("PostgresServer", "find_bindir")


def find_bindir() -> tuple[Path | None, str]:
    """The folder of ``initdb`` and ``postgres``, or ``None`` and why not."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    found = shutil.which("initdb")
    if found:
        candidates.insert(0, os.path.dirname(os.path.realpath(found)))
    for folder in candidates:
        if os.access(os.path.join(folder, "initdb"), os.X_OK) and os.access(
            os.path.join(folder, "postgres"), os.X_OK
        ):
            return Path(folder), ""
    return None, "PostgreSQL is not installed (Debian: apt-get install postgresql)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PostgresServer:
    """One private server; ``dsn`` once :meth:`start` returned."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.tmp = Path(tempfile.mkdtemp(prefix="asyncflow-pg-"))
        self.data = self.tmp / "data"
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.dsn = f"postgresql://asyncflow@127.0.0.1:{self.port}/postgres"
        self._user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            self._user = pwd.getpwnam("postgres")

    def _demote(self) -> None:  # in the child, before exec
        if self._user is not None:
            os.setgid(self._user.pw_gid)
            os.setuid(self._user.pw_uid)

    def start(self, timeout: float = 60.0) -> None:
        """initdb, then start the server and wait until it accepts connections.

        Raises:
            RuntimeError: the server did not come up (its log is in the message).
        """
        if self._user is not None:
            os.chown(self.tmp, self._user.pw_uid, self._user.pw_gid)
        subprocess.run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "asyncflow",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
            preexec_fn=self._demote,  # only setuid, before exec
            timeout=timeout,
        )
        log = open(self.tmp / "server.log", "wb")  # noqa: SIM115  # kept for the server's life
        self._log = log
        self.process = subprocess.Popen(
            [
                str(self.bindir / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={self.tmp}",
                "-c",
                "fsync=off",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=self._demote,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
            except OSError:
                time.sleep(0.05)
                continue
            if b"ready to accept connections" in (self.tmp / "server.log").read_bytes():
                return
            time.sleep(0.05)
        text = (self.tmp / "server.log").read_text(errors="replace")
        self.stop()
        raise RuntimeError(f"the test PostgreSQL server did not start:\n{text}")

    def stop(self) -> None:
        """Stop the server by its pid (fast shutdown) and remove its folder."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if getattr(self, "_log", None) is not None:
            self._log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
