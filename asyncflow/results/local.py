"""``LocalResult``: values stored as files under a directory.

The directory defaults to ``results`` under asyncflow's home, ``~/.asyncflow`` (the environment
variable ``ASYNCFLOW_HOME`` moves it); relative locations are relative to it, absolute ones are
used as they are.
"""

from __future__ import annotations

import os
import re
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .base import Result

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ("LocalResult", "home_dir")


def home_dir() -> str:
    """asyncflow's home directory: ``$ASYNCFLOW_HOME``, else ``~/.asyncflow``."""
    return os.environ.get("ASYNCFLOW_HOME") or os.path.join(os.path.expanduser("~"), ".asyncflow")


class LocalResult(Result):
    """A Result stored in the local file system.

    "Local" is where the task runs: with a process or Dask executor the file is written by
    the worker that ran the task.

    Args:
        dir: the directory that holds the results (default: ``results`` under
            ``$ASYNCFLOW_HOME``, else ``~/.asyncflow/results``).
        validate_dir: make ``dir`` absolute (expanding ``~``) and create it now.
        **kwargs: ``value``, ``location`` and ``serializer``, as for
            :class:`~asyncflow.engine.result.Result`.

    Raises:
        OSError: ``validate_dir`` is true and the directory cannot be created.
    """

    def __init__(
        self, dir: str | Path | None = None, validate_dir: bool = True, **kwargs: Any
    ) -> None:
        directory = os.fspath(dir) if dir is not None else os.path.join(home_dir(), "results")
        if validate_dir:
            directory = os.path.abspath(os.path.expanduser(directory))
            os.makedirs(directory, exist_ok=True)
        self.dir = directory
        super().__init__(**kwargs)

    @property
    def default_location(self) -> str:
        """A new file name under ``dir``, from the time and a random suffix."""
        stamp = re.sub(r"[^0-9a-z]+", "-", datetime.now(UTC).isoformat().lower())
        return os.path.join(self.dir, f"asyncflow-result-{stamp}-{uuid.uuid4().hex[:8]}")

    def read(self, location: str) -> Result:
        """A copy holding the value read from the file ``location``.

        Raises:
            OSError: the file is missing or unreadable.
            Exception: whatever the serializer raises for bytes it cannot read.
        """
        new = self.copy()
        new.location = location
        with open(os.path.join(self.dir, location), "rb") as f:
            data = f.read()
        new.value = self.serializer.deserialize(data)
        return new

    def write(self, value_: Any, **kwargs: Any) -> Result:
        """Serialize ``value_`` into the file at the location rendered with ``kwargs``.

        Missing directories on the way are created. The returned copy's ``location`` is the
        file's full path.
        """
        new = self.format(**kwargs)
        new.value = value_
        assert new.location is not None
        data = self.serializer.serialize(value_)  # before touching the disk: no empty files
        path = os.path.join(self.dir, new.location)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        new.location = path
        return new

    def exists(self, location: str, **kwargs: Any) -> bool:
        """Whether the file at ``location`` (rendered with ``kwargs``) exists."""
        return os.path.exists(os.path.join(self.dir, location.format(**kwargs)))
