-- The schema changes of 0.3.0 for a database at 0.2.0 (idempotent: the
-- update test runs this script twice). The re-runnable parts follow it and
-- bring every function, view, trigger and grant to 0.3.0, and mark every
-- table and sequence for pg_dump (src/backup.sql).

-- billing._limit_holds is now billing._holds, the one definition of what
-- is held (its arguments as before, scope and except_request optional)
DROP FUNCTION IF EXISTS billing._limit_holds(bigint, text, bigint);

-- billing._event_clock: the server and database event ids were last made on
CREATE SEQUENCE IF NOT EXISTS billing.event_clock MINVALUE -9223372036854775808 START 0;

-- SPEC 22: postpaid collections (void invoices, credit notes, overdue
-- accounts, the invoice document). Columns in the SPEC's order, after
-- those of sections 20 and 21.
ALTER TABLE billing.accounts ADD COLUMN IF NOT EXISTS overdue_since timestamptz;
ALTER TABLE billing.accounts ADD COLUMN IF NOT EXISTS overdue_grace_days integer
    CHECK (overdue_grace_days BETWEEN -1 AND 365);
ALTER TABLE billing.accounts ADD COLUMN IF NOT EXISTS billing_details jsonb;
ALTER TABLE billing.models ADD COLUMN IF NOT EXISTS display_name text
    CHECK (pg_catalog.length(display_name) BETWEEN 1 AND 256);
ALTER TABLE billing.invoices ADD COLUMN IF NOT EXISTS voided_at timestamptz;
ALTER TABLE billing.invoices ADD COLUMN IF NOT EXISTS void_reason text;
ALTER TABLE billing.invoices ADD COLUMN IF NOT EXISTS void_idempotency_key text;
ALTER TABLE billing.invoices ADD COLUMN IF NOT EXISTS seller jsonb;
ALTER TABLE billing.invoices ADD COLUMN IF NOT EXISTS buyer jsonb;
ALTER TABLE billing.invoices DROP CONSTRAINT IF EXISTS invoices_account_id_period_start_key;
CREATE UNIQUE INDEX IF NOT EXISTS invoices_one_per_month ON billing.invoices (account_id, period_start)
    WHERE status <> 'void';
CREATE UNIQUE INDEX IF NOT EXISTS invoices_void_idempotency
    ON billing.invoices (account_id, void_idempotency_key) WHERE void_idempotency_key IS NOT NULL;
ALTER TABLE billing.invoice_lines ADD COLUMN IF NOT EXISTS description text;
CREATE TABLE IF NOT EXISTS billing.credit_notes (
    account_id         bigint NOT NULL,
    credit_note_id     bigint GENERATED ALWAYS AS IDENTITY,
    credit_note_number bigint NOT NULL,
    invoice_id         bigint NOT NULL,
    amount_micros      bigint NOT NULL CHECK (amount_micros > 0),
    settlement         text NOT NULL CHECK (settlement IN ('credit', 'refund')),
    reason             text NOT NULL,
    idempotency_key    text CHECK (pg_catalog.length(idempotency_key) BETWEEN 1 AND 256),
    entry_id           bigint,
    created_by         text NOT NULL DEFAULT SESSION_USER,
    created_at         timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    PRIMARY KEY (account_id, credit_note_id),
    UNIQUE (account_id, credit_note_number),
    FOREIGN KEY (account_id, invoice_id) REFERENCES billing.invoices (account_id, invoice_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS credit_notes_idempotency ON billing.credit_notes (account_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS credit_notes_invoice ON billing.credit_notes (account_id, invoice_id);
ALTER TABLE billing.events DROP CONSTRAINT IF EXISTS events_type_check;
ALTER TABLE billing.events ADD CONSTRAINT events_type_check CHECK (type IN (
    'auto_topup_requested', 'auto_topup_disabled', 'topup_succeeded',
    'topup_failed', 'balance_alert', 'spend_limit_reached',
    'credits_granted', 'credits_expired', 'refund_issued',
    'invoice_issued', 'invoice_paid',
    -- 0.3.0, SPEC 22
    'invoice_voided', 'credit_note_issued', 'invoice_overdue',
    'account_reinstated'));
-- set_model gains display_name: the 0.2.0 signature goes
DROP FUNCTION IF EXISTS billing.set_model(text, text, text, text, text, boolean);
