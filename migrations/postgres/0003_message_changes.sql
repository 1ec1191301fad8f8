-- Edit and delete (as SQLite's migrations/m0007_message_changes.py): when a message was last
-- edited, when it was deleted (its content is then erased), and the id of its last change,
-- so a resume finds the messages changed after its cursor. Adding nullable columns without a
-- default rewrites nothing.
ALTER TABLE messages ADD COLUMN edited_at TEXT;
ALTER TABLE messages ADD COLUMN deleted_at TEXT;
ALTER TABLE messages ADD COLUMN change_id BIGINT;
CREATE INDEX messages_changed ON messages (change_id) WHERE change_id IS NOT NULL;
