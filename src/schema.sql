-- billing: tables. One file for the whole data model so that every concern
-- sees the same columns; the functions of each concern live beside its C code.
-- Install only: an upgrade does not run this file, so every change here needs
-- its idempotent twin in src/upgrade/ (a new column goes last in its table,
-- where ALTER TABLE ADD COLUMN puts it).
\echo Use "CREATE EXTENSION billing" to load this file. \quit

-- Accounts. Hot tables (ledger, requests, slices) carry no foreign key to
-- this one: a key check would take a KEY SHARE lock on the account row for
-- every charge, and concurrent charges of one account would then fight over
-- MultiXacts. billing.verify() checks for orphans instead.
CREATE TABLE billing.accounts (
    account_id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- unique through billing.external_ids, which a cluster shares whole
    external_id             text NOT NULL
                            CHECK (pg_catalog.length(external_id) BETWEEN 1 AND 256),
    billing_type            text NOT NULL DEFAULT 'prepaid'
                            CHECK (billing_type IN ('prepaid', 'postpaid')),
    currency                text NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    active                  boolean NOT NULL DEFAULT true,
    credit_limit_micros     bigint NOT NULL DEFAULT 0 CHECK (credit_limit_micros >= 0),
    -- prepaid balance left at a switch to postpaid, owed back on invoices
    prepaid_credit_micros   bigint NOT NULL DEFAULT 0 CHECK (prepaid_credit_micros >= 0),
    auto_topup_enabled      boolean NOT NULL DEFAULT false,
    auto_topup_threshold_micros bigint NOT NULL DEFAULT 0 CHECK (auto_topup_threshold_micros >= 0),
    auto_topup_amount_micros bigint NOT NULL DEFAULT 0 CHECK (auto_topup_amount_micros >= 0),
    auto_topup_failures     integer NOT NULL DEFAULT 0,
    created_at              timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- auto top-up to a target and its monthly cap (0.3.0, docs/topup.md): NULL
    -- a fixed amount, no cap; the first day of the last month a top-up was
    -- refused for the cap (one auto_topup_capped event a month)
    auto_topup_target_micros bigint CHECK (auto_topup_target_micros > 0),
    auto_topup_max_per_month_micros bigint CHECK (auto_topup_max_per_month_micros > 0),
    auto_topup_capped_month date,
    -- 0.3.0 (docs/invoices.md, "Overdue accounts"): set by mark_overdue()
    -- while an invoice is overdue (the hot paths read it from their cache),
    -- the account's days of grace (NULL: billing.overdue_grace_days), and
    -- the buyer copied onto its invoices
    overdue_since           timestamptz,
    overdue_grace_days      integer CHECK (overdue_grace_days BETWEEN -1 AND 365),
    billing_details         jsonb
);

-- The external ids of all accounts. On Citus a reference table (a copy on
-- every node), so that an external id is unique across the cluster while
-- the accounts are distributed by account_id; the key keeps the name it had
-- as a constraint of billing.accounts.
CREATE TABLE billing.external_ids (
    external_id text NOT NULL,
    account_id  bigint NOT NULL,
    CONSTRAINT accounts_external_id_key PRIMARY KEY (external_id)
);

-- The available amount of an account (prepaid: balance - holds; postpaid:
-- credit limit + balance - holds) split into slices. Concurrent requests take
-- different slices, so a busy account does not serialize on one row lock.
-- Sum over slices = available, exactly, for every committed transaction.
-- fast_micros is the part of a slice the fast path may still take, the
-- slice's share of a budget that keeps the account above its low-balance
-- threshold (src/ledger/slices.c); 0 <= fast_micros <= max(available_micros, 0).
CREATE TABLE billing.account_slices (
    account_id       bigint NOT NULL,
    slice            integer NOT NULL,
    available_micros bigint NOT NULL,
    fast_micros      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, slice)
) WITH (fillfactor = 30);

-- The append-only ledger: balance = sum(amount_micros).
-- The ledger and requests carry no CHECK constraints: PostgreSQL parses them
-- again on every insert, a sixth of the cost of a charge. Only billing's C
-- code writes these rows (ledger.c, requests.c and the transition trigger
-- validate what they write) and billing.verify() checks kinds and amounts.
CREATE TABLE billing.ledger (
    account_id      bigint NOT NULL,
    entry_id        bigint GENERATED ALWAYS AS IDENTITY,
    -- one of the kinds listed in ledger/kinds.c
    kind            text NOT NULL,
    amount_micros   bigint NOT NULL,        -- never zero
    -- usage accrued while the account was postpaid is invoiced
    postpaid        boolean NOT NULL DEFAULT false,
    request_id      bigint,
    topup_id        bigint,
    invoice_id      bigint,
    idempotency_key text,                   -- 1 to 256 characters
    reference       text,
    -- clock time, not transaction start: close_period relies on it (invoice.sql)
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    -- grant and expiry entries: their grant (0.2.0; columns added by an
    -- upgrade go last, so that a fresh install has the same layout)
    grant_id        bigint,
    -- the login role of the session that posted it; a default, so that the
    -- charge path's INSERTs need not name it
    created_by      text NOT NULL DEFAULT SESSION_USER,
    PRIMARY KEY (account_id, entry_id)
);
CREATE UNIQUE INDEX ledger_idempotency ON billing.ledger (account_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX ledger_account_time ON billing.ledger (account_id, created_at);
-- postpaid usage of an account by time: its invoices and its unbilled usage
CREATE INDEX ledger_postpaid_usage ON billing.ledger (account_id, created_at)
    WHERE kind = 'usage' AND postpaid;

-- Credit grants (docs/credits.md). What is left of a grant is derived from
-- the ledger when it is asked for (billing._grant_remainders); nothing here
-- changes when a grant is used.
CREATE TABLE billing.grants (
    account_id      bigint NOT NULL,
    grant_id        bigint GENERATED ALWAYS AS IDENTITY,
    category        text NOT NULL CHECK (category IN ('promotional', 'paid')),
    amount_micros   bigint NOT NULL CHECK (amount_micros > 0),
    expires_at      timestamptz,            -- NULL: never
    entry_id        bigint NOT NULL,        -- its 'grant' ledger entry
    -- set by expire_credits once nothing is left (for good): the ledger entry
    -- after which it is empty; derivations start after the last such grant
    spent_entry_id  bigint,
    -- a namespace of its own: add_funds and request keys never collide with it
    idempotency_key text CHECK (pg_catalog.length(idempotency_key) BETWEEN 1 AND 256),
    reference       text,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    PRIMARY KEY (account_id, grant_id)
);
CREATE UNIQUE INDEX grants_idempotency ON billing.grants (account_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- what expire_credits looks for
CREATE INDEX grants_to_expire ON billing.grants (expires_at)
    WHERE spent_entry_id IS NULL AND expires_at IS NOT NULL;

-- Refunds of requests (billing.refund_request) and manual corrections
-- (billing.adjust_balance), each with its ledger entry. Their idempotency
-- keys are their own: they never collide with the keys of requests or of
-- add_funds, which live in other tables.
CREATE TABLE billing.refunds (
    account_id       bigint NOT NULL,
    refund_id        bigint GENERATED ALWAYS AS IDENTITY,
    request_id       bigint NOT NULL,
    amount_micros    bigint NOT NULL CHECK (amount_micros > 0),
    requested_micros bigint,               -- the amount asked for; NULL: all that was left
    reason           text,
    idempotency_key  text,                 -- 1 to 256 characters
    entry_id         bigint NOT NULL,      -- the 'refund' ledger entry
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    -- a postpaid refund: the invoice that credited it, NULL until one does
    -- (docs/invoices.md, "Refunds and corrections on invoices")
    invoice_id       bigint,
    PRIMARY KEY (account_id, refund_id)
);
CREATE UNIQUE INDEX refunds_idempotency ON billing.refunds (account_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- what a request has had back: refund_request and response_metadata
CREATE INDEX refunds_request ON billing.refunds (account_id, request_id);

CREATE TABLE billing.adjustments (
    account_id      bigint NOT NULL,
    entry_id        bigint NOT NULL,       -- the 'adjustment' ledger entry
    amount_micros   bigint NOT NULL CHECK (amount_micros <> 0),
    reason          text NOT NULL CHECK (pg_catalog.btrim(reason) <> ''),
    idempotency_key text,                  -- 1 to 256 characters
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    -- a postpaid adjustment: the invoice that credited it, as for refunds
    invoice_id      bigint,
    PRIMARY KEY (account_id, entry_id)
);
CREATE UNIQUE INDEX adjustments_idempotency ON billing.adjustments (account_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Reversals (0.3.0, docs/topup.md "Chargebacks"): money a payment provider
-- took back, each with its 'reversal' ledger entry (< 0) and its source:
-- a succeeded top-up, a 'funds' entry or a grant. Keys of their own.
CREATE TABLE billing.reversals (
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
CREATE UNIQUE INDEX reversals_idempotency ON billing.reversals (account_id, idempotency_key);
CREATE INDEX reversals_source ON billing.reversals (account_id, source,
                                                    COALESCE(topup_id, funds_entry_id, grant_id));

-- Model catalog: a model, the providers that can run it, versioned prices.
CREATE TABLE billing.models (
    model      text PRIMARY KEY CHECK (model ~ '^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$'),
    media      text NOT NULL CHECK (media IN ('image', 'video')),
    active     boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- what an invoice line calls the model (0.3.0; NULL: the model's name)
    display_name text CHECK (pg_catalog.length(display_name) BETWEEN 1 AND 256)
);

CREATE TABLE billing.model_providers (
    model          text NOT NULL REFERENCES billing.models,
    provider       text NOT NULL CHECK (pg_catalog.length(provider) BETWEEN 1 AND 128),
    provider_name  text NOT NULL CHECK (pg_catalog.length(provider_name) BETWEEN 1 AND 256),
    executed_model text NOT NULL CHECK (pg_catalog.length(executed_model) BETWEEN 1 AND 256),
    is_default     boolean NOT NULL DEFAULT true,
    PRIMARY KEY (model, provider)
);
CREATE UNIQUE INDEX model_providers_default ON billing.model_providers (model) WHERE is_default;

CREATE TABLE billing.prices (
    price_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model          text NOT NULL REFERENCES billing.models,
    provider       text,                      -- NULL: every provider of the model
    currency       text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    components     jsonb NOT NULL,
    effective_from timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- NULL: a list version; else a version of that price book (0.3.0, so last)
    price_book     text
);
CREATE UNIQUE INDEX prices_version
    ON billing.prices (model, (COALESCE(provider, '')), (COALESCE(price_book, '')), effective_from);

-- Contract prices (docs/pricing.md, "Price books and discounts"): a book
-- holds its own price versions (billing.prices.price_book) and discounts
-- off the list; an account is priced by the book assigned to it. Reference
-- tables on Citus, like the catalog. Discounts of one target (book, model,
-- provider, NULLs equal) never overlap: set_discount checks it under the
-- book's row lock, verify() checks it again.
CREATE TABLE billing.price_books (
    price_book  text PRIMARY KEY CHECK (pg_catalog.length(price_book) BETWEEN 1 AND 64),
    description text,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
ALTER TABLE billing.prices ADD FOREIGN KEY (price_book) REFERENCES billing.price_books;

CREATE TABLE billing.discounts (
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
CREATE INDEX discounts_target ON billing.discounts (price_book, model, provider);

-- The price book of an account from effective_from on (NULL: the list).
-- No foreign key (keys of an account's tables name account_id, docs/citus.md):
-- assign_price_book checks the book, a named book is never deleted
-- (billing.refuse_price_book_change), and verify() checks both.
CREATE TABLE billing.price_book_assignments (
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
CREATE TABLE billing.provider_costs (
    cost_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model          text NOT NULL REFERENCES billing.models,
    provider       text NOT NULL,
    currency       text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    components     jsonb NOT NULL,
    effective_from timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE UNIQUE INDEX provider_costs_version
    ON billing.provider_costs (model, provider, effective_from);

-- Requests: one row per API request, from admission to its final state.
CREATE TABLE billing.requests (
    account_id           bigint NOT NULL,
    request_id           bigint GENERATED ALWAYS AS IDENTITY,
    model                text NOT NULL,
    provider             text NOT NULL,       -- the model's default provider at admission
    -- queued, in_progress, completed, failed, cancelled (trigger.c)
    status               text NOT NULL,
    params               jsonb NOT NULL,
    outputs              jsonb,
    routing              jsonb NOT NULL DEFAULT '{}',
    cost_estimate_micros bigint NOT NULL,
    cost_micros          bigint,
    hold_micros          bigint NOT NULL DEFAULT 0,
    currency             text NOT NULL,
    postpaid             boolean NOT NULL,
    idempotency_key      text,              -- 1 to 256 characters
    failure_reason       text,
    created_at           timestamptz NOT NULL DEFAULT pg_catalog.now(),
    completed_at         timestamptz,
    -- the price version that priced the admission; it settles the request
    -- unless routing names another provider (docs/pricing.md, "Work in flight")
    price_id             bigint,
    -- the label the application gave the request (an API key, a project):
    -- its spend limits apply (docs/limits.md) and usage reports group by it
    -- (docs/reports.md); NULL: none; 0.2.0, so last
    scope                text,
    -- the price book the account was on at admission (NULL: the list), and
    -- the discount of that book that priced it (NULL: none); with price_id
    -- they settle the request (0.3.0, so last; no foreign keys on this table)
    price_book           text,
    discount_id          bigint,
    -- what the request cost upstream: routing.upstream_cost_micros, else its
    -- outputs at the provider cost version in force at its start; NULL while
    -- unfinished and where unknown (docs/pricing.md); 0.3.0, so last
    provider_cost_micros bigint,
    PRIMARY KEY (account_id, request_id)
);
-- the request-keyed functions find a request's account here
CREATE INDEX requests_id ON billing.requests (request_id);
CREATE UNIQUE INDEX requests_idempotency ON billing.requests (account_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Unfinished requests only: holds per account, and expiry by age. The list
-- is billing._request_open's (requests.sql), spelled out: the queries that
-- call it match these predicates once it is inlined.
CREATE INDEX requests_open ON billing.requests (account_id)
    WHERE status IN ('queued', 'in_progress');
CREATE INDEX requests_open_age ON billing.requests (created_at)
    WHERE status IN ('queued', 'in_progress');

-- Spend limits (docs/limits.md): one per account, scope (NULL: the whole
-- account) and period. What is left of a limit in its current period is
-- kept in slices like an available amount (src/ledger/limits.c): sum of
-- available_micros = limit - usage charged in the period - holds of the
-- unfinished requests it applies to. reached_period_start: the period whose
-- spend_limit_reached event was written.
CREATE TABLE billing.spend_limits (
    account_id     bigint NOT NULL,
    limit_id       bigint GENERATED ALWAYS AS IDENTITY,
    scope          text CHECK (pg_catalog.length(scope) BETWEEN 1 AND 256),
    period         text NOT NULL CHECK (period IN ('day', 'week', 'month')),
    limit_micros   bigint NOT NULL CHECK (limit_micros >= 0),
    reached_period_start timestamptz,
    created_at     timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    PRIMARY KEY (account_id, limit_id),
    UNIQUE NULLS NOT DISTINCT (account_id, scope, period)
);

-- The slices of a limit, with the period they count (fast_micros as in
-- account_slices; the fast path takes only while period_end is ahead).
CREATE TABLE billing.limit_slices (
    account_id       bigint NOT NULL,
    limit_id         bigint NOT NULL,
    slice            integer NOT NULL,
    available_micros bigint NOT NULL,
    fast_micros      bigint NOT NULL DEFAULT 0,
    period_start     timestamptz NOT NULL,
    period_end       timestamptz NOT NULL,
    PRIMARY KEY (account_id, limit_id, slice)
) WITH (fillfactor = 30);

-- Balance alerts (docs/limits.md): armed while the available amount is at
-- or above the threshold since the last alert.
CREATE TABLE billing.balance_alerts (
    account_id       bigint NOT NULL,
    threshold_micros bigint NOT NULL CHECK (threshold_micros >= 0),
    armed            boolean NOT NULL,
    PRIMARY KEY (account_id, threshold_micros)
);

-- Auto top-ups: at most one pending per account, enforced by the index.
CREATE TABLE billing.topups (
    account_id        bigint NOT NULL,
    topup_id          bigint GENERATED ALWAYS AS IDENTITY,
    amount_micros     bigint NOT NULL CHECK (amount_micros > 0),
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'succeeded', 'failed')),
    payment_reference text,
    failure_reason    text,
    created_at        timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    completed_at      timestamptz,
    -- the monthly cap it was created under (0.3.0), NULL: none
    cap_micros        bigint,
    PRIMARY KEY (account_id, topup_id)
);
CREATE INDEX topups_id ON billing.topups (topup_id);
CREATE UNIQUE INDEX topups_one_pending ON billing.topups (account_id) WHERE status = 'pending';
CREATE INDEX topups_account_time ON billing.topups (account_id, created_at);

-- Postpaid: credit limit audit, invoices and their lines.
CREATE TABLE billing.credit_limit_audit (
    account_id  bigint NOT NULL,
    audit_id    bigint GENERATED ALWAYS AS IDENTITY,
    old_limit_micros bigint NOT NULL,
    new_limit_micros bigint NOT NULL,
    reason      text NOT NULL,
    changed_by  name NOT NULL DEFAULT SESSION_USER,
    changed_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    PRIMARY KEY (account_id, audit_id)
);

CREATE TABLE billing.invoices (
    account_id        bigint NOT NULL,
    invoice_id        bigint GENERATED ALWAYS AS IDENTITY,
    -- gapless and unique across accounts: assigned by close_period under
    -- its lock, checked by billing.verify()
    invoice_number    bigint NOT NULL,
    period_start      date NOT NULL,
    period_end        date NOT NULL,
    -- the instants the month began and ended in billing.timezone at closing:
    -- checks of the invoice never depend on a later session's time zone
    starts_at         timestamptz NOT NULL,
    ends_at           timestamptz NOT NULL,
    currency          text NOT NULL,
    subtotal_micros   bigint NOT NULL,
    credit_micros     bigint NOT NULL DEFAULT 0,
    total_micros      bigint NOT NULL CHECK (total_micros >= 0),
    status            text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'paid', 'void')),
    issued_at         timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    due_date          date NOT NULL,
    paid_at           timestamptz,
    payment_reference text,
    -- the postpaid refunds and adjustments it credits, net, rounded half-up
    -- to the minor unit (> 0 a credit, < 0 a debit); 0.2.0, so last
    corrections_micros bigint NOT NULL DEFAULT 0,
    -- what the month's minimum commitment added (docs/invoices.md,
    -- "Minimum commitments"); 0.3.0, so last
    true_up_micros     bigint NOT NULL DEFAULT 0,
    -- 0.3.0 (docs/invoices.md, "Void and reissue"): when and why it was
    -- voided, with the key of the void_invoice call; the seller and the
    -- buyer as they were at closing (NULL before 0.3.0)
    voided_at         timestamptz,
    void_reason       text,
    void_idempotency_key text,
    seller            jsonb,
    buyer             jsonb,
    PRIMARY KEY (account_id, invoice_id),
    UNIQUE (account_id, invoice_number)
);
CREATE INDEX invoices_id ON billing.invoices (invoice_id);
-- one invoice a month that is not void: a void month is issued again
CREATE UNIQUE INDEX invoices_one_per_month ON billing.invoices (account_id, period_start)
    WHERE status <> 'void';
CREATE UNIQUE INDEX invoices_void_idempotency ON billing.invoices (account_id, void_idempotency_key)
    WHERE void_idempotency_key IS NOT NULL;

-- The least a postpaid account pays in each month of [effective_from,
-- effective_until) (first days of months; NULL: no end). Append-only: a
-- month's minimum is the amount of the latest commitment that covers it
-- (billing._minimum_for), so a new one replaces what was set for its
-- months and 0 removes it. 0.3.0.
CREATE TABLE billing.minimum_commitments (
    account_id      bigint NOT NULL,
    commitment_id   bigint GENERATED ALWAYS AS IDENTITY,
    amount_micros   bigint NOT NULL CHECK (amount_micros >= 0),
    effective_from  date NOT NULL,
    effective_until date CHECK (effective_until > effective_from),
    created_by      text NOT NULL DEFAULT SESSION_USER,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    PRIMARY KEY (account_id, commitment_id)
);

CREATE TABLE billing.invoice_lines (
    account_id     bigint NOT NULL,
    invoice_id     bigint NOT NULL,
    model          text NOT NULL,
    quantity       bigint NOT NULL,
    usage_micros   bigint NOT NULL,     -- exact usage before rounding
    amount_micros  bigint NOT NULL,     -- rounded half-up to the minor unit
    -- the model's display_name at closing (0.3.0; NULL before)
    description    text,
    PRIMARY KEY (account_id, invoice_id, model),
    FOREIGN KEY (account_id, invoice_id) REFERENCES billing.invoices (account_id, invoice_id)
);

-- Credit notes of invoices (docs/invoices.md, "Credit notes"): numbered
-- 1, 2, 3, ... across accounts without gaps (issue_credit_note assigns
-- them under its lock); a 'credit' note has its 'credit_note' ledger entry.
CREATE TABLE billing.credit_notes (
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
CREATE UNIQUE INDEX credit_notes_idempotency ON billing.credit_notes (account_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX credit_notes_invoice ON billing.credit_notes (account_id, invoice_id);

-- The durable event log (docs/events.md). event_id is drawn from the writing
-- transaction's xid8 (high bits) and a count within it (low 22 bits), so
-- that billing.events_after can tell which ids no running transaction can
-- still commit. Written only by billing._event.
CREATE TABLE billing.events (
    account_id  bigint NOT NULL,
    event_id    bigint NOT NULL,
    type        text NOT NULL CHECK (type IN (
                    'auto_topup_requested', 'auto_topup_disabled', 'topup_succeeded',
                    'topup_failed', 'balance_alert', 'spend_limit_reached',
                    'credits_granted', 'credits_expired', 'refund_issued',
                    'invoice_issued', 'invoice_paid',
                    'auto_topup_capped', 'topup_reversed', 'funds_reversed', 'grant_voided',
                    -- 0.3.0: collections
                    'invoice_voided', 'credit_note_issued', 'invoice_overdue',
                    'account_reinstated')),
    payload     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    PRIMARY KEY (account_id, event_id)
);
-- events_after reads in id order across accounts
CREATE INDEX events_order ON billing.events (event_id);
-- On Citus, this node's part of the event ids (billing._event): its base
-- (last_value >> 6, added to the xid8) and its node group (the low 6 bits),
-- set by billing.citus_setup() (is_called then true). Each node has its own.
CREATE SEQUENCE billing.event_node MINVALUE 0 START 0;

-- The server and database the event ids were last made on, as one hash
-- (billing._event_clock): an id's high bits count transaction ids, which
-- start again low on a new server, so a restored database raises
-- billing.event_node's base above its restored ids before it makes or reads
-- new ones. A sequence, not a row: setval() is not transactional, so the
-- first calls of a new database never wait for each other's stamp.
CREATE SEQUENCE billing.event_clock MINVALUE -9223372036854775808 START 0;

-- Usage reports (docs/reports.md). billing.rollup_usage() folds the usage
-- and refund entries of the ledger into quarter-hour sums; a report reads
-- these sums and the ledger entries they have not taken in yet. Only
-- rollup_usage writes here: the charge path never touches these tables.
CREATE TABLE billing.usage_rollup (
    account_id      bigint NOT NULL,
    slot_start      timestamptz NOT NULL,   -- a quarter hour (billing._usage_slot)
    model           text,
    provider        text,                   -- the provider that executed
    scope           text,
    requests        bigint NOT NULL,        -- usage entries
    -- sums of micros, numeric: a slot's sum may exceed a bigint where
    -- entries come close to one; only a report that includes it then
    -- fails (22003), not the rollup
    cost_sum        numeric NOT NULL,       -- minus the sum of the usage entries
    refunded_sum    numeric NOT NULL,       -- the sum of the refund entries
    -- the provider costs of the usage entries' requests where known, and
    -- the count of those where not (0.3.0, so last)
    provider_cost_sum numeric NOT NULL DEFAULT 0,
    uncosted        bigint NOT NULL DEFAULT 0,
    UNIQUE NULLS NOT DISTINCT (account_id, slot_start, model, provider, scope)
);
-- the report of every account (admins)
CREATE INDEX usage_rollup_time ON billing.usage_rollup (slot_start);
-- An account's balance right after one of its entries (the sum of its
-- entries up to entry_id), one per 1024 entries or so: a statement starts
-- its running balance from the latest one before its window.
CREATE TABLE billing.ledger_checkpoints (
    account_id     bigint NOT NULL,
    entry_id       bigint NOT NULL,
    balance_micros bigint NOT NULL,
    PRIMARY KEY (account_id, entry_id)
);
-- How far the rollup has come: every ledger entry with entry_id <=
-- rolled_up_to is in usage_rollup (and in the checkpoints); candidate is the
-- next horizon, reached once every transaction that was running when it was
-- taken (candidate_vxids) has ended.
CREATE TABLE billing.rollup_state (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    rolled_up_to    bigint NOT NULL DEFAULT 0,
    candidate       bigint,
    candidate_vxids text[],
    candidate_at    timestamptz,
    rolled_up_at    timestamptz
);
-- (no row yet: billing.rollup_usage() writes it, so that the row of a
-- restored dump never meets one of the install)
-- rollup_usage reads the ledger by entry_id ranges. A BRIN index costs the
-- charge path next to nothing: entries are appended in entry_id order.
CREATE INDEX ledger_entry_brin ON billing.ledger USING brin (entry_id);
