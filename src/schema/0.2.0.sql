-- billing: the tables that 0.2.0 added, as they are now, and their indexes.
-- Part of the install and of the update from 0.1.0 (after
-- src/upgrade/0.1.0--0.2.0.sql), so every statement may find its object
-- there already (IF NOT EXISTS); a column added later goes last in its table
-- here and into the update from the release before it.

-- The external ids of all accounts. On Citus a reference table (a copy on
-- every node), so that an external id is unique across the cluster while
-- the accounts are distributed by account_id; the key keeps the name it had
-- as a constraint of billing.accounts.
CREATE TABLE IF NOT EXISTS billing.external_ids (
    external_id text NOT NULL,
    account_id  bigint NOT NULL,
    CONSTRAINT accounts_external_id_key PRIMARY KEY (external_id)
);

-- Credit grants (docs/credits.md). What is left of a grant is derived from
-- the ledger when it is asked for (billing._grant_remainders); nothing here
-- changes when a grant is used.
CREATE TABLE IF NOT EXISTS billing.grants (
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
CREATE UNIQUE INDEX IF NOT EXISTS grants_idempotency ON billing.grants (account_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- what expire_credits looks for
CREATE INDEX IF NOT EXISTS grants_to_expire ON billing.grants (expires_at)
    WHERE spent_entry_id IS NULL AND expires_at IS NOT NULL;

-- Refunds of requests (billing.refund_request) and manual corrections
-- (billing.adjust_balance), each with its ledger entry. Their idempotency
-- keys are their own: they never collide with the keys of requests or of
-- add_funds, which live in other tables.
CREATE TABLE IF NOT EXISTS billing.refunds (
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
CREATE UNIQUE INDEX IF NOT EXISTS refunds_idempotency ON billing.refunds (account_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- what a request has had back: refund_request and response_metadata
CREATE INDEX IF NOT EXISTS refunds_request ON billing.refunds (account_id, request_id);

CREATE TABLE IF NOT EXISTS billing.adjustments (
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
CREATE UNIQUE INDEX IF NOT EXISTS adjustments_idempotency ON billing.adjustments (account_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Spend limits (docs/limits.md): one per account, scope (NULL: the whole
-- account) and period. What is left of a limit in its current period is
-- kept in slices like an available amount (src/ledger/limits.c): sum of
-- available_micros = limit - usage charged in the period - holds of the
-- unfinished requests it applies to. reached_period_start: the period whose
-- spend_limit_reached event was written.
CREATE TABLE IF NOT EXISTS billing.spend_limits (
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
CREATE TABLE IF NOT EXISTS billing.limit_slices (
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
CREATE TABLE IF NOT EXISTS billing.balance_alerts (
    account_id       bigint NOT NULL,
    threshold_micros bigint NOT NULL CHECK (threshold_micros >= 0),
    armed            boolean NOT NULL,
    PRIMARY KEY (account_id, threshold_micros)
);

-- The durable event log (docs/events.md). event_id is drawn from the writing
-- transaction's xid8 (high bits) and a count within it (low 22 bits), so
-- that billing.events_after can tell which ids no running transaction can
-- still commit. Written only by billing._event.
CREATE TABLE IF NOT EXISTS billing.events (
    account_id  bigint NOT NULL,
    event_id    bigint NOT NULL,
    -- the types of 0.2.0; a later release adds its own (src/schema/0.3.0.sql)
    type        text NOT NULL CHECK (type IN (
                    'auto_topup_requested', 'auto_topup_disabled', 'topup_succeeded',
                    'topup_failed', 'balance_alert', 'spend_limit_reached',
                    'credits_granted', 'credits_expired', 'refund_issued',
                    'invoice_issued', 'invoice_paid')),
    payload     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    PRIMARY KEY (account_id, event_id)
);
-- events_after reads in id order across accounts
CREATE INDEX IF NOT EXISTS events_order ON billing.events (event_id);
-- On Citus, this node's part of the event ids (billing._event): its base
-- (last_value >> 6, added to the xid8) and its node group (the low 6 bits),
-- set by billing.citus_setup() (is_called then true). Each node has its own.
CREATE SEQUENCE IF NOT EXISTS billing.event_node MINVALUE 0 START 0;

-- Usage reports (docs/reports.md). billing.rollup_usage() folds the usage
-- and refund entries of the ledger into quarter-hour sums; a report reads
-- these sums and the ledger entries they have not taken in yet. Only
-- rollup_usage writes here: the charge path never touches these tables.
CREATE TABLE IF NOT EXISTS billing.usage_rollup (
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
CREATE INDEX IF NOT EXISTS usage_rollup_time ON billing.usage_rollup (slot_start);
-- An account's balance right after one of its entries (the sum of its
-- entries up to entry_id), one per 1024 entries or so: a statement starts
-- its running balance from the latest one before its window.
CREATE TABLE IF NOT EXISTS billing.ledger_checkpoints (
    account_id     bigint NOT NULL,
    entry_id       bigint NOT NULL,
    balance_micros bigint NOT NULL,
    PRIMARY KEY (account_id, entry_id)
);
-- How far the rollup has come: every ledger entry with entry_id <=
-- rolled_up_to is in usage_rollup (and in the checkpoints); candidate is the
-- next horizon, reached once every transaction that was running when it was
-- taken (candidate_vxids) has ended.
CREATE TABLE IF NOT EXISTS billing.rollup_state (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    rolled_up_to    bigint NOT NULL DEFAULT 0,
    candidate       bigint,
    candidate_vxids text[],
    candidate_at    timestamptz,
    rolled_up_at    timestamptz
);
-- (no row at install: billing.rollup_usage() writes it, so that the row of a
-- restored dump never meets one of the install)
