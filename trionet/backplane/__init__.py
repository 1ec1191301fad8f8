"""How the nodes of one deployment hear each other: the :class:`Backplane` interface, and
:class:`LocalBackplane`, the in-process one (one node, the default)."""

from .interface import Backplane, BackplaneSink
from .local import LocalBackplane

__all__ = ["Backplane", "BackplaneSink", "LocalBackplane"]
