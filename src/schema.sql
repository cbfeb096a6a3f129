-- billing: tables. One file for the whole data model so that every concern
-- sees the same columns; the functions of each concern live beside its C code.
\echo Use "CREATE EXTENSION billing" to load this file. \quit

-- Accounts. Hot tables (ledger, requests, slices) carry no foreign key to
-- this one: a key check would take a KEY SHARE lock on the account row for
-- every charge, and concurrent charges of one account would then fight over
-- MultiXacts. billing.verify() checks for orphans instead.
CREATE TABLE billing.accounts (
    account_id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    external_id             text NOT NULL UNIQUE
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
    created_at              timestamptz NOT NULL DEFAULT pg_catalog.now()
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
    -- funds, auto_topup, usage, refund, adjustment, invoice_payment
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
    PRIMARY KEY (account_id, entry_id)
);
CREATE UNIQUE INDEX ledger_idempotency ON billing.ledger (account_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX ledger_account_time ON billing.ledger (account_id, created_at);
-- postpaid usage by month, for invoices
CREATE INDEX ledger_postpaid_usage ON billing.ledger (created_at) WHERE kind = 'usage' AND postpaid;

-- Model catalog: a model, the providers that can run it, versioned prices.
CREATE TABLE billing.models (
    model      text PRIMARY KEY CHECK (model ~ '^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$'),
    media      text NOT NULL CHECK (media IN ('image', 'video')),
    active     boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
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
    created_at     timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE UNIQUE INDEX prices_version
    ON billing.prices (model, (COALESCE(provider, '')), effective_from);

-- Requests: one row per API request, from admission to its final state.
CREATE TABLE billing.requests (
    account_id           bigint NOT NULL,
    request_id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
    completed_at         timestamptz
);
CREATE UNIQUE INDEX requests_idempotency ON billing.requests (account_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Unfinished requests only: holds per account, and expiry by age.
CREATE INDEX requests_open ON billing.requests (account_id)
    WHERE status IN ('queued', 'in_progress');
CREATE INDEX requests_open_age ON billing.requests (created_at)
    WHERE status IN ('queued', 'in_progress');

-- Auto top-ups: at most one pending per account, enforced by the index.
CREATE TABLE billing.topups (
    account_id        bigint NOT NULL,
    topup_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    amount_micros     bigint NOT NULL CHECK (amount_micros > 0),
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'succeeded', 'failed')),
    payment_reference text,
    failure_reason    text,
    created_at        timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    completed_at      timestamptz
);
CREATE UNIQUE INDEX topups_one_pending ON billing.topups (account_id) WHERE status = 'pending';
CREATE INDEX topups_account_time ON billing.topups (account_id, created_at);

-- Postpaid: credit limit audit, invoices and their lines.
CREATE TABLE billing.credit_limit_audit (
    account_id  bigint NOT NULL,
    audit_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    old_limit_micros bigint NOT NULL,
    new_limit_micros bigint NOT NULL,
    reason      text NOT NULL,
    changed_by  name NOT NULL DEFAULT SESSION_USER,
    changed_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);

CREATE TABLE billing.invoices (
    account_id        bigint NOT NULL,
    invoice_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    invoice_number    bigint NOT NULL UNIQUE,   -- gapless, assigned under a lock
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
    UNIQUE (account_id, period_start)
);

CREATE TABLE billing.invoice_lines (
    account_id     bigint NOT NULL,
    invoice_id     bigint NOT NULL REFERENCES billing.invoices,
    model          text NOT NULL,
    quantity       bigint NOT NULL,
    usage_micros   bigint NOT NULL,     -- exact usage before rounding
    amount_micros  bigint NOT NULL,     -- rounded half-up to the minor unit
    PRIMARY KEY (invoice_id, model)
);

-- Writes to the accounts and the catalog drop the backend-local caches of
-- all backends at commit (src/cache.c).
CREATE FUNCTION billing._cache_changed() RETURNS trigger
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_cache_changed';
CREATE TRIGGER accounts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON billing.accounts
    FOR EACH STATEMENT EXECUTE FUNCTION billing._cache_changed();

-- The ledger is append-only, whoever asks.
CREATE FUNCTION billing.refuse_ledger_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'the billing ledger is append-only'
        USING ERRCODE = 'PB409', HINT = 'Post a compensating entry instead.';
END $$;
CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON billing.ledger
    FOR EACH ROW EXECUTE FUNCTION billing.refuse_ledger_change();
CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON billing.ledger
    FOR EACH STATEMENT EXECUTE FUNCTION billing.refuse_ledger_change();
