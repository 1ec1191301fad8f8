"""Initial schema: users, sessions, groups, members, messages, notifications."""

from __future__ import annotations

from typing import Any


def migrate(db: Any) -> None:
    db.executescript(
        """
        CREATE TABLE users (
            id INTEGER PRIMARY KEY,
            username TEXT NOT NULL UNIQUE COLLATE NOCASE,
            password_hash TEXT,
            is_admin INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        );
        CREATE TABLE sessions (
            token_hash TEXT PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            created_at TEXT NOT NULL,
            expires_at REAL NOT NULL
        );
        CREATE INDEX sessions_by_user ON sessions(user_id);
        CREATE TABLE groups (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL,
            owner_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
            created_at TEXT NOT NULL
        );
        CREATE TABLE group_members (
            group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            status TEXT NOT NULL CHECK (status IN ('invited', 'accepted')),
            invited_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (group_id, user_id)
        );
        CREATE INDEX group_members_by_user ON group_members(user_id, status);
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('private', 'group')),
            sender_id INTEGER NOT NULL,
            recipient_id INTEGER,
            group_id INTEGER,
            peer_lo INTEGER,
            peer_hi INTEGER,
            content TEXT NOT NULL,
            client_id TEXT,
            created_at TEXT NOT NULL
        );
        CREATE INDEX messages_by_pair ON messages(peer_lo, peer_hi, id) WHERE kind = 'private';
        CREATE INDEX messages_by_group ON messages(group_id, id) WHERE kind = 'group';
        CREATE INDEX messages_to_user ON messages(recipient_id, id) WHERE kind = 'private';
        CREATE INDEX messages_from_user ON messages(sender_id, id);
        CREATE UNIQUE INDEX messages_client_id ON messages(sender_id, client_id)
            WHERE client_id IS NOT NULL;
        CREATE TABLE notifications (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL,
            subtype TEXT NOT NULL,
            message TEXT NOT NULL,
            payload TEXT NOT NULL DEFAULT '{}',
            read_at TEXT,
            created_at TEXT NOT NULL
        );
        CREATE INDEX notifications_by_user ON notifications(user_id, id);
        CREATE INDEX notifications_unread ON notifications(user_id) WHERE read_at IS NULL;
        """
    )
