"""Moved to :mod:`trionet.realtime.ext_typing`; this import path stays for integrators."""

from .realtime.ext_typing import DEFAULT_TYPES, TYPING, TypingIn

__all__ = ["DEFAULT_TYPES", "TYPING", "TypingIn"]
