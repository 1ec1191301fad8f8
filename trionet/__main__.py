"""``python -m trionet``: the same as the ``trionet`` command."""

from __future__ import annotations

from .cli import main

main()
