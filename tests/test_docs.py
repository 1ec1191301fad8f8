"""The docs name every setting, error code and close code the code has."""

from __future__ import annotations

import re
from pathlib import Path

from trionet import Settings, create_app
from trionet.core.errors import CloseCode
from trionet.settings import ENV

ROOT = Path(__file__).resolve().parent.parent

#: endpoints served in front of Quart's routing (see trionet/api/ws.py), so not in its url_map
ASGI_ENDPOINTS = {("GET", "/ws")}
_HEADING_ENDPOINT = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`?\s]*)")

WS_CODES = ["invalid_json", "invalid_message", "binary_frame", "unknown_type", "too_large",
            "not_member", "forbidden", "unknown_user", "rate_limited", "client_id_reused",
            "unavailable", "internal"]
_VARIABLE = re.compile(r"TRIONET_[A-Z_]+")


def test_readme_table_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [var for var, _parse, _doc in ENV.values() if f"`{var}`" not in readme]
    assert not missing


def test_readme_names_every_trionet_variable_the_code_reads() -> None:
    """Also those read outside Settings (os.environ in the package and the scripts)."""
    readme = (ROOT / "README.md").read_text()
    sources = [*(ROOT / "trionet").rglob("*.py"), *(ROOT / "scripts").rglob("*.py"),
               *(p for p in (ROOT / "scripts").iterdir() if p.is_file() and not p.suffix)]
    read = {v for path in sources for v in _VARIABLE.findall(path.read_text())}
    assert "TRIONET_NO_RUNTIME_TUNING" in read  # the search sees them
    missing = sorted(v for v in read if f"`{v}`" not in readme)
    assert not missing, f"TRIONET_* variables missing from the README: {missing}"


def test_protocol_doc_lists_every_ws_error_and_close_code() -> None:
    doc = (ROOT / "docs" / "protocol.md").read_text()
    assert not [c for c in WS_CODES if f"`{c}`" not in doc]
    assert not [c for c in CloseCode if f"| {int(c)} |" not in doc]


def test_readme_first_screen_has_the_two_setup_commands() -> None:
    first_screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:30])
    assert "scripts/serve" in first_screen and "scripts/test" in first_screen
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/test" in ci


def app_endpoints() -> set[tuple[str, str]]:
    """(method, path) of every route of the app, path parameters written ``{}``."""
    found = set(ASGI_ENDPOINTS)
    for rule in create_app(Settings()).url_map.iter_rules():
        path = re.sub(r"<[^>]+>", "{}", rule.rule)
        found |= {(m, path) for m in rule.methods or () if m not in ("HEAD", "OPTIONS")}
    return found


def api_doc_endpoints() -> set[tuple[str, str]]:
    """(method, path) named in a heading of docs/api.md, as `GET /api/groups/{id}`."""
    found = set()
    for line in (ROOT / "docs" / "api.md").read_text().splitlines():
        if line.startswith("#"):
            found |= {(method, re.sub(r"\{[^}]*\}", "{}", path))
                      for method, path in _HEADING_ENDPOINT.findall(line)}
    return found


def test_api_doc_has_a_heading_for_every_endpoint_and_no_other() -> None:
    app, doc = app_endpoints(), api_doc_endpoints()
    assert ("GET", "/api/groups/{}") in app and len(app) > 25  # the comparison sees the routes
    missing = sorted(app - doc)
    assert not missing, f"endpoints without a heading in docs/api.md: {missing}"
    stale = sorted(doc - app)
    assert not stale, f"docs/api.md documents endpoints the app does not have: {stale}"


def test_readme_links_the_guides() -> None:
    readme = (ROOT / "README.md").read_text()
    for guide in ("docs/integration.md", "docs/testing.md", "docs/api.md", "docs/protocol.md"):
        assert f"]({guide})" in readme, guide


def _anchors(doc: Path) -> set[str]:
    """The GitHub anchors of a Markdown file's headings (outside code blocks)."""
    found, fenced = set(), False
    for line in doc.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            title = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower())
            found.add(title.replace(" ", "-"))
    return found


def test_links_to_a_heading_find_it() -> None:
    broken = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target, anchor in re.findall(r"\]\(([\w./-]*)#([\w-]+)\)", doc.read_text()):
            linked = doc.parent / target if target else doc
            if not linked.exists() or anchor not in _anchors(linked):
                broken.append(f"{doc.name}: ({target}#{anchor})")
    assert not broken


_MODULE_PATH = re.compile(r"\btrionet/[\w/]+\.py\b")
_DOTTED = re.compile(r"`(trionet(?:\.[A-Za-z_]\w*)+)")


def test_module_paths_the_docs_name_exist() -> None:
    """Files (``trionet/realtime/connection.py``) and import paths
    (``trionet.testing.running_server``) named in the README and the guides are real."""
    import importlib

    def resolves(dotted: str) -> bool:
        parts = dotted.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                found: object = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            for name in parts[cut:]:
                if not hasattr(found, name):
                    return False
                found = getattr(found, name)
            return True
        return False

    broken = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text()
        broken += [f"{doc.name}: {path}" for path in sorted(set(_MODULE_PATH.findall(text)))
                   if not (ROOT / path).is_file()]
        broken += [f"{doc.name}: {dotted}" for dotted in sorted(set(_DOTTED.findall(text)))
                   if not dotted.endswith(".db") and not resolves(dotted)]
    assert _DOTTED.search("`trionet.app.services_of(app)`")  # the search sees them
    assert not broken, f"named in the docs but not in the code: {broken}"
