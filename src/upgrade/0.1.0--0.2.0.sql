-- billing: the schema changes from 0.1.0 to 0.2.0, the first part of the
-- upgrade script billing--0.1.0--0.2.0.sql. The Makefile appends every
-- function, view, trigger and grant part of the install script, re-applied
-- with CREATE OR REPLACE, so changed function bodies need nothing here.
--
-- What goes here: what src/schema.sql creates (tables, columns, indexes,
-- constraints), and the functions and views that are dropped, or change
-- their arguments, result type or view columns (CREATE OR REPLACE cannot).
-- It runs before the functions are defined again, so their bodies find the
-- new columns.
--
-- Each statement must be safe to run again and where the object already
-- exists (on Citus a node may have it): IF NOT EXISTS / IF EXISTS, or a
-- catalog check in a DO block (ADD CONSTRAINT has no IF NOT EXISTS). The
-- upgraded schema must equal a fresh install's, so a new column goes last in
-- its CREATE TABLE in src/schema.sql too; test/upgrade.sh compares the two and
-- runs the script twice.
\echo Use "ALTER EXTENSION billing UPDATE" to load this file. \quit

-- Tables and columns.

-- Credit grants (docs/credits.md): the grants table and the ledger's link to it.
ALTER TABLE billing.ledger ADD COLUMN IF NOT EXISTS grant_id bigint;

CREATE TABLE IF NOT EXISTS billing.grants (
    account_id      bigint NOT NULL,
    grant_id        bigint GENERATED ALWAYS AS IDENTITY,
    category        text NOT NULL CHECK (category IN ('promotional', 'paid')),
    amount_micros   bigint NOT NULL CHECK (amount_micros > 0),
    expires_at      timestamptz,
    entry_id        bigint NOT NULL,
    spent_entry_id  bigint,
    idempotency_key text CHECK (pg_catalog.length(idempotency_key) BETWEEN 1 AND 256),
    reference       text,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    PRIMARY KEY (account_id, grant_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS grants_idempotency ON billing.grants (account_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS grants_to_expire ON billing.grants (expires_at)
    WHERE spent_entry_id IS NULL AND expires_at IS NOT NULL;
REVOKE ALL ON billing.grants FROM PUBLIC;

-- Refunds and corrections (docs/refunds.md).
-- Entries posted before the upgrade do not know who made them; later ones
-- record the login role of their session.
ALTER TABLE billing.ledger ADD COLUMN IF NOT EXISTS created_by text NOT NULL DEFAULT '(before 0.2.0)';
ALTER TABLE billing.ledger ALTER COLUMN created_by SET DEFAULT SESSION_USER;

CREATE TABLE IF NOT EXISTS billing.refunds (
    account_id       bigint NOT NULL,
    refund_id        bigint GENERATED ALWAYS AS IDENTITY,
    request_id       bigint NOT NULL,
    amount_micros    bigint NOT NULL CHECK (amount_micros > 0),
    requested_micros bigint,
    reason           text,
    idempotency_key  text,
    entry_id         bigint NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    invoice_id       bigint,
    PRIMARY KEY (account_id, refund_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS refunds_idempotency ON billing.refunds (account_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS refunds_request ON billing.refunds (account_id, request_id);

CREATE TABLE IF NOT EXISTS billing.adjustments (
    account_id      bigint NOT NULL,
    entry_id        bigint NOT NULL,
    amount_micros   bigint NOT NULL CHECK (amount_micros <> 0),
    reason          text NOT NULL CHECK (pg_catalog.btrim(reason) <> ''),
    idempotency_key text,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    invoice_id      bigint,
    PRIMARY KEY (account_id, entry_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS adjustments_idempotency ON billing.adjustments (account_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Postpaid refunds and adjustments are credited on invoices
-- (docs/invoices.md, "Refunds and corrections on invoices").
ALTER TABLE billing.invoices ADD COLUMN IF NOT EXISTS corrections_micros bigint NOT NULL DEFAULT 0;

-- Nothing for PUBLIC (security.sql revokes on every table at install).
REVOKE ALL ON billing.refunds, billing.adjustments FROM PUBLIC;

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
CREATE SEQUENCE IF NOT EXISTS billing.event_node MINVALUE 0 START 0;
REVOKE ALL ON billing.events FROM PUBLIC;

-- The fast path's budget per slice (src/ledger/slices.c). Upgraded
-- accounts start with no budget: their next request validates exactly and
-- lays the slices out again.
ALTER TABLE billing.account_slices ADD COLUMN IF NOT EXISTS fast_micros bigint NOT NULL DEFAULT 0;

-- Work in flight settles at the price of its start (docs/pricing.md, "Work
-- in flight").
-- The price version that priced an admission; schema.sql adds it last, as here.
ALTER TABLE billing.requests ADD COLUMN IF NOT EXISTS price_id bigint;

-- Unfinished requests of 0.1.0 get their price version in
-- 0.1.0--0.2.0.after.sql, which runs once the price choice is defined.

-- Spend limits and balance alerts (docs/limits.md).
ALTER TABLE billing.requests ADD COLUMN IF NOT EXISTS scope text;

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
CREATE TABLE IF NOT EXISTS billing.balance_alerts (
    account_id       bigint NOT NULL,
    threshold_micros bigint NOT NULL CHECK (threshold_micros >= 0),
    armed            boolean NOT NULL,
    PRIMARY KEY (account_id, threshold_micros)
);
REVOKE ALL ON billing.spend_limits, billing.limit_slices, billing.balance_alerts FROM PUBLIC;

-- Usage reports (docs/reports.md): the rollup, the balance checkpoints and the rollup's state (as at the end of schema.sql).
-- The first billing.rollup_usage() takes in the whole ledger.

CREATE TABLE IF NOT EXISTS billing.usage_rollup (
    account_id      bigint NOT NULL,
    slot_start      timestamptz NOT NULL,
    model           text,
    provider        text,
    scope           text,
    requests        bigint NOT NULL,
    cost_sum        numeric NOT NULL,
    refunded_sum    numeric NOT NULL,
    UNIQUE NULLS NOT DISTINCT (account_id, slot_start, model, provider, scope)
);
CREATE TABLE IF NOT EXISTS billing.ledger_checkpoints (
    account_id     bigint NOT NULL,
    entry_id       bigint NOT NULL,
    balance_micros bigint NOT NULL,
    PRIMARY KEY (account_id, entry_id)
);
CREATE TABLE IF NOT EXISTS billing.rollup_state (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    rolled_up_to    bigint NOT NULL DEFAULT 0,
    candidate       bigint,
    candidate_vxids text[],
    candidate_at    timestamptz,
    rolled_up_at    timestamptz
);
INSERT INTO billing.rollup_state DEFAULT VALUES ON CONFLICT DO NOTHING;
REVOKE ALL ON billing.usage_rollup, billing.ledger_checkpoints, billing.rollup_state FROM PUBLIC;

-- Indexes and constraints.

CREATE INDEX IF NOT EXISTS ledger_entry_brin ON billing.ledger USING brin (entry_id);
CREATE INDEX IF NOT EXISTS usage_rollup_time ON billing.usage_rollup (slot_start);

-- ledger_postpaid_usage gains account_id as its leading column: unbilled
-- usage and invoices read one account's postpaid usage by time.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_index x
                 JOIN pg_catalog.pg_class c ON c.oid = x.indexrelid
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = 'billing' AND c.relname = 'ledger_postpaid_usage'
                  AND x.indnatts = 1) THEN
        DROP INDEX billing.ledger_postpaid_usage;
    END IF;
END $$;
CREATE INDEX IF NOT EXISTS ledger_postpaid_usage ON billing.ledger (account_id, created_at)
    WHERE kind = 'usage' AND postpaid;

-- Keys led by account_id (docs/citus.md): every unique key of a table of
-- one account's rows includes account_id, so that the table can be
-- distributed by it; lookups by id alone get an index of their own. The
-- external ids move to a table of their own, unique across a cluster.
ALTER TABLE billing.accounts DROP CONSTRAINT IF EXISTS accounts_external_id_key;
CREATE TABLE IF NOT EXISTS billing.external_ids (
    external_id text NOT NULL,
    account_id  bigint NOT NULL,
    CONSTRAINT accounts_external_id_key PRIMARY KEY (external_id)
);
INSERT INTO billing.external_ids (external_id, account_id)
SELECT external_id, account_id FROM billing.accounts ON CONFLICT DO NOTHING;
REVOKE ALL ON billing.external_ids FROM PUBLIC;
ALTER TABLE billing.invoice_lines DROP CONSTRAINT IF EXISTS invoice_lines_invoice_id_fkey;
DO $$
DECLARE
    k record;
BEGIN
    -- each key whose columns differ from a fresh install's is made again
    FOR k IN SELECT * FROM (VALUES
            ('requests', 'requests_pkey', 'PRIMARY KEY (account_id, request_id)'),
            ('topups', 'topups_pkey', 'PRIMARY KEY (account_id, topup_id)'),
            ('credit_limit_audit', 'credit_limit_audit_pkey', 'PRIMARY KEY (account_id, audit_id)'),
            ('invoices', 'invoices_pkey', 'PRIMARY KEY (account_id, invoice_id)'),
            ('invoices', 'invoices_account_id_invoice_number_key', 'UNIQUE (account_id, invoice_number)'),
            ('invoice_lines', 'invoice_lines_pkey', 'PRIMARY KEY (account_id, invoice_id, model)'))
            AS t(tbl, name, def)
    LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_constraint c
                        WHERE c.conrelid = pg_catalog.format('billing.%I', k.tbl)::regclass
                          AND c.conname = k.name AND pg_catalog.pg_get_constraintdef(c.oid) = k.def) THEN
            EXECUTE pg_catalog.format('ALTER TABLE billing.%I DROP CONSTRAINT IF EXISTS %I', k.tbl, k.name);
            EXECUTE pg_catalog.format('ALTER TABLE billing.%I ADD CONSTRAINT %I %s', k.tbl, k.name, k.def);
        END IF;
    END LOOP;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_constraint c
                    WHERE c.conrelid = 'billing.invoice_lines'::regclass
                      AND c.conname = 'invoice_lines_account_id_invoice_id_fkey') THEN
        ALTER TABLE billing.invoice_lines ADD CONSTRAINT invoice_lines_account_id_invoice_id_fkey
            FOREIGN KEY (account_id, invoice_id) REFERENCES billing.invoices (account_id, invoice_id);
    END IF;
END $$;
ALTER TABLE billing.invoices DROP CONSTRAINT IF EXISTS invoices_invoice_number_key;
CREATE INDEX IF NOT EXISTS requests_id ON billing.requests (request_id);
CREATE INDEX IF NOT EXISTS topups_id ON billing.topups (topup_id);
CREATE INDEX IF NOT EXISTS invoices_id ON billing.invoices (invoice_id);

-- Dropped and re-signed functions.

-- billing._unbilled_usage is replaced by billing._postpaid_position
-- (src/invoice/invoice.sql).
DROP FUNCTION IF EXISTS billing._unbilled_usage(bigint);
-- billing._account_for_update is billing._account(account_id, true).
DROP FUNCTION IF EXISTS billing._account_for_update(bigint);

-- billing._verify_grants names its argument only_account, apart from its
-- result column account_id (PL/pgSQL allows no such twin).
DROP FUNCTION IF EXISTS billing._verify_grants(bigint);
-- begin_request and charge take a last argument, scope (docs/limits.md).
DROP FUNCTION IF EXISTS billing.begin_request(bigint, text, jsonb, text);
DROP FUNCTION IF EXISTS billing.charge(bigint, text, jsonb, jsonb, jsonb, text);
