-- billing: the tables that 0.3.0 added, and their indexes. Part of the
-- install and of the update from an earlier release (after
-- src/upgrade/0.2.0--0.3.0.sql), so every statement may find its object
-- there already (IF NOT EXISTS).

-- Contract prices (docs/pricing.md, "Price books and discounts"): a book
-- holds its own price versions (billing.prices.price_book) and discounts
-- off the list; an account is priced by the book assigned to it. Reference
-- tables on Citus, like the catalog. Discounts of one target (book, model,
-- provider, NULLs equal) never overlap: set_discount checks it under the
-- book's row lock, verify() checks it again.
CREATE TABLE IF NOT EXISTS billing.price_books (
    price_book  text PRIMARY KEY CHECK (pg_catalog.length(price_book) BETWEEN 1 AND 64),
    description text,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
-- a book's price versions (billing.prices.price_book, which
-- src/upgrade/0.2.0--0.3.0.sql adds to an earlier install)
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_constraint
                    WHERE conrelid = 'billing.prices'::pg_catalog.regclass
                      AND conname = 'prices_price_book_fkey') THEN
        ALTER TABLE billing.prices ADD FOREIGN KEY (price_book) REFERENCES billing.price_books;
    END IF;
END $$;

CREATE TABLE IF NOT EXISTS billing.discounts (
    discount_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    price_book      text NOT NULL REFERENCES billing.price_books,
    model           text REFERENCES billing.models,  -- NULL: every model of the book
    provider        text,                            -- NULL: every provider of the model
    multiplier_ppm  integer NOT NULL CHECK (multiplier_ppm BETWEEN 0 AND 10000000),
    effective_from  timestamptz NOT NULL,
    effective_until timestamptz,                     -- NULL: no end
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CHECK (provider IS NULL OR model IS NOT NULL),
    CHECK (effective_until > effective_from)
);
CREATE INDEX IF NOT EXISTS discounts_target ON billing.discounts (price_book, model, provider);

-- The price book of an account from effective_from on (NULL: the list).
-- No foreign key (keys of an account's tables name account_id, docs/citus.md):
-- assign_price_book checks the book, a named book is never deleted
-- (billing.refuse_price_book_change), and verify() checks both.
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

-- What a route costs upstream (docs/pricing.md, "Provider costs and
-- margin"): versions with the components of prices, in the catalog's
-- currency; a request's provider_cost_micros comes from the version in
-- force at its start for the provider that executed it. 0.3.0.
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

-- The least a postpaid account pays in each month of [effective_from,
-- effective_until) (first days of months; NULL: no end). Append-only: a
-- month's minimum is the amount of the latest commitment that covers it
-- (billing._minimum_for), so a new one replaces what was set for its
-- months and 0 removes it. 0.3.0.
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

-- Reversals (0.3.0, docs/topup.md "Chargebacks"): money a payment provider
-- took back, each with its 'reversal' ledger entry (< 0) and its source:
-- a succeeded top-up, a 'funds' entry or a grant. Keys of their own.
CREATE TABLE IF NOT EXISTS billing.reversals (
    account_id       bigint NOT NULL,
    reversal_id      bigint GENERATED ALWAYS AS IDENTITY,
    entry_id         bigint NOT NULL,      -- the 'reversal' ledger entry
    source           text NOT NULL CHECK (source IN ('topup', 'funds', 'grant')),
    topup_id         bigint,
    funds_entry_id   bigint,
    grant_id         bigint,
    amount_micros    bigint NOT NULL CHECK (amount_micros > 0),
    requested_micros bigint,               -- the amount asked for; NULL: all that was left
    reason           text,
    idempotency_key  text,                 -- 1 to 256 characters
    -- a postpaid one: the invoice that billed it, NULL until one does
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

-- Credit notes of invoices (docs/invoices.md, "Credit notes"): numbered
-- 1, 2, 3, ... across accounts without gaps (issue_credit_note assigns
-- them under its lock); a 'credit' note has its 'credit_note' ledger entry.
CREATE TABLE IF NOT EXISTS billing.credit_notes (
    account_id         bigint NOT NULL,
    credit_note_id     bigint GENERATED ALWAYS AS IDENTITY,
    credit_note_number bigint NOT NULL,
    invoice_id         bigint NOT NULL,
    amount_micros      bigint NOT NULL CHECK (amount_micros > 0),
    settlement         text NOT NULL CHECK (settlement IN ('credit', 'refund')),
    reason             text NOT NULL,
    idempotency_key    text CHECK (pg_catalog.length(idempotency_key) BETWEEN 1 AND 256),
    entry_id           bigint,              -- its 'credit_note' entry; NULL for a refund
    created_by         text NOT NULL DEFAULT SESSION_USER,
    created_at         timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    PRIMARY KEY (account_id, credit_note_id),
    UNIQUE (account_id, credit_note_number),
    FOREIGN KEY (account_id, invoice_id) REFERENCES billing.invoices (account_id, invoice_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS credit_notes_idempotency ON billing.credit_notes (account_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS credit_notes_invoice ON billing.credit_notes (account_id, invoice_id);

-- The server and database the event ids were last made on, as one hash
-- (billing._event_clock): an id's high bits count transaction ids, which
-- start again low on a new server, so a restored database raises
-- billing.event_node's base above its restored ids before it makes or reads
-- new ones. A sequence, not a row: setval() is not transactional, so the
-- first calls of a new database never wait for each other's stamp.
CREATE SEQUENCE IF NOT EXISTS billing.event_clock MINVALUE -9223372036854775808 START 0;

-- the types of events of reversals and of collections
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
