"""Who runs a stored run: owner tokens, and whether an owner may still be running it."""

from __future__ import annotations

import os
import socket
import time
import uuid

__all__ = ("new_owner", "owner_alive", "process_owner", "retire_owner")

_live_owners: set[str] = set()
_process_owner: tuple[int, str] | None = None


def new_owner() -> str:
    """A fresh owner token: ``host:pid:random``, remembered as live in this process."""
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    _live_owners.add(owner)
    return owner


def retire_owner(owner: str) -> None:
    """``owner`` no longer runs anything in this process."""
    _live_owners.discard(owner)


def process_owner() -> str:
    """The owner of runs started by ``run_async(store=...)`` in this process."""
    global _process_owner
    pid = os.getpid()
    if _process_owner is None or _process_owner[0] != pid:  # a forked child is another owner
        _process_owner = (pid, new_owner())
    return _process_owner[1]


def owner_alive(owner: str | None, lease_until: float | None, now: float | None = None) -> bool:
    """Whether ``owner`` may still be running its run.

    A released run (no owner) and an expired lease are not; an owner on this host is alive
    while its process is (and, in this very process, while it has not retired).
    """
    if owner is None:
        return False
    if lease_until is not None and lease_until < (time.time() if now is None else now):
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True  # another machine: only its lease tells
    pid = int(pid_text)
    if pid == os.getpid():
        return owner in _live_owners
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True
