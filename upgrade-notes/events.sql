-- The durable event log (docs/events.md): the events table and its index.
CREATE TABLE IF NOT EXISTS billing.events (
    account_id  bigint NOT NULL,
    event_id    bigint NOT NULL,
    type        text NOT NULL CHECK (type IN (
                    'auto_topup_requested', 'auto_topup_disabled', 'topup_succeeded',
                    'topup_failed', 'balance_alert', 'spend_limit_reached',
                    'credits_granted', 'credits_expired', 'refund_issued',
                    'invoice_issued', 'invoice_paid')),
    payload     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    PRIMARY KEY (account_id, event_id)
);
CREATE INDEX IF NOT EXISTS events_order ON billing.events (event_id);
REVOKE ALL ON billing.events FROM PUBLIC;

-- The new functions come with src/events.sql (a new part of SQL_PARTS,
-- right after src/schema.sql: billing._event, billing.events_after) and
-- src/invoice/invoice.sql (billing._invoice_event); events_after's tier is
-- granted by src/security.sql's list.
