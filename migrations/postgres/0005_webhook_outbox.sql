-- Webhooks (as SQLite's migrations/m0009_webhook_outbox.py): events for the backend wait here
-- until it has taken them; next_at (Unix seconds) is when one is due (claimed by pushing it
-- forward, rescheduled on a failure).
CREATE TABLE webhook_outbox (
    id BIGINT PRIMARY KEY,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_at);
