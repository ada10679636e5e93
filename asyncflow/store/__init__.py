"""Durable runs: stores that keep runs, their journal of events and checkpointed results.

``SQLiteStore(path)`` is the embedded default, ``PostgresStore(dsn)`` serves several replicas
(extra ``postgres``), ``MemoryStore()`` is for tests. Give one to a run (``store=``) or to a
``Runtime(flows, store=...)``; resume an unfinished run with ``resume=RUN_ID``.
"""

from __future__ import annotations

from .base import FlowMismatch as FlowMismatch
from .base import OwnershipLost as OwnershipLost
from .base import RunNotFound as RunNotFound
from .base import RunRecord as RunRecord
from .base import Store as Store
from .base import StoreError as StoreError
from .memory import MemoryStore as MemoryStore
from .postgres import PostgresStore as PostgresStore
from .sqlite import SQLiteStore as SQLiteStore

__all__ = (
    "Store",
    "SQLiteStore",
    "PostgresStore",
    "MemoryStore",
    "RunRecord",
    "RunNotFound",
    "StoreError",
    "OwnershipLost",
    "FlowMismatch",
)
