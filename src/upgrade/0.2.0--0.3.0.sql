-- The schema changes of 0.3.0 for a database at 0.2.0 (idempotent: the
-- update test runs this script twice). The re-runnable parts follow it and
-- bring every function, view, trigger and grant to 0.3.0, and mark every
-- table and sequence for pg_dump (src/backup.sql).

-- billing._limit_holds is now billing._holds, the one definition of what
-- is held (its arguments as before, scope and except_request optional)
DROP FUNCTION IF EXISTS billing._limit_holds(bigint, text, bigint);

-- billing._event_clock: the server and database event ids were last made on
CREATE SEQUENCE IF NOT EXISTS billing.event_clock MINVALUE -9223372036854775808 START 0;

-- 0.3.0, contract prices (docs/pricing.md, "Price books and discounts"):
-- price books, their versions and discounts, assignments; what requests
-- record of them. Every account stays on the list (no assignment).
CREATE TABLE IF NOT EXISTS billing.price_books (
    price_book  text PRIMARY KEY CHECK (pg_catalog.length(price_book) BETWEEN 1 AND 64),
    description text,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
ALTER TABLE billing.prices ADD COLUMN IF NOT EXISTS price_book text REFERENCES billing.price_books;
CREATE TABLE IF NOT EXISTS billing.discounts (
    discount_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    price_book      text NOT NULL REFERENCES billing.price_books,
    model           text REFERENCES billing.models,
    provider        text,
    multiplier_ppm  integer NOT NULL CHECK (multiplier_ppm BETWEEN 0 AND 10000000),
    effective_from  timestamptz NOT NULL,
    effective_until timestamptz,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CHECK (provider IS NULL OR model IS NOT NULL),
    CHECK (effective_until > effective_from)
);
CREATE INDEX IF NOT EXISTS discounts_target ON billing.discounts (price_book, model, provider);
CREATE TABLE IF NOT EXISTS billing.price_book_assignments (
    account_id     bigint NOT NULL,
    assignment_id  bigint GENERATED ALWAYS AS IDENTITY,
    price_book     text,
    effective_from timestamptz NOT NULL,
    created_by     text NOT NULL DEFAULT SESSION_USER,
    created_at     timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    PRIMARY KEY (account_id, assignment_id),
    UNIQUE (account_id, effective_from)
);
REVOKE ALL ON billing.price_books, billing.discounts, billing.price_book_assignments FROM PUBLIC;
ALTER TABLE billing.requests ADD COLUMN IF NOT EXISTS price_book text;
ALTER TABLE billing.requests ADD COLUMN IF NOT EXISTS discount_id bigint;
-- a version is unique per book too
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_indexes
                    WHERE schemaname = 'billing' AND indexname = 'prices_version'
                      AND indexdef LIKE '%price_book%') THEN
        DROP INDEX IF EXISTS billing.prices_version;
        CREATE UNIQUE INDEX prices_version
            ON billing.prices (model, (COALESCE(provider, '')), (COALESCE(price_book, '')), effective_from);
    END IF;
END $$;
-- set_price takes a last argument, price_book
DROP FUNCTION IF EXISTS billing.set_price(text, jsonb, text, timestamptz);

-- 0.3.0: provider costs, margin, minimum commitments
CREATE TABLE IF NOT EXISTS billing.provider_costs (
    cost_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model          text NOT NULL REFERENCES billing.models,
    provider       text NOT NULL,
    currency       text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    components     jsonb NOT NULL,
    effective_from timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE UNIQUE INDEX IF NOT EXISTS provider_costs_version
    ON billing.provider_costs (model, provider, effective_from);
ALTER TABLE billing.requests ADD COLUMN IF NOT EXISTS provider_cost_micros bigint;
ALTER TABLE billing.invoices ADD COLUMN IF NOT EXISTS true_up_micros bigint NOT NULL DEFAULT 0;
-- nothing settled before 0.3.0 has a provider cost: every rolled-up request
-- is uncosted (once: a second run must not count later ones again)
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_attribute
                    WHERE attrelid = 'billing.usage_rollup'::regclass AND attname = 'uncosted') THEN
        ALTER TABLE billing.usage_rollup
            ADD COLUMN provider_cost_sum numeric NOT NULL DEFAULT 0,
            ADD COLUMN uncosted bigint NOT NULL DEFAULT 0;
        UPDATE billing.usage_rollup SET uncosted = requests;
    END IF;
END $$;
CREATE TABLE IF NOT EXISTS billing.minimum_commitments (
    account_id      bigint NOT NULL,
    commitment_id   bigint GENERATED ALWAYS AS IDENTITY,
    amount_micros   bigint NOT NULL CHECK (amount_micros >= 0),
    effective_from  date NOT NULL,
    effective_until date CHECK (effective_until > effective_from),
    created_by      text NOT NULL DEFAULT SESSION_USER,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    PRIMARY KEY (account_id, commitment_id)
);
-- 0.3.0: auto top-up to a target, a monthly cap, and reversals
-- (docs/topup.md). configure_auto_topup gains two arguments: the function of
-- four is dropped, so that one function of six (its defaults keep 0.2.0's
-- calls) is all there is.
DROP FUNCTION IF EXISTS billing.configure_auto_topup(bigint, bigint, bigint, boolean);
ALTER TABLE billing.accounts
    ADD COLUMN IF NOT EXISTS auto_topup_target_micros bigint CHECK (auto_topup_target_micros > 0),
    ADD COLUMN IF NOT EXISTS auto_topup_max_per_month_micros bigint
        CHECK (auto_topup_max_per_month_micros > 0),
    ADD COLUMN IF NOT EXISTS auto_topup_capped_month date;
ALTER TABLE billing.topups ADD COLUMN IF NOT EXISTS cap_micros bigint;
CREATE TABLE IF NOT EXISTS billing.reversals (
    account_id       bigint NOT NULL,
    reversal_id      bigint GENERATED ALWAYS AS IDENTITY,
    entry_id         bigint NOT NULL,
    source           text NOT NULL CHECK (source IN ('topup', 'funds', 'grant')),
    topup_id         bigint,
    funds_entry_id   bigint,
    grant_id         bigint,
    amount_micros    bigint NOT NULL CHECK (amount_micros > 0),
    requested_micros bigint,
    reason           text,
    idempotency_key  text,
    invoice_id       bigint,
    created_by       text NOT NULL DEFAULT SESSION_USER,
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    PRIMARY KEY (account_id, reversal_id),
    CHECK ((source = 'topup') = (topup_id IS NOT NULL)
           AND (source = 'funds') = (funds_entry_id IS NOT NULL)
           AND (source = 'grant') = (grant_id IS NOT NULL))
);
CREATE UNIQUE INDEX IF NOT EXISTS reversals_idempotency ON billing.reversals (account_id, idempotency_key);
CREATE INDEX IF NOT EXISTS reversals_source ON billing.reversals (account_id, source,
                                                    COALESCE(topup_id, funds_entry_id, grant_id));
REVOKE ALL ON billing.reversals FROM PUBLIC;
-- (the events' CHECK gains the types of reversals and of collections, below)
-- 0.3.0: postpaid collections (void invoices, credit notes, overdue
-- accounts, the invoice document). Columns after those of contract
-- prices and top-ups.
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
    -- 0.3.0: reversals, collections
    'auto_topup_capped', 'topup_reversed', 'funds_reversed', 'grant_voided',
    'invoice_voided', 'credit_note_issued', 'invoice_overdue',
    'account_reinstated'));
-- set_model gains display_name: the 0.2.0 signature goes
DROP FUNCTION IF EXISTS billing.set_model(text, text, text, text, text, boolean);

-- The charge reads top to bottom (issue 22): billing._move gains grant_id,
-- through which credit grants and their expiry post their entries; the
-- 0.2.0 signature goes
DROP FUNCTION IF EXISTS billing._move(bigint, bigint, text, text, bigint, bigint);
