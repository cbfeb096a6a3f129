-- billing: the tables of 0.1.0, with every column and index that later
-- releases added to them (a new column last in its table, where ALTER TABLE
-- ADD COLUMN puts it). The tables a later release added are in
-- src/schema/VERSION.sql, which the install and the update from an earlier
-- release both run (the Makefile joins the parts). Install only: a change to
-- a table here needs its idempotent twin in src/upgrade/ too.
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
-- rollup_usage reads the ledger by entry_id ranges. A BRIN index costs the
-- charge path next to nothing: entries are appended in entry_id order.
CREATE INDEX ledger_entry_brin ON billing.ledger USING brin (entry_id);

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
