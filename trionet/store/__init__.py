"""Where trionet keeps everything: one :class:`Store` interface, two implementations.

``TRIONET_DATABASE`` picks one: a plain path or ``sqlite:///path`` is the embedded SQLite
store (the default, ``./trionet.db``); ``postgresql://user@host:port/dbname`` (or
``postgres://``) is the PostgreSQL store, shared by several processes and hosts (install
``trionet[postgres]``).
"""

from __future__ import annotations

from ..settings import SettingsError
from .interface import (
    AccountStore,
    BlockStore,
    ChangeStore,
    ErasureStore,
    GroupStore,
    InlineSaver,
    MessageStore,
    NotificationStore,
    OutboxStore,
    ReceiptStore,
    RetentionStore,
    Store,
)
from .records import (
    Conversation,
    GroupRefused,
    LeaveOutcome,
    NotInConversation,
    PasswordAccount,
    ReadMarker,
    ReadState,
    Refusal,
    StoreUnavailable,
    UsernameTaken,
    UserRecord,
)

__all__ = [
    "AccountStore",
    "BlockStore",
    "ChangeStore",
    "ErasureStore",
    "Conversation",
    "GroupRefused",
    "GroupStore",
    "InlineSaver",
    "LeaveOutcome",
    "MessageStore",
    "NotInConversation",
    "NotificationStore",
    "OutboxStore",
    "PasswordAccount",
    "ReadMarker",
    "ReadState",
    "ReceiptStore",
    "RetentionStore",
    "Refusal",
    "Store",
    "StoreUnavailable",
    "UserRecord",
    "UsernameTaken",
    "open_store",
    "store_kind",
]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def store_kind(url: str) -> str:
    """"sqlite" or "postgresql" for a ``TRIONET_DATABASE`` value; ValueError for another
    scheme (``mysql://...``)."""
    lowered = url.lower()
    if lowered.startswith(_POSTGRES_SCHEMES):
        return "postgresql"
    if lowered.startswith("sqlite:///") or "://" not in url:
        return "sqlite"
    raise ValueError("must be a file path, sqlite:///path or postgresql://user@host:port/db")


def sqlite_path(url: str) -> str:
    """The file of a SQLite ``TRIONET_DATABASE`` value."""
    return url[len("sqlite:///"):] if url.lower().startswith("sqlite:///") else url


def open_store(url: str, *, synchronous: str = "NORMAL", pool_size: int = 8) -> Store:
    """The store ``url`` names (no connection is made yet: :meth:`Store.migrate` does)."""
    if store_kind(url) == "postgresql":
        try:
            from .postgres import PostgresStore
        except ImportError as exc:  # psycopg is an extra
            raise SettingsError(
                "TRIONET_DATABASE",
                "PostgreSQL needs the postgres extra: pip install 'trionet[postgres]'"
                f" (missing {exc.name or exc})") from None
        return PostgresStore(url, pool_size=pool_size)
    from .sqlite import SqliteStore

    return SqliteStore(sqlite_path(url), synchronous=synchronous)
