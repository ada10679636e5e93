"""The storing Result classes under their Prefect 1.x path (aliases of :mod:`asyncflow.results`)."""

from ..results.local import LocalResult as LocalResult
from ..results.prefect import PrefectResult as PrefectResult

__all__ = ("LocalResult", "PrefectResult")
