"""What a username may be (pure; the API, the CLI and every store apply the same rule)."""

from __future__ import annotations

import re

__all__ = ["USERNAME_MAX", "USERNAME_PATTERN", "valid_username"]

#: Longest username, characters.
USERNAME_MAX = 32
#: What a username may contain: letters, digits, ``_``, ``.`` and ``-`` (nothing else, not even
#: a trailing newline, which ``$`` would let through, and so no bidi control either).
USERNAME_PATTERN = r"\A[A-Za-z0-9_.-]+\Z"
_USERNAME = re.compile(USERNAME_PATTERN)


def valid_username(username: str) -> bool:
    """True when ``username`` may name an account."""
    return 0 < len(username) <= USERNAME_MAX and _USERNAME.match(username) is not None
