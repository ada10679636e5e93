"""The serializers under their Prefect 1.x path (an alias of :mod:`asyncflow.serializers`)."""

from ..serializers import *  # noqa: F403
from ..serializers import __all__ as __all__
