-- Webhooks (as SQLite's migrations/m0009_webhook_outbox.py): events for the backend wait here
-- until it has taken them; next_at (Unix seconds) is when one is due (claimed by pushing it
-- forward, rescheduled on a failure).
CREATE TABLE webhook_outbox (
    id BIGINT PRIMARY KEY,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at DOUBLE PRECISION NOT NULL,
    message_id BIGINT
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_at);
-- the message a message.offline event carries: it goes when the message is deleted
CREATE INDEX webhook_outbox_by_message ON webhook_outbox (message_id)
    WHERE message_id IS NOT NULL;
