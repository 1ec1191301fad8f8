"""The docs name every setting, error code and close code the code has."""

from __future__ import annotations

from pathlib import Path

from trionet.errors import CloseCode
from trionet.settings import ENV

ROOT = Path(__file__).resolve().parent.parent

WS_CODES = ["invalid_json", "invalid_message", "binary_frame", "unknown_type", "too_large",
            "not_member", "forbidden", "unknown_user", "rate_limited", "unavailable", "internal"]


def test_readme_table_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [var for var, _parse, _doc in ENV.values() if f"`{var}`" not in readme]
    assert not missing


def test_protocol_doc_lists_every_ws_error_and_close_code() -> None:
    doc = (ROOT / "docs" / "protocol.md").read_text()
    assert not [c for c in WS_CODES if f"`{c}`" not in doc]
    assert not [c for c in CloseCode if f"| {int(c)} |" not in doc]


def test_readme_first_screen_has_the_two_setup_commands() -> None:
    first_screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:30])
    assert "scripts/serve" in first_screen and "scripts/test" in first_screen
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/test" in ci
