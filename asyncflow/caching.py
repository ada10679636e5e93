"""Result caching: reuse a task's earlier result instead of running it again.

A task with ``cache_for=timedelta(...)`` stores each successful run as a ``Cached`` state in a
:class:`CacheStore` (a process-wide :class:`MemoryCacheStore` unless a run is given ``cache=``),
under ``cache_key`` (shared between tasks that name the same key) or the flow and task slug. The
next run first asks the task's ``cache_validator`` whether a stored state may stand in for this
run; on a hit the task ends ``Cached`` without running. Validators have Prefect 1.x's signature,
``validator(state, inputs, parameters) -> bool``, and read time from the run's clock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from .context import current

if TYPE_CHECKING:
    from .states import Cached

__all__ = (
    "CacheStore",
    "MemoryCacheStore",
    "Validator",
    "all_inputs",
    "all_parameters",
    "default_cache",
    "duration_only",
    "never_use",
    "partial_inputs_only",
    "partial_parameters_only",
)

Validator = Callable[["Cached", dict[str, Any], dict[str, Any]], bool]


class CacheStore(Protocol):
    """Where ``Cached`` states live between runs."""

    def get(self, key: str) -> list[Cached]:
        """The states stored under ``key``, newest first."""
        ...

    def put(self, key: str, state: Cached) -> None:
        """Store ``state`` under ``key``."""
        ...


class MemoryCacheStore:
    """An in-process store keeping the newest ``per_key`` states of up to ``max_keys`` keys.

    Args:
        per_key: how many states to keep for one key.
        max_keys: how many keys to keep; the least recently written is forgotten first.
    """

    def __init__(self, per_key: int = 16, max_keys: int = 10_000) -> None:
        self.per_key = per_key
        self.max_keys = max_keys
        self._states: OrderedDict[str, list[Cached]] = OrderedDict()

    def get(self, key: str) -> list[Cached]:
        return list(self._states.get(key, ()))

    def put(self, key: str, state: Cached) -> None:
        states = self._states.pop(key, [])
        states.insert(0, state)
        del states[self.per_key :]
        self._states[key] = states
        while len(self._states) > self.max_keys:
            self._states.popitem(last=False)

    def clear(self) -> None:
        """Forget everything."""
        self._states.clear()

    def __len__(self) -> int:
        return len(self._states)


_DEFAULT = MemoryCacheStore()


def default_cache() -> MemoryCacheStore:
    """The process-wide store that runs use unless given ``cache=``."""
    return _DEFAULT


def _now() -> datetime:
    clock = current().get("clock")
    return datetime.fromtimestamp(clock.now(), UTC) if clock is not None else datetime.now(UTC)


def never_use(state: Cached, inputs: dict[str, Any], parameters: dict[str, Any]) -> bool:
    """Never reuse a cached result."""
    return False


def duration_only(state: Cached, inputs: dict[str, Any], parameters: dict[str, Any]) -> bool:
    """Reuse the result until it expires (the default validator)."""
    expiration = state.cached_result_expiration
    return expiration is None or expiration > _now()


def all_inputs(state: Cached, inputs: dict[str, Any], parameters: dict[str, Any]) -> bool:
    """Reuse the result while it has not expired and the inputs are all the same."""
    return duration_only(state, inputs, parameters) and state.cached_inputs == inputs


def all_parameters(state: Cached, inputs: dict[str, Any], parameters: dict[str, Any]) -> bool:
    """Reuse the result while it has not expired and the flow's parameters are all the same."""
    return duration_only(state, inputs, parameters) and state.cached_parameters == parameters


def partial_inputs_only(validate_on: Iterable[str] | None = None) -> Validator:
    """A validator comparing only the inputs named in ``validate_on``.

    Args:
        validate_on: the input names that must match (``None``: no input must match).
    """
    names = list(validate_on or ())

    def partial_inputs(state: Cached, inputs: dict[str, Any], parameters: dict[str, Any]) -> bool:
        cached = state.cached_inputs or {}
        return duration_only(state, inputs, parameters) and all(
            cached.get(n) == inputs.get(n) for n in names
        )

    return partial_inputs


def partial_parameters_only(validate_on: Iterable[str] | None = None) -> Validator:
    """A validator comparing only the parameters named in ``validate_on``.

    Args:
        validate_on: the parameter names that must match (``None``: no parameter must match).
    """
    names = list(validate_on or ())

    def partial_parameters(
        state: Cached, inputs: dict[str, Any], parameters: dict[str, Any]
    ) -> bool:
        cached = state.cached_parameters or {}
        return duration_only(state, inputs, parameters) and all(
            cached.get(n) == parameters.get(n) for n in names
        )

    return partial_parameters
