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
-- The triggers of the tables of schema.sql. Apart from schema.sql, so that
-- the upgrade script can re-apply them (see the Makefile).

-- Writes to the accounts and the catalog drop the backend-local caches of
-- all backends at commit (src/cache.c).
CREATE OR REPLACE FUNCTION billing._cache_changed() RETURNS trigger
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_cache_changed';
CREATE OR REPLACE TRIGGER accounts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON billing.accounts
    FOR EACH STATEMENT EXECUTE FUNCTION billing._cache_changed();

-- The ledger is append-only, whoever asks.
CREATE OR REPLACE FUNCTION billing.refuse_ledger_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'the billing ledger is append-only'
        USING ERRCODE = 'PB409', HINT = 'Post a compensating entry instead.';
END $$;
CREATE OR REPLACE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON billing.ledger
    FOR EACH ROW EXECUTE FUNCTION billing.refuse_ledger_change();
CREATE OR REPLACE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON billing.ledger
    FOR EACH STATEMENT EXECUTE FUNCTION billing.refuse_ledger_change();
-- events: the durable event log. The design and its proof are in docs/events.md.

-- The one definition of an event's insert: appends it in the calling
-- transaction and sends the wake-up NOTIFY billing_events (at commit). The
-- id's high bits are the transaction's xid8 (plus the node's base once
-- billing.event_node is set: on Citus, or after leaving it), its low 22
-- bits count the transaction's events (with the base set: the node's
-- group in bits 16 to 21, the count below them). The count is a
-- transaction-local setting: a rolled back savepoint takes back its count
-- with its rows.
CREATE OR REPLACE FUNCTION billing._event(account_id bigint, type text, payload jsonb)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    xid bigint := pg_catalog.pg_current_xact_id()::text::bigint;
    n bigint := COALESCE(NULLIF(pg_catalog.current_setting('billing_event.count', true), ''), '0')::bigint;
    node bigint;
    based boolean;      -- billing.event_node is set: on Citus, or after leaving it
    high bigint;
    cap bigint;
    id bigint;
BEGIN
    -- a raise of the node's base (billing._event_horizon) waits for every
    -- transaction that read the old one
    PERFORM pg_catalog.pg_advisory_xact_lock_shared(7091318301086082414);
    SELECT s.last_value, s.is_called INTO node, based FROM billing.event_node s;
    IF NOT based AND pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL
       AND billing._distributed() THEN
        RAISE EXCEPTION 'billing.citus_setup() has not run since this node joined the cluster'
            USING ERRCODE = '55000',
                  HINT = 'Run SELECT billing.citus_setup() on the coordinator after adding a node.';
    END IF;
    high := xid + CASE WHEN based THEN node >> 6 ELSE 0 END;
    IF high >= 2199023255552 THEN    -- 2^41: the id would not fit in a bigint
        RAISE EXCEPTION 'transaction id % is too large for an event id', high
            USING ERRCODE = '54000';
    END IF;
    cap := CASE WHEN based THEN 65536 ELSE 4194304 END;
    IF n >= cap THEN
        RAISE EXCEPTION 'too many events in one transaction' USING ERRCODE = '54000',
            DETAIL = pg_catalog.format('A transaction can append at most %s events%s.', cap,
                                       CASE WHEN based THEN ' on one node' ELSE '' END);
    END IF;
    id := (high << 22) + CASE WHEN based THEN (node & 63) << 16 ELSE 0 END + n;
    PERFORM pg_catalog.set_config('billing_event.count', (n + 1)::text, true);
    INSERT INTO billing.events (account_id, event_id, type, payload)
    VALUES (_event.account_id, id, _event.type, _event.payload);
    PERFORM pg_catalog.pg_notify('billing_events',
        pg_catalog.json_build_object('event_id', id, 'type', _event.type,
                                     'account_id', _event.account_id)::text);
    RETURN id;
END $$;

-- On Citus, this node's event horizon: every event that a transaction still
-- running here, or not begun, can write has an id of at least the result;
-- NULL on a node that holds no shard of billing.events. With raise_to, a
-- node whose horizon is below it first raises its base (node >> 6 of
-- billing.event_node) so that its horizon reaches raise_to: under the
-- exclusive lock that every _event takes shared, when no transaction that
-- read the old base is left (else not this time), and far enough that no id can repeat one
-- already written (the new ids start above xmax plus the old base).
CREATE OR REPLACE FUNCTION billing._event_horizon(raise_to bigint)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    node bigint;
    snap pg_snapshot;
    horizon bigint;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_shard s
                     JOIN pg_catalog.pg_dist_placement p USING (shardid)
                    WHERE s.logicalrelid = 'billing.events'::regclass
                      AND p.groupid = (SELECT groupid FROM pg_catalog.pg_dist_local_group)) THEN
        RETURN NULL;
    END IF;
    snap := pg_catalog.pg_current_snapshot();
    SELECT last_value INTO node FROM billing.event_node;
    horizon := ((node >> 6) + pg_catalog.pg_snapshot_xmin(snap)::text::bigint) << 22;
    IF raise_to IS NULL OR horizon >= raise_to THEN
        RETURN horizon;
    END IF;
    -- only tried: waiting would hold back this node's writers of events
    -- behind its longest one; a later call raises it
    IF NOT pg_catalog.pg_try_advisory_xact_lock(7091318301086082414) THEN
        RETURN horizon;
    END IF;
    snap := pg_catalog.pg_current_snapshot();
    SELECT last_value INTO node FROM billing.event_node;
    PERFORM pg_catalog.setval('billing.event_node',
        (GREATEST((raise_to >> 22) + 1 - pg_catalog.pg_snapshot_xmin(snap)::text::bigint,
                  (node >> 6) + 1 + pg_catalog.pg_snapshot_xmax(snap)::text::bigint
                              - pg_catalog.pg_snapshot_xmin(snap)::text::bigint) << 6) | (node & 63),
        true);
    SELECT last_value INTO node FROM billing.event_node;
    RETURN ((node >> 6) + pg_catalog.pg_snapshot_xmin(snap)::text::bigint) << 22;
END $$;

-- Committed events with an id above after_event_id (NULL: from the first),
-- in id order, up to max_events. Only ids below the smallest id that a
-- transaction still running (or not begun) can hold are returned: those of
-- transactions older than the snapshot's xmin, all finished.
CREATE OR REPLACE FUNCTION billing.events_after(after_event_id bigint, max_events integer DEFAULT 100)
RETURNS TABLE(event_id bigint, account_id bigint, type text, payload jsonb, created_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    horizon bigint;
    highest bigint;
    reached boolean;
BEGIN
    IF max_events IS NULL OR max_events NOT BETWEEN 1 AND 10000 THEN
        RAISE EXCEPTION 'max_events must be between 1 and 10000'
            USING ERRCODE = '22023', DETAIL = pg_catalog.format('Got %s.', COALESCE(max_events::text, 'NULL'));
    END IF;
    IF billing._distributed() THEN
        -- Citus: below the lowest horizon of the nodes that hold events,
        -- each taken before the read (which sees all that was final then);
        -- a node far behind is raised to the others first
        FOR round IN 1 .. 2 LOOP
            SELECT pg_catalog.min(r.result::bigint) FILTER (WHERE r.success),
                   pg_catalog.max(r.result::bigint) FILTER (WHERE r.success),
                   COALESCE(pg_catalog.bool_and(r.success), true)
              INTO horizon, highest, reached
              FROM pg_catalog.run_command_on_all_nodes(pg_catalog.format(
                       'SELECT billing._event_horizon(%s)', CASE WHEN round = 2 THEN highest::text ELSE 'NULL' END)) r
             WHERE NOT r.success OR r.result <> '';
            IF NOT reached THEN
                RAISE EXCEPTION 'cannot read the event horizon of every node'
                    USING ERRCODE = '08006', HINT = 'Every node that holds events must be reachable.';
            END IF;
            EXIT WHEN horizon IS NULL OR horizon >= highest;
        END LOOP;
        RETURN QUERY
            SELECT e.event_id, e.account_id, e.type, e.payload, e.created_at
              FROM billing.events e
             WHERE e.event_id > COALESCE(after_event_id, -1) AND e.event_id < horizon
             ORDER BY e.event_id
             LIMIT max_events;
        RETURN;
    END IF;
    -- one statement: its snapshot is the one whose xmin bounds the ids
    RETURN QUERY
        SELECT e.event_id, e.account_id, e.type, e.payload, e.created_at
          FROM billing.events e
         WHERE e.event_id > COALESCE(after_event_id, -1)
           AND e.event_id < ((pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())::text::bigint
                              + (SELECT CASE WHEN s.is_called THEN s.last_value >> 6 ELSE 0 END
                                   FROM billing.event_node s)) << 22)
         ORDER BY e.event_id
         LIMIT max_events;
END $$;
-- Accounts, funds, balances and the ledger's invariants.

CREATE OR REPLACE FUNCTION billing.create_account(external_id text, billing_type text DEFAULT 'prepaid',
                                       currency text DEFAULT 'USD')
RETURNS bigint LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_create_account';

CREATE OR REPLACE FUNCTION billing.add_funds(account_id bigint, amount_micros bigint,
                                  idempotency_key text DEFAULT NULL, reference text DEFAULT NULL)
RETURNS bigint LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_add_funds';

CREATE OR REPLACE FUNCTION billing.balance(account_id bigint)
RETURNS jsonb LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_balance';

-- Internal: balance()'s available amount and holds. balance() reads them
-- and billing._postpaid_position in one statement of functions only, so in
-- one snapshot; on Citus such a statement runs where it is called, and each
-- query inside goes to the account's shard (a query of the tables that
-- called a function of billing's would run on the shard, where that
-- function could not query further).
CREATE OR REPLACE FUNCTION billing._available_position(account_id bigint, OUT available_micros bigint,
                                                       OUT held_micros bigint)
LANGUAGE plpgsql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    SELECT (SELECT COALESCE(pg_catalog.sum(s.available_micros), 0)::bigint
              FROM billing.account_slices s WHERE s.account_id = _available_position.account_id),
           (SELECT COALESCE(pg_catalog.sum(r.hold_micros), 0)::bigint FROM billing.requests r
             WHERE r.account_id = _available_position.account_id AND r.status IN ('queued', 'in_progress'))
      INTO available_micros, held_micros;
END $$;

-- Internal: the account's row, locked when for_update; PB404 when it is
-- unknown, or disabled and active_only. The cold paths' check that an
-- account exists, defined with the hot paths' one (accounts.c).
CREATE OR REPLACE FUNCTION billing._account(account_id bigint, for_update boolean, active_only boolean)
RETURNS billing.accounts LANGUAGE C STRICT SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_account_row';

-- Internal: money movements of the cold paths (top-ups, invoices). Granted to nobody.
CREATE OR REPLACE FUNCTION billing._move(account_id bigint, amount_micros bigint, kind text,
                              reference text DEFAULT NULL, topup_id bigint DEFAULT NULL,
                              invoice_id bigint DEFAULT NULL)
RETURNS bigint LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_move';

-- Internal: refuses (22023) a billing type that is not prepaid or postpaid;
-- create_account's check, for set_billing_type.
CREATE OR REPLACE FUNCTION billing._check_billing_type(billing_type text)
RETURNS void LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'billing_check_billing_type';

-- Internal: is an entry of this kind, amount and request one the ledger
-- allows? The kinds are listed once, in ledger/kinds.c; verify() asks here.
CREATE OR REPLACE FUNCTION billing._ledger_entry_valid(kind text, amount_micros bigint,
                                                       has_request boolean)
RETURNS boolean LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'billing_ledger_entry_valid';

CREATE OR REPLACE FUNCTION billing._adjust_available(account_id bigint, delta_micros bigint)
RETURNS void LANGUAGE C STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_adjust_available';

-- Internal: the prepaid credit kept for the invoices moves by delta_micros
-- (the money stays in the ledger); invoicing's one way to it. Granted to nobody.
CREATE OR REPLACE FUNCTION billing._keep_credit(account_id bigint, delta_micros bigint)
RETURNS void LANGUAGE C STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_keep_credit';

-- Internal: the exact available amount, with the account's slices locked
-- under its exclusive gate to commit, for a cold path that must come
-- between admissions, never during one (set_balance_alerts). Granted to nobody.
CREATE OR REPLACE FUNCTION billing._lock_available(account_id bigint)
RETURNS bigint LANGUAGE C STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_lock_available';

-- Refunds and corrections (docs/refunds.md).
CREATE OR REPLACE FUNCTION billing.refund_request(request_id bigint, amount_micros bigint DEFAULT NULL,
                                                  reason text DEFAULT NULL,
                                                  idempotency_key text DEFAULT NULL)
RETURNS jsonb LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_refund_request';

CREATE OR REPLACE FUNCTION billing.adjust_balance(account_id bigint, amount_micros bigint, reason text,
                                                  idempotency_key text DEFAULT NULL)
RETURNS bigint LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_adjust_balance';
-- pricing: model catalog, versioned prices, estimates and effective costs.

-- Upserts a model and one provider route. A model has exactly one default
-- provider once it has any: the first route becomes the default, and a new
-- default takes the flag from the previous one.
CREATE OR REPLACE FUNCTION billing.set_model(model text, media text, provider text, provider_name text,
                                  executed_model text DEFAULT NULL, is_default boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    old_media text;
    exec_model text := COALESCE(set_model.executed_model, set_model.model);
    make_default boolean;
BEGIN
    IF set_model.model IS NULL OR set_model.model !~ '^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$' THEN
        RAISE EXCEPTION 'invalid model name "%"', set_model.model USING ERRCODE = '22023',
            DETAIL = 'A model name has 1 to 128 letters, digits or ._:/@+- and starts with a letter or digit.';
    END IF;
    IF set_model.media IS NULL OR set_model.media NOT IN ('image', 'video') THEN
        RAISE EXCEPTION 'invalid media "%"', set_model.media USING ERRCODE = '22023',
            DETAIL = 'The media of a model is image or video.';
    END IF;
    IF COALESCE(pg_catalog.length(set_model.provider), 0) NOT BETWEEN 1 AND 128
       OR COALESCE(pg_catalog.length(set_model.provider_name), 0) NOT BETWEEN 1 AND 256
       OR COALESCE(pg_catalog.length(exec_model), 0) NOT BETWEEN 1 AND 256
       OR set_model.is_default IS NULL THEN
        RAISE EXCEPTION 'invalid provider route for model "%"', set_model.model USING ERRCODE = '22023',
            DETAIL = 'A provider has 1 to 128 characters, a provider_name and an executed_model 1 to 256, and is_default is not null.';
    END IF;

    INSERT INTO billing.models AS m (model, media) VALUES (set_model.model, set_model.media)
        ON CONFLICT (model) DO NOTHING;
    -- the row lock serializes route changes of one model, and set_price
    SELECT m.media INTO old_media FROM billing.models m WHERE m.model = set_model.model FOR UPDATE;
    IF old_media <> set_model.media THEN
        RAISE EXCEPTION 'model "%" is a % model', set_model.model, old_media USING ERRCODE = '22023',
            DETAIL = 'The media of a model cannot change; its prices depend on it.';
    END IF;

    IF set_model.is_default THEN
        UPDATE billing.model_providers mp SET is_default = false
         WHERE mp.model = set_model.model AND mp.provider <> set_model.provider AND mp.is_default;
    END IF;
    -- the first provider of a model is its default; decided before the
    -- INSERT, whose VALUES Citus plans without subqueries
    make_default := set_model.is_default OR NOT EXISTS (
        SELECT FROM billing.model_providers d
         WHERE d.model = set_model.model AND d.provider <> set_model.provider AND d.is_default);
    INSERT INTO billing.model_providers AS mp (model, provider, provider_name, executed_model, is_default)
    VALUES (set_model.model, set_model.provider, set_model.provider_name, exec_model, make_default)
    ON CONFLICT (model, provider) DO UPDATE
       SET provider_name = EXCLUDED.provider_name, executed_model = EXCLUDED.executed_model,
           is_default = EXCLUDED.is_default;
END $$;

-- Internal: set_price's validation (the model, its components, the
-- provider), in C beside the costing that reads the components (pricing.c).
CREATE OR REPLACE FUNCTION billing._check_price(model text, components jsonb, provider text)
RETURNS void LANGUAGE C VOLATILE CALLED ON NULL INPUT SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_check_price';

-- New price version, in billing.catalog_currency; billing._check_price
-- checks it and locks the model row.
CREATE OR REPLACE FUNCTION billing.set_price(model text, components jsonb, provider text DEFAULT NULL,
                                  effective_from timestamptz DEFAULT pg_catalog.now())
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    id bigint;
BEGIN
    IF model IS NULL OR components IS NULL THEN
        RAISE EXCEPTION 'model and components must not be null' USING ERRCODE = '22023';
    END IF;
    IF effective_from IS NULL OR NOT pg_catalog.isfinite(effective_from) THEN
        RAISE EXCEPTION 'effective_from must be a finite time, not null or infinity' USING ERRCODE = '22023';
    END IF;
    PERFORM billing._check_price(model, components, provider);
    INSERT INTO billing.prices AS p (model, provider, currency, components, effective_from)
    VALUES (model, provider, billing._setting('billing.catalog_currency'), components, effective_from)
    RETURNING p.price_id INTO id;
    RETURN id;
END $$;

-- The choice of a route's price, defined here once: at a time t the route
-- (model, provider) is priced by the provider's own latest version in force
-- at t, else by the model's latest provider-independent one. A row is a
-- version that may price a route, with the span of time in which it is the
-- choice (empty for a provider-independent version that an own one
-- superseded before it took effect). billing.catalog reads it, and so does
-- pricing_route() in C (pricingcatalog.c).
CREATE OR REPLACE VIEW billing._route_prices AS
SELECT v.model, v.provider, v.price_id, v.currency, v.components, v.effective_from,
       pg_catalog.tstzrange(v.effective_from,
                            GREATEST(v.effective_from,
                                     COALESCE(LEAST(v.next_from, v.own_from), 'infinity'))) AS span
  FROM (SELECT mp.model, mp.provider, p.price_id, p.currency, p.components, p.effective_from,
               -- the next version of the same kind (own or provider-independent)
               pg_catalog.lead(p.effective_from) OVER (
                   PARTITION BY mp.model, mp.provider, p.provider IS NULL
                   ORDER BY p.effective_from) AS next_from,
               -- a provider-independent version gives way to the first own one
               CASE WHEN p.provider IS NULL THEN
                   pg_catalog.min(p.effective_from) FILTER (WHERE p.provider IS NOT NULL)
                       OVER (PARTITION BY mp.model, mp.provider) END AS own_from
          FROM billing.model_providers mp
          JOIN billing.prices p ON p.model = mp.model
                               AND COALESCE(p.provider, '') IN (mp.provider, '')) v;

-- The price in force now of every active model and provider (a route with
-- no price in force is not listed).
CREATE OR REPLACE VIEW billing.catalog AS
SELECT m.model, m.media, mp.provider, mp.provider_name, mp.executed_model, mp.is_default,
       p.price_id, p.currency, p.components, p.effective_from
  FROM billing.models m
  JOIN billing.model_providers mp ON mp.model = m.model
  JOIN billing._route_prices p ON p.model = mp.model AND p.provider = mp.provider
 WHERE m.active AND p.span @> pg_catalog.now();

-- Dry run with the default provider's price: writes nothing, locks nothing.
CREATE OR REPLACE FUNCTION billing.estimate(model text, params jsonb)
RETURNS jsonb
LANGUAGE C STABLE CALLED ON NULL INPUT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_estimate';

-- Cost of actual outputs with the executing provider's price (NULL: default).
CREATE OR REPLACE FUNCTION billing.effective_cost(model text, outputs jsonb, provider text DEFAULT NULL)
RETURNS jsonb
LANGUAGE C STABLE CALLED ON NULL INPUT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_effective_cost';

-- Every write to the catalog drops the route caches of all backends (at commit).
CREATE OR REPLACE TRIGGER models_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON billing.models
    FOR EACH STATEMENT EXECUTE FUNCTION billing._cache_changed();
CREATE OR REPLACE TRIGGER model_providers_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON billing.model_providers FOR EACH STATEMENT EXECUTE FUNCTION billing._cache_changed();
CREATE OR REPLACE TRIGGER prices_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON billing.prices
    FOR EACH STATEMENT EXECUTE FUNCTION billing._cache_changed();

-- Price versions are never edited: work in flight settles at the version that
-- priced its admission, and every version that took effect may still do so.
-- Only a scheduled version (not yet in force) may be withdrawn; clock time,
-- so that a long transaction cannot withdraw one that took effect meanwhile.
CREATE OR REPLACE FUNCTION billing.refuse_price_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.effective_from > pg_catalog.clock_timestamp() THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION 'price versions are never changed'
        USING ERRCODE = 'PB409',
              DETAIL = 'Requests admitted at a price settle at that price; only a scheduled version may be deleted.',
              HINT = 'Set a new version with billing.set_price() instead.';
END $$;
CREATE OR REPLACE TRIGGER prices_versioned BEFORE UPDATE OR DELETE ON billing.prices
    FOR EACH ROW EXECUTE FUNCTION billing.refuse_price_change();
CREATE OR REPLACE TRIGGER prices_no_truncate BEFORE TRUNCATE ON billing.prices
    FOR EACH STATEMENT EXECUTE FUNCTION billing.refuse_price_change();
-- The request lifecycle (README.md, Requests and their metadata).

CREATE OR REPLACE FUNCTION billing.begin_request(account_id bigint, model text, params jsonb,
                                      idempotency_key text DEFAULT NULL, scope text DEFAULT NULL)
RETURNS jsonb LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_begin_request';

CREATE OR REPLACE FUNCTION billing.complete_request(request_id bigint, outputs jsonb, routing jsonb DEFAULT '{}')
RETURNS jsonb LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_complete_request';

CREATE OR REPLACE FUNCTION billing.fail_request(request_id bigint, reason text DEFAULT NULL,
                                     charge_micros bigint DEFAULT 0)
RETURNS jsonb LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_fail_request';

CREATE OR REPLACE FUNCTION billing.cancel_request(request_id bigint)
RETURNS jsonb LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_cancel_request';

CREATE OR REPLACE FUNCTION billing.charge(account_id bigint, model text, params jsonb, outputs jsonb,
                               routing jsonb DEFAULT '{}', idempotency_key text DEFAULT NULL,
                               scope text DEFAULT NULL)
RETURNS jsonb LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_charge';

CREATE OR REPLACE FUNCTION billing.response_metadata(request_id bigint)
RETURNS jsonb LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_response_metadata';

-- Settles every state change, from the functions above or a plain UPDATE.
CREATE OR REPLACE FUNCTION billing.requests_transition() RETURNS trigger
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_requests_transition';

CREATE OR REPLACE TRIGGER requests_transition BEFORE UPDATE ON billing.requests
    FOR EACH ROW EXECUTE FUNCTION billing.requests_transition();

-- Fails stale unfinished requests; requests being settled right now are skipped.
CREATE OR REPLACE FUNCTION billing.expire_requests(older_than interval)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cutoff timestamptz;
    acct bigint;
    n integer;
    total integer := 0;
BEGIN
    IF older_than IS NULL OR older_than < interval '0' THEN
        RAISE EXCEPTION 'older_than must be a non-negative interval'
            USING ERRCODE = '22023';
    END IF;
    BEGIN
        cutoff := pg_catalog.now() - older_than;
    EXCEPTION WHEN datetime_field_overflow THEN
        RETURN 0;   -- before any time there is: no request is that old
    END;
    -- one account at a time: on Citus each statement then runs on the
    -- account's shard, where FOR UPDATE is possible
    FOR acct IN SELECT DISTINCT x.account_id FROM billing.requests x
                 WHERE x.status IN ('queued', 'in_progress') AND x.created_at < cutoff LOOP
        UPDATE billing.requests r SET status = 'failed', failure_reason = 'expired'
         WHERE r.account_id = acct
           AND r.request_id IN (SELECT x.request_id FROM billing.requests x
                                 WHERE x.account_id = acct AND x.status IN ('queued', 'in_progress')
                                   AND x.created_at < cutoff
                                 FOR UPDATE SKIP LOCKED);
        GET DIAGNOSTICS n = ROW_COUNT;
        total := total + n;
    END LOOP;
    RETURN total;
END $$;
-- topup: SQL interface. The rules are in docs/topup.md.

CREATE OR REPLACE FUNCTION billing.configure_auto_topup(account_id bigint, threshold_micros bigint,
                                             amount_micros bigint, enabled boolean DEFAULT true)
RETURNS void
AS 'MODULE_PATHNAME', 'billing_configure_auto_topup'
LANGUAGE C VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION billing.complete_topup(topup_id bigint, succeeded boolean,
                                       payment_reference text DEFAULT NULL,
                                       failure_reason text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'billing_complete_topup'
LANGUAGE C VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
-- invoice: postpaid billing. Credit limits and their audit, the suggested
-- limit, switching an account's billing type, monthly invoices and their
-- payment. Every money movement goes through billing._move, every change of
-- the available amount that is not money through billing._adjust_available.

-- Micros in one minor unit of a currency (ISO 4217 exponents): invoice lines
-- are whole minor units. Currencies not listed have two decimals.
CREATE OR REPLACE FUNCTION billing._minor_unit_micros(currency text) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE
        WHEN currency IN ('BIF', 'CLP', 'DJF', 'GNF', 'ISK', 'JPY', 'KMF', 'KRW', 'PYG',
                          'RWF', 'UGX', 'UYI', 'VND', 'VUV', 'XAF', 'XOF', 'XPF') THEN 1000000
        WHEN currency IN ('BHD', 'IQD', 'JOD', 'KWD', 'LYD', 'OMR', 'TND') THEN 1000
        WHEN currency IN ('CLF', 'UYW') THEN 100
        ELSE 10000
    END::bigint
$$;

-- micros rounded half-up to whole units of unit micros; a negative amount
-- (a net debit of corrections) like its opposite, so -0.005 is -0.01
CREATE OR REPLACE FUNCTION billing._round_half_up(micros bigint, unit bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT (pg_catalog.sign(micros) * pg_catalog.div(pg_catalog.abs(micros::numeric) + unit / 2, unit)
            * unit)::bigint
$$;

-- Exact currency units of micros as a JSON number: 12500000 -> 12.5. The
-- one renderer of money, money_format() in C.
CREATE OR REPLACE FUNCTION billing._units(micros bigint) RETURNS numeric
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'billing_units';

-- A billing.* setting. Its C side loads the library, which defines the
-- settings, in a session that has not called into billing yet (a pg_cron
-- job, say).
CREATE OR REPLACE FUNCTION billing._setting(name text) RETURNS text
LANGUAGE C STABLE STRICT SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_setting';

-- Refuses (25000) a batch outside read committed: the batches (close_period,
-- expire_credits) lock and then need each later statement to see what
-- committed before their locks were granted. caller names the function.
CREATE OR REPLACE FUNCTION billing._require_read_committed(caller text) RETURNS void
LANGUAGE plpgsql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION '% must run at the read committed isolation level', caller
            USING ERRCODE = '25000';
    END IF;
END
$$;

-- Bounds of the calendar month that starts on period_start, in time zone tz.
CREATE OR REPLACE FUNCTION billing._period_bounds(period_start date, tz text,
                                       OUT starts timestamptz, OUT ends timestamptz)
LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
    SELECT period_start::timestamp AT TIME ZONE tz,
           (period_start + interval '1 month')::timestamp AT TIME ZONE tz
$$;

-- The postpaid corrections of an account that no invoice has credited yet,
-- posted before "before": its refunds of postpaid usage and its adjustments
-- made while postpaid (their ledger entries are flagged postpaid), each by
-- its ledger entry and signed amount (> 0 a credit). The next invoice
-- credits them (docs/invoices.md, "Refunds and corrections on invoices").
CREATE OR REPLACE FUNCTION billing._uncredited_corrections(account_id bigint, before timestamptz)
RETURNS TABLE(kind text, entry_id bigint, amount_micros bigint)
LANGUAGE plpgsql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    -- PL/pgSQL, not SQL: Citus plans no SQL function's parameters
    RETURN QUERY
    SELECT l.kind, l.entry_id, l.amount_micros
      FROM (SELECT f.entry_id FROM billing.refunds f
             WHERE f.account_id = _uncredited_corrections.account_id AND f.invoice_id IS NULL
            UNION ALL
            SELECT d.entry_id FROM billing.adjustments d
             WHERE d.account_id = _uncredited_corrections.account_id AND d.invoice_id IS NULL) c
      JOIN billing.ledger l ON l.account_id = _uncredited_corrections.account_id
                           AND l.entry_id = c.entry_id
     WHERE l.postpaid AND l.created_at < before;
END $$;

-- What an account owes on postpaid terms and the prepaid credit kept for its
-- invoices, from one snapshot (docs/invoices.md, "How a postpaid account's
-- money works"). The one definition of these amounts: billing.balance()
-- shows them, set_billing_type and billing.verify() use them.
--   unbilled_micros: postpaid usage that no invoice covers yet, i.e. dated
--     outside the periods of the account's invoices (the gaps before,
--     between and after them, each an index range), less the postpaid
--     corrections no invoice has credited yet (below 0 when they exceed it);
--   unpaid_micros: the totals of its open invoices;
--   credit_micros: the kept prepaid credit (accounts.prepaid_credit_micros).
-- While the account is postpaid its balance is credit - unbilled - unpaid.
CREATE OR REPLACE FUNCTION billing._postpaid_position(account_id bigint, OUT unbilled_micros bigint,
                                           OUT unpaid_micros bigint, OUT credit_micros bigint)
LANGUAGE plpgsql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    uncredited bigint;
BEGIN
    -- PL/pgSQL, not SQL: Citus plans no SQL function's parameters; and no
    -- query of the account's tables calls a function of billing's, which
    -- Citus would run on the shard, where it cannot query further
    SELECT COALESCE(pg_catalog.sum(c.amount_micros), 0)::bigint INTO uncredited
      FROM billing._uncredited_corrections(_postpaid_position.account_id, 'infinity') c;
    WITH inv AS (
        SELECT i.starts_at, i.ends_at, i.status, i.total_micros,
               pg_catalog.max(i.ends_at) OVER (ORDER BY i.starts_at
                                               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end
          FROM billing.invoices i WHERE i.account_id = _postpaid_position.account_id
    ), gaps AS (
        SELECT COALESCE(inv.prev_end, '-infinity') AS from_at, inv.starts_at AS to_at FROM inv
        UNION ALL
        SELECT COALESCE(pg_catalog.max(inv.ends_at), '-infinity'), 'infinity' FROM inv
    )
    SELECT (SELECT COALESCE(pg_catalog.sum(u.micros), 0)::bigint
              FROM gaps g,
                   LATERAL (SELECT -pg_catalog.sum(l.amount_micros) AS micros FROM billing.ledger l
                             WHERE l.account_id = _postpaid_position.account_id
                               AND l.kind = 'usage' AND l.postpaid
                               AND l.created_at >= g.from_at AND l.created_at < g.to_at) u)
           - uncredited,
           (SELECT COALESCE(pg_catalog.sum(inv.total_micros), 0)::bigint FROM inv
             WHERE inv.status = 'open'),
           (SELECT a.prepaid_credit_micros FROM billing.accounts a
             WHERE a.account_id = _postpaid_position.account_id)
      INTO unbilled_micros, unpaid_micros, credit_micros;
END $$;

CREATE OR REPLACE FUNCTION billing.set_credit_limit(account_id bigint, limit_micros bigint, reason text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    acct billing.accounts;
BEGIN
    IF account_id IS NULL THEN
        RAISE EXCEPTION 'account_id must not be null' USING ERRCODE = '22023';
    END IF;
    IF limit_micros IS NULL OR limit_micros < 0 THEN
        RAISE EXCEPTION 'limit_micros must be zero or more'
            USING ERRCODE = '22023', DETAIL = pg_catalog.format('The value was %s.', limit_micros);
    END IF;
    IF reason IS NULL OR pg_catalog.btrim(reason) = '' THEN
        RAISE EXCEPTION 'a credit limit change needs a reason' USING ERRCODE = '22023';
    END IF;
    acct := billing._account(account_id, true, true);
    IF acct.credit_limit_micros = limit_micros THEN
        RETURN;                 -- not a change: nothing to audit
    END IF;
    UPDATE billing.accounts a SET credit_limit_micros = limit_micros
     WHERE a.account_id = set_credit_limit.account_id;
    INSERT INTO billing.credit_limit_audit (account_id, old_limit_micros, new_limit_micros, reason)
    VALUES (account_id, acct.credit_limit_micros, limit_micros, reason);
    -- the limit is part of a postpaid account's available amount only
    IF acct.billing_type = 'postpaid' THEN
        PERFORM billing._adjust_available(account_id, limit_micros - acct.credit_limit_micros);
    END IF;
END $$;

CREATE OR REPLACE FUNCTION billing.set_billing_type(account_id bigint, billing_type text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    acct billing.accounts;
    balance bigint;
    unbilled bigint;
    unpaid bigint;
    credit bigint;
    prepaid bigint;
BEGIN
    IF account_id IS NULL THEN
        RAISE EXCEPTION 'account_id must not be null' USING ERRCODE = '22023';
    END IF;
    IF billing_type IS NULL THEN
        RAISE EXCEPTION 'billing_type must not be null' USING ERRCODE = '22023';
    END IF;
    PERFORM billing._check_billing_type(billing_type);
    acct := billing._account(account_id, true, true);
    IF acct.billing_type = billing_type THEN
        RETURN;
    END IF;
    -- The limit joins or leaves the available amount. The slices first:
    -- every settlement that holds one has committed once they are locked,
    -- and is in the sums that follow (one snapshot).
    PERFORM billing._adjust_available(account_id, CASE WHEN billing_type = 'postpaid'
                                                       THEN acct.credit_limit_micros
                                                       ELSE -acct.credit_limit_micros END);
    SELECT (SELECT COALESCE(pg_catalog.sum(l.amount_micros), 0)::bigint
              FROM billing.ledger l WHERE l.account_id = set_billing_type.account_id),
           p.unbilled_micros, p.unpaid_micros, p.credit_micros
      INTO balance, unbilled, unpaid, credit
      FROM billing._postpaid_position(set_billing_type.account_id) p;

    IF billing_type = 'postpaid' THEN
        -- The prepaid part of the balance: what is not owed on postpaid terms
        -- (usage of earlier postpaid days still to invoice, open invoices)
        -- nor already kept for those invoices. Prepaid usage is never
        -- invoiced, so a prepaid debt could not be collected.
        prepaid := balance + unbilled + unpaid - credit;
        IF prepaid < 0 THEN
            RAISE EXCEPTION 'account % has a negative balance', account_id
                USING ERRCODE = 'PB409',
                      DETAIL = pg_catalog.format('The prepaid balance is %s %s.',
                                                 billing._units(prepaid), acct.currency),
                      HINT = 'Add funds to cover the balance before switching to postpaid billing.';
        END IF;
        -- it stays in the ledger and joins the credit kept for the invoices
        UPDATE billing.accounts a SET billing_type = 'postpaid'
         WHERE a.account_id = set_billing_type.account_id;
        PERFORM billing._keep_credit(account_id, prepaid);
    ELSE
        -- Credit not yet consumed is plain prepaid balance again, except what
        -- the invoices still to come for postpaid usage will consume: their
        -- usage less the corrections they credit.
        UPDATE billing.accounts a SET billing_type = 'prepaid'
         WHERE a.account_id = set_billing_type.account_id;
        PERFORM billing._keep_credit(account_id, LEAST(credit, GREATEST(unbilled, 0)) - credit);
    END IF;
END $$;

-- Suggested credit limit; the formula is documented in docs/invoices.md.
CREATE OR REPLACE FUNCTION billing.suggest_credit_limit(account_id bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    acct billing.accounts;
    floor_micros bigint := billing._setting('billing.credit_limit_floor_micros')::bigint;
    cap_micros bigint := billing._setting('billing.credit_limit_cap_micros')::bigint;
    tz text := billing._setting('billing.timezone');
    today date := (pg_catalog.now() AT TIME ZONE tz)::date;
    paid integer;
    on_time integer;
    avg_paid bigint;
    days_late integer;
    overdue integer;
    age_months integer;
    base numeric;
    timeliness_pct integer;
    age_pct integer;
    suggested bigint;
BEGIN
    IF account_id IS NULL THEN
        RAISE EXCEPTION 'account_id must not be null' USING ERRCODE = '22023';
    END IF;
    acct := billing._account(account_id, false, true);
    -- the twelve latest paid invoices
    SELECT pg_catalog.count(*),
           pg_catalog.count(*) FILTER (WHERE (p.paid_at AT TIME ZONE tz)::date <= p.due_date),
           COALESCE(pg_catalog.avg(p.subtotal_micros), 0)::bigint,
           COALESCE(pg_catalog.max(GREATEST((p.paid_at AT TIME ZONE tz)::date - p.due_date, 0)), 0)
      INTO paid, on_time, avg_paid, days_late
      FROM (SELECT i.paid_at, i.due_date, i.subtotal_micros FROM billing.invoices i
             WHERE i.account_id = suggest_credit_limit.account_id AND i.status = 'paid'
             ORDER BY i.period_start DESC LIMIT 12) p;
    SELECT pg_catalog.count(*) INTO overdue FROM billing.invoices i
     WHERE i.account_id = suggest_credit_limit.account_id AND i.status = 'open'
       AND i.due_date < today;
    SELECT (EXTRACT(year FROM g) * 12 + EXTRACT(month FROM g))::integer
      INTO age_months
      FROM pg_catalog.age(today, (acct.created_at AT TIME ZONE tz)::date) g;

    base := 2 * avg_paid::numeric;
    timeliness_pct := CASE WHEN paid = 0 THEN 0 ELSE 100 * on_time / paid END;
    age_pct := LEAST(100, 50 + 10 * age_months);
    IF overdue > 0 THEN
        suggested := floor_micros;
    ELSE
        suggested := LEAST(GREATEST(pg_catalog.div(base * timeliness_pct * age_pct, 10000000000::numeric)
                                    * 1000000, floor_micros), cap_micros)::bigint;
    END IF;
    RETURN pg_catalog.jsonb_build_object(
        'object', 'credit_limit_suggestion',
        'account_id', acct.account_id,
        'currency', acct.currency,
        'current_limit_micros', acct.credit_limit_micros,
        'suggested_limit_micros', suggested,
        'suggested_limit', pg_catalog.jsonb_build_object(
            'amount', billing._units(suggested), 'currency', acct.currency),
        'basis', pg_catalog.jsonb_build_object(
            'paid_invoices', paid,
            'paid_on_time', on_time,
            'average_paid_invoice_micros', avg_paid,
            'max_days_late', days_late,
            'overdue_invoices', overdue,
            'account_age_months', age_months,
            'base_micros', base::bigint,
            'timeliness_percent', timeliness_pct,
            'age_percent', age_pct,
            'floor_micros', floor_micros,
            'cap_micros', cap_micros),
        'formula', CASE WHEN overdue > 0
                        THEN 'floor: the account has overdue invoices'
                        ELSE 'clamp(floor, cap, whole units of 2 * average_paid_invoice'
                             ' * timeliness_percent/100 * age_percent/100)' END);
END $$;

-- The payload of an invoice's events (docs/events.md).
CREATE OR REPLACE FUNCTION billing._invoice_event(inv billing.invoices) RETURNS jsonb
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.jsonb_build_object(
        'invoice_id', inv.invoice_id, 'invoice_number', inv.invoice_number,
        'period_start', inv.period_start, 'period_end', inv.period_end,
        'currency', inv.currency, 'subtotal_micros', inv.subtotal_micros,
        'corrections_micros', inv.corrections_micros,
        'credit_micros', inv.credit_micros, 'total_micros', inv.total_micros,
        'status', inv.status, 'due_date', inv.due_date,
        'payment_reference', inv.payment_reference)
$$;

CREATE OR REPLACE FUNCTION billing.close_period(period_start date DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tz text := billing._setting('billing.timezone');
    starts timestamptz;
    ends timestamptz;
    due date;
    acct record;
    inv billing.invoices;
    usage_total bigint;
    unit bigint;
    corrections bigint;
    due_micros bigint;
    credit bigint;
    carried bigint;
    postpaid_now boolean;
    pause numeric := 0.1;
    issued integer := 0;
    number bigint;
BEGIN
    -- the wait below only helps when later statements take new snapshots
    PERFORM billing._require_read_committed('billing.close_period()');
    IF period_start IS NULL THEN
        -- the last month that has ended in billing.timezone
        period_start := (pg_catalog.date_trunc('month', pg_catalog.clock_timestamp() AT TIME ZONE tz)
                         - interval '1 month')::date;
    ELSIF period_start NOT BETWEEN '1970-01-01' AND '9999-12-01'
          OR period_start <> pg_catalog.date_trunc('month', period_start)::date THEN
        RAISE EXCEPTION 'period_start must be the first day of a month'
            USING ERRCODE = '22023', DETAIL = pg_catalog.format('The value was %s.', period_start);
    END IF;
    SELECT b.starts, b.ends INTO starts, ends FROM billing._period_bounds(period_start, tz) b;
    IF ends > pg_catalog.clock_timestamp() THEN
        RAISE EXCEPTION 'the month beginning % has not ended', pg_catalog.to_char(period_start, 'YYYY-MM-DD')
            USING ERRCODE = '22023',
                  DETAIL = pg_catalog.format('It ends at %s in time zone %s.',
                                             pg_catalog.to_char(ends AT TIME ZONE tz, 'YYYY-MM-DD HH24:MI'), tz);
    END IF;

    -- Wait for a moment when no transaction is writing the ledger, then let
    -- go at once: the subtransaction's rollback releases the lock (and the
    -- lock_timeout). A usage entry dated in the month was written before the
    -- month ended, so it is now committed and visible to the statements
    -- below; anything written later is dated after the month. Each attempt
    -- queues for at most 100 ms, so a long writer (one idle in transaction,
    -- say) holds up the other writers only that long; between attempts they
    -- go on, for a pause that grows to a second.
    LOOP
        BEGIN
            PERFORM pg_catalog.set_config('lock_timeout', '100ms', true);
            LOCK TABLE billing.ledger IN SHARE MODE;
            RAISE SQLSTATE 'PBW00';
        EXCEPTION
            WHEN SQLSTATE 'PBW00' THEN
                EXIT;
            WHEN lock_not_available THEN
                PERFORM pg_catalog.pg_sleep(pause);
                pause := LEAST(pause * 2, 1);
        END;
    END LOOP;
    -- One closer at a time: invoice numbers are max + 1, without gaps.
    LOCK TABLE billing.invoices IN SHARE ROW EXCLUSIVE MODE;
    SELECT COALESCE(pg_catalog.max(i.invoice_number), 0) INTO number FROM billing.invoices i;

    due := (period_start + interval '1 month')::date
           + billing._setting('billing.invoice_due_days')::integer;
    FOR acct IN
        -- one probe of the account's postpaid usage index per account
        SELECT a.account_id, a.currency
          FROM billing.accounts a
         WHERE EXISTS (SELECT FROM billing.ledger l
                        WHERE l.account_id = a.account_id AND l.kind = 'usage' AND l.postpaid
                          AND l.created_at >= starts AND l.created_at < ends)
           AND NOT EXISTS (SELECT FROM billing.invoices i
                            WHERE i.account_id = a.account_id AND i.period_start = close_period.period_start)
         ORDER BY 1
    LOOP
        -- the account row before its slices, as set_billing_type locks them
        SELECT a.prepaid_credit_micros, a.billing_type = 'postpaid' INTO credit, postpaid_now
          FROM billing.accounts a
         WHERE a.account_id = acct.account_id FOR NO KEY UPDATE;
        unit := billing._minor_unit_micros(acct.currency);
        number := number + 1;
        INSERT INTO billing.invoices (account_id, invoice_number, period_start, period_end,
                                      starts_at, ends_at, currency, subtotal_micros, total_micros,
                                      due_date)
        VALUES (acct.account_id, number,
                period_start, (period_start + interval '1 month')::date, starts, ends,
                acct.currency, 0, 0, due)
        RETURNING * INTO inv;

        INSERT INTO billing.invoice_lines (account_id, invoice_id, model, quantity, usage_micros, amount_micros)
        SELECT acct.account_id, inv.invoice_id, u.model, u.requests, u.exact,
               billing._round_half_up(u.exact, unit)
          FROM (SELECT COALESCE(r.model, '(none)') AS model,
                       pg_catalog.count(DISTINCT l.request_id) AS requests,
                       (-pg_catalog.sum(l.amount_micros))::bigint AS exact
                  FROM billing.ledger l LEFT JOIN billing.requests r ON r.request_id = l.request_id
                 WHERE l.account_id = acct.account_id AND l.kind = 'usage' AND l.postpaid
                   AND l.created_at >= starts AND l.created_at < ends
                 GROUP BY 1) u;

        SELECT pg_catalog.sum(il.amount_micros)::bigint, pg_catalog.sum(il.usage_micros)::bigint
          INTO inv.subtotal_micros, usage_total
          FROM billing.invoice_lines il WHERE il.invoice_id = inv.invoice_id;

        -- The postpaid refunds and adjustments posted before the month's end
        -- that no invoice has credited: this one credits them, once (closers
        -- run one at a time; the mark, not the date, says what is credited).
        WITH c AS (
            SELECT c.kind, c.entry_id FROM billing._uncredited_corrections(acct.account_id, ends) c
        ), f AS (
            UPDATE billing.refunds f SET invoice_id = inv.invoice_id
              FROM c
             WHERE f.account_id = acct.account_id AND c.kind = 'refund' AND f.entry_id = c.entry_id
               AND f.invoice_id IS NULL
            RETURNING f.amount_micros
        ), d AS (
            UPDATE billing.adjustments d SET invoice_id = inv.invoice_id
              FROM c
             WHERE d.account_id = acct.account_id AND c.kind = 'adjustment' AND d.entry_id = c.entry_id
               AND d.invoice_id IS NULL
            RETURNING d.amount_micros
        )
        SELECT COALESCE(pg_catalog.sum(x.amount_micros), 0)::bigint INTO corrections
          FROM (SELECT f.amount_micros FROM f UNION ALL SELECT d.amount_micros FROM d) x;
        inv.corrections_micros := billing._round_half_up(corrections, unit);

        -- the ledger carries the rounding of lines and corrections, so that it
        -- agrees with the invoice
        IF usage_total - inv.subtotal_micros + inv.corrections_micros - corrections <> 0 THEN
            PERFORM billing._move(acct.account_id,
                                  usage_total - inv.subtotal_micros + inv.corrections_micros - corrections,
                                  'adjustment', pg_catalog.format('rounding of invoice %s', inv.invoice_number),
                                  NULL, inv.invoice_id);
        END IF;

        -- What corrections leave to pay; the kept prepaid credit pays first,
        -- in whole minor units like the lines (a remainder below one minor
        -- unit stays kept, in the ledger). Corrections beyond the usage leave
        -- nothing to pay and join the kept credit for the next invoices while
        -- the account is postpaid; on a prepaid account they are plain
        -- prepaid balance already.
        due_micros := inv.subtotal_micros - inv.corrections_micros;
        credit := LEAST(credit - credit % unit, GREATEST(due_micros, 0));
        carried := CASE WHEN postpaid_now THEN GREATEST(-due_micros, 0) ELSE 0 END;
        PERFORM billing._keep_credit(acct.account_id, carried - credit);
        UPDATE billing.invoices i
           SET subtotal_micros = inv.subtotal_micros, corrections_micros = inv.corrections_micros,
               credit_micros = credit, total_micros = GREATEST(due_micros, 0) - credit,
               status = CASE WHEN GREATEST(due_micros, 0) = credit THEN 'paid' ELSE 'open' END,
               paid_at = CASE WHEN GREATEST(due_micros, 0) = credit THEN i.issued_at END
         WHERE i.invoice_id = inv.invoice_id
        RETURNING * INTO inv;
        PERFORM billing._event(inv.account_id, 'invoice_issued', billing._invoice_event(inv));
        -- paid in full by the kept prepaid credit
        IF inv.status = 'paid' THEN
            PERFORM billing._event(inv.account_id, 'invoice_paid', billing._invoice_event(inv));
        END IF;
        issued := issued + 1;
    END LOOP;
    RETURN issued;
END $$;

CREATE OR REPLACE FUNCTION billing.mark_invoice_paid(invoice_id bigint, payment_reference text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    inv billing.invoices;
    paid timestamptz;
BEGIN
    IF invoice_id IS NULL THEN
        RAISE EXCEPTION 'invoice_id must not be null' USING ERRCODE = '22023';
    END IF;
    -- the invoice row first, then the slices (in billing._move): the order
    -- of close_period, which locks billing.invoices first
    -- the time in a variable: Citus evaluates no volatile function in a SET
    paid := pg_catalog.clock_timestamp();
    UPDATE billing.invoices i
       SET status = 'paid', paid_at = paid,
           payment_reference = mark_invoice_paid.payment_reference
     WHERE i.invoice_id = mark_invoice_paid.invoice_id AND i.status = 'open'
    RETURNING * INTO inv;
    IF FOUND THEN
        PERFORM billing._move(inv.account_id, inv.total_micros, 'invoice_payment',
                              payment_reference, NULL, inv.invoice_id);
        PERFORM billing._event(inv.account_id, 'invoice_paid', billing._invoice_event(inv));
        RETURN;
    END IF;
    SELECT * INTO inv FROM billing.invoices i WHERE i.invoice_id = mark_invoice_paid.invoice_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'invoice % does not exist', invoice_id USING ERRCODE = 'PB404';
    ELSIF inv.status = 'void' THEN
        RAISE EXCEPTION 'invoice % is void', invoice_id
            USING ERRCODE = 'PB409', DETAIL = 'A void invoice cannot be paid.';
    END IF;
    -- already paid: the first payment stands
END $$;

-- Invoice invariants, for billing.verify().
CREATE OR REPLACE FUNCTION billing._verify_invoices(only_account bigint DEFAULT NULL)
RETURNS TABLE(account_id bigint, problem text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    -- PL/pgSQL, not SQL: Citus plans no SQL function's parameters
    RETURN QUERY
    -- every join names the account too: on Citus a query of one account's
    -- rows then runs on its shard
    WITH inv AS NOT MATERIALIZED (
        SELECT i.*,
               (SELECT pg_catalog.count(*) FROM billing.invoice_lines il
                 WHERE il.account_id = i.account_id AND il.invoice_id = i.invoice_id) AS nlines,
               (SELECT COALESCE(pg_catalog.sum(il.amount_micros), 0)::bigint FROM billing.invoice_lines il
                 WHERE il.account_id = i.account_id AND il.invoice_id = i.invoice_id) AS lines_micros,
               (SELECT COALESCE(pg_catalog.sum(il.usage_micros), 0)::bigint FROM billing.invoice_lines il
                 WHERE il.account_id = i.account_id AND il.invoice_id = i.invoice_id) AS usage_micros,
               (SELECT COALESCE(-pg_catalog.sum(l.amount_micros), 0)::bigint
                  FROM billing.ledger l
                 WHERE l.account_id = i.account_id AND l.kind = 'usage' AND l.postpaid
                   AND l.created_at >= i.starts_at AND l.created_at < i.ends_at) AS ledger_usage,
               (SELECT COALESCE(pg_catalog.sum(l.amount_micros), 0)::bigint FROM billing.ledger l
                 WHERE l.account_id = i.account_id AND l.invoice_id = i.invoice_id
                   AND l.kind = 'adjustment') AS rounding,
               (SELECT COALESCE(pg_catalog.sum(c.amount_micros), 0)::bigint
                  FROM (SELECT f.amount_micros FROM billing.refunds f
                         WHERE f.account_id = i.account_id AND f.invoice_id = i.invoice_id
                        UNION ALL
                        SELECT d.amount_micros FROM billing.adjustments d
                         WHERE d.account_id = i.account_id AND d.invoice_id = i.invoice_id) c)
                   AS corrections_exact,
               (SELECT pg_catalog.count(*) FROM billing.ledger l
                 WHERE l.account_id = i.account_id AND l.invoice_id = i.invoice_id
                   AND l.kind = 'invoice_payment') AS npayments,
               (SELECT COALESCE(pg_catalog.sum(l.amount_micros), 0)::bigint FROM billing.ledger l
                 WHERE l.account_id = i.account_id AND l.invoice_id = i.invoice_id
                   AND l.kind = 'invoice_payment') AS paid_micros
          FROM billing.invoices i
         WHERE only_account IS NULL OR i.account_id = only_account
    )
    SELECT inv.account_id, pg_catalog.format('invoice %s: %s', inv.invoice_number, p.problem)
      FROM inv, LATERAL (VALUES
        (inv.nlines = 0, 'has no lines'),
        (inv.subtotal_micros <> inv.lines_micros,
         pg_catalog.format('subtotal %s is not the sum of its lines %s', inv.subtotal_micros, inv.lines_micros)),
        (inv.credit_micros < 0
             OR inv.credit_micros > GREATEST(inv.subtotal_micros - inv.corrections_micros, 0),
         pg_catalog.format('credit %s is not between 0 and the subtotal less corrections', inv.credit_micros)),
        (inv.credit_micros % billing._minor_unit_micros(inv.currency) <> 0
             OR inv.total_micros % billing._minor_unit_micros(inv.currency) <> 0,
         pg_catalog.format('credit %s or total %s is not whole minor units of %s',
                           inv.credit_micros, inv.total_micros, inv.currency)),
        (inv.corrections_micros <> billing._round_half_up(inv.corrections_exact,
                                                          billing._minor_unit_micros(inv.currency)),
         pg_catalog.format('corrections %s are not the refunds and adjustments it credits, %s, rounded half-up',
                           inv.corrections_micros, inv.corrections_exact)),
        (inv.total_micros <> GREATEST(inv.subtotal_micros - inv.corrections_micros, 0) - inv.credit_micros,
         pg_catalog.format('total %s is not subtotal %s less corrections %s less credit %s (at least 0)',
                           inv.total_micros, inv.subtotal_micros, inv.corrections_micros, inv.credit_micros)),
        (inv.usage_micros <> inv.ledger_usage,
         pg_catalog.format('lines bill %s micros of usage, the ledger has %s in the period',
                           inv.usage_micros, inv.ledger_usage)),
        (inv.rounding <> inv.usage_micros - inv.lines_micros
                          + inv.corrections_micros - inv.corrections_exact,
         pg_catalog.format('rounding adjustments %s do not match the rounding %s',
                           inv.rounding, inv.usage_micros - inv.lines_micros
                                         + inv.corrections_micros - inv.corrections_exact)),
        (inv.status = 'paid' AND inv.total_micros > 0
             AND (inv.npayments <> 1 OR inv.paid_micros <> inv.total_micros),
         pg_catalog.format('paid with %s payment entries of %s micros', inv.npayments, inv.paid_micros)),
        ((inv.status <> 'paid' OR inv.total_micros = 0) AND inv.npayments <> 0,
         pg_catalog.format('%s invoice with payment entries', inv.status)),
        (inv.total_micros = 0 AND inv.status = 'open', 'open with nothing to pay')
      ) AS p(failed, problem)
     WHERE p.failed
    UNION ALL
    SELECT il.account_id, pg_catalog.format('invoice %s, model %s: %s', i.invoice_number, il.model, p.problem)
      FROM billing.invoice_lines il JOIN billing.invoices i USING (account_id, invoice_id),
           LATERAL (VALUES
        (il.amount_micros % billing._minor_unit_micros(i.currency) <> 0,
         pg_catalog.format('amount %s is not whole minor units of %s', il.amount_micros, i.currency)),
        (il.amount_micros <> billing._round_half_up(il.usage_micros, billing._minor_unit_micros(i.currency)),
         pg_catalog.format('amount %s is not usage %s rounded half-up', il.amount_micros, il.usage_micros)),
        (il.quantity <= 0, 'no requests')
      ) AS p(failed, problem)
     WHERE p.failed AND (only_account IS NULL OR i.account_id = only_account)
    UNION ALL
    -- each line bills the period's usage entries of its model ('(none)': of no request)
    SELECT i.account_id,
           pg_catalog.format('invoice %s, model %s: the line bills %s requests for %s micros, the period has %s for %s',
                             i.invoice_number, m.model, m.line_requests, m.line_usage, m.requests, m.usage)
      FROM (SELECT COALESCE(il.account_id, u.account_id) AS account_id,
                   COALESCE(il.invoice_id, u.invoice_id) AS invoice_id, COALESCE(il.model, u.model) AS model,
                   COALESCE(il.quantity, 0) AS line_requests, COALESCE(il.usage_micros, 0) AS line_usage,
                   COALESCE(u.requests, 0) AS requests, COALESCE(u.usage, 0) AS usage
              FROM (SELECT x.account_id, x.invoice_id, x.model, x.quantity, x.usage_micros
                      FROM billing.invoice_lines x JOIN billing.invoices xi USING (account_id, invoice_id)
                     WHERE only_account IS NULL OR xi.account_id = only_account) il
              FULL JOIN (SELECT ui.account_id, ui.invoice_id, COALESCE(r.model, '(none)') AS model,
                                pg_catalog.count(DISTINCT l.request_id) AS requests,
                                (-pg_catalog.sum(l.amount_micros))::bigint AS usage
                           FROM billing.invoices ui
                           JOIN billing.ledger l
                             ON l.account_id = ui.account_id AND l.kind = 'usage' AND l.postpaid
                            AND l.created_at >= ui.starts_at AND l.created_at < ui.ends_at
                           LEFT JOIN billing.requests r
                             ON r.account_id = l.account_id AND r.request_id = l.request_id
                          WHERE only_account IS NULL OR ui.account_id = only_account
                          GROUP BY 1, 2, 3) u
                ON u.account_id = il.account_id AND u.invoice_id = il.invoice_id AND u.model = il.model) m
      JOIN billing.invoices i USING (account_id, invoice_id)
     WHERE m.line_requests <> m.requests OR m.line_usage <> m.usage
    UNION ALL
    SELECT l.account_id, pg_catalog.format('ledger entry %s refers to no invoice of its account', l.entry_id)
      FROM billing.ledger l
     WHERE l.invoice_id IS NOT NULL AND (only_account IS NULL OR l.account_id = only_account)
       AND NOT EXISTS (SELECT FROM billing.invoices i
                        WHERE i.invoice_id = l.invoice_id AND i.account_id = l.account_id)
    UNION ALL
    -- a credited correction: a postpaid entry posted before the end of the
    -- period of an invoice of its own account
    SELECT c.account_id, pg_catalog.format('%s entry %s is credited on invoice id %s, %s', c.kind, c.entry_id,
                                           c.invoice_id,
                                           CASE WHEN i.invoice_id IS NULL THEN 'no invoice of its account'
                                                ELSE 'but was posted after its period or not postpaid' END)
      FROM (SELECT f.account_id, 'refund' AS kind, f.entry_id, f.invoice_id FROM billing.refunds f
             WHERE f.invoice_id IS NOT NULL
            UNION ALL
            SELECT d.account_id, 'adjustment', d.entry_id, d.invoice_id FROM billing.adjustments d
             WHERE d.invoice_id IS NOT NULL) c
      LEFT JOIN billing.invoices i ON i.invoice_id = c.invoice_id AND i.account_id = c.account_id
      LEFT JOIN billing.ledger l ON l.account_id = c.account_id AND l.entry_id = c.entry_id
     WHERE (only_account IS NULL OR c.account_id = only_account)
       AND (i.invoice_id IS NULL OR l.entry_id IS NULL OR NOT l.postpaid OR l.created_at >= i.ends_at)
;
END $$;

-- Invoice numbers are gapless and unique across all accounts (close_period
-- assigns them under its lock); for billing.verify() of every account.
CREATE OR REPLACE FUNCTION billing._verify_invoice_numbers()
RETURNS TABLE(account_id bigint, problem text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT NULL::bigint, pg_catalog.format('invoice numbers have gaps or repeats: %s invoices, highest number %s',
                                           n.total, n.highest)
      FROM (SELECT pg_catalog.count(*) AS total, COALESCE(pg_catalog.max(i.invoice_number), 0) AS highest,
                   pg_catalog.count(DISTINCT i.invoice_number) AS numbers
              FROM billing.invoices i) n
     WHERE n.total <> n.highest OR n.total <> n.numbers
$$;
-- Credit grants that expire (docs/credits.md). A grant is a 'grant' ledger
-- entry (> 0) and a row of billing.grants; an expiry is an 'expiry' entry
-- (< 0) of the grant. What is left of each grant is not stored: it is
-- derived from the ledger by billing._grant_remainders, the one definition
-- of the consumption order, which balance(), expire_credits() and verify()
-- share. The charge path does nothing for grants.

-- The remainders of account_id's grants, in the order they are used up:
-- the earliest expires_at first (NULL, never, after every expiring grant),
-- at equal expiry promotional before paid, then the older grant; money that
-- is not a grant is used last. Walks the ledger in entry order; a run of
-- debits between two other entries is used up as one. The walk starts at the
-- latest grant before which every grant is spent for good (spent_entry_id,
-- set by expire_credits): there the grants hold nothing and the rest of the
-- money is the sum of the entries before it. from_scratch walks from the
-- account's first grant instead (verify() proves both agree).
-- spent_entry_id is the entry after which the grant is empty, NULL while it
-- has money.
CREATE OR REPLACE FUNCTION billing._grant_remainders(account_id bigint,
                                                    from_scratch boolean DEFAULT false)
RETURNS TABLE(grant_id bigint, remaining_micros bigint, spent_entry_id bigint)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    start_id bigint;
    ids bigint[];
    rems bigint[];
    spent bigint[];
    n integer;
    plain bigint;           -- money that is not a grant; below zero: a debt
    e record;
    k integer;
    d bigint;
    take bigint;
BEGIN
    SELECT s.entry_id INTO start_id
      FROM (SELECT g.entry_id,
                   pg_catalog.max(COALESCE(g.spent_entry_id, 9223372036854775807))
                       OVER (ORDER BY g.entry_id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                       AS spent_before
              FROM billing.grants g WHERE g.account_id = _grant_remainders.account_id) s
     WHERE s.spent_before IS NULL OR (NOT from_scratch AND s.spent_before < s.entry_id)
     ORDER BY s.entry_id DESC LIMIT 1;
    IF start_id IS NULL THEN
        RETURN;
    END IF;

    SELECT pg_catalog.array_agg(g.grant_id ORDER BY g.expires_at NULLS LAST,
                                g.category <> 'promotional', g.grant_id)
      INTO ids
      FROM billing.grants g
     WHERE g.account_id = _grant_remainders.account_id AND g.entry_id >= start_id;
    n := pg_catalog.cardinality(ids);
    rems := pg_catalog.array_fill(0::bigint, ARRAY[n]);
    spent := pg_catalog.array_fill(NULL::bigint, ARRAY[n]);
    SELECT COALESCE(pg_catalog.sum(l.amount_micros), 0)::bigint INTO plain
      FROM billing.ledger l
     WHERE l.account_id = _grant_remainders.account_id AND l.entry_id < start_id;

    FOR e IN
        SELECT pg_catalog.max(s.entry_id) AS last_id, pg_catalog.min(s.kind) AS kind,
               pg_catalog.min(s.grant_id) AS grant_id, pg_catalog.sum(s.amount_micros)::bigint AS amount
          FROM (SELECT l.entry_id, l.kind, l.grant_id, l.amount_micros, x.debit,
                       pg_catalog.count(*) FILTER (WHERE NOT x.debit) OVER (ORDER BY l.entry_id) AS seg
                  FROM billing.ledger l
                 CROSS JOIN LATERAL (SELECT l.amount_micros < 0 AND l.kind <> 'expiry') x(debit)
                 WHERE l.account_id = _grant_remainders.account_id AND l.entry_id >= start_id) s
         GROUP BY s.seg, s.debit ORDER BY s.seg, s.debit
    LOOP
        k := pg_catalog.array_position(ids, e.grant_id);
        IF e.kind IN ('grant', 'expiry') AND k IS NULL THEN
            CONTINUE;           -- an entry of no known grant: verify() reports it
        END IF;
        IF e.kind = 'grant' THEN
            -- a grant posted while the account is in debt covers the debt first
            take := LEAST(e.amount, GREATEST(-plain, 0));
            plain := plain + take;
            rems[k] := e.amount - take;
        ELSIF e.kind = 'expiry' THEN
            rems[k] := rems[k] + e.amount;
        ELSIF e.amount > 0 THEN
            plain := plain + e.amount;
            CONTINUE;
        ELSE
            d := -e.amount;
            FOR i IN 1 .. n LOOP
                EXIT WHEN d = 0;
                IF rems[i] > 0 THEN
                    take := LEAST(rems[i], d);
                    rems[i] := rems[i] - take;
                    d := d - take;
                    IF rems[i] = 0 THEN
                        spent[i] := e.last_id;
                    END IF;
                END IF;
            END LOOP;
            plain := plain - d;
            CONTINUE;
        END IF;
        IF rems[k] = 0 THEN
            spent[k] := e.last_id;
        END IF;
    END LOOP;

    -- the multi-array unnest is FROM-clause syntax and cannot be schema-qualified
    RETURN QUERY SELECT u.g, u.r, u.s FROM unnest(ids, rems, spent) WITH ORDINALITY u(g, r, s, o)
                  ORDER BY u.o;
END $$;

-- balance()'s "credits": the grants with money left that have not expired,
-- in the order they are used up.
CREATE OR REPLACE FUNCTION billing._credits(account_id bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    ids bigint[];
    rems bigint[];
    credits jsonb;
BEGIN
    -- PL/pgSQL, not SQL: Citus plans no SQL function's parameters; the
    -- remainders apart from the query of the grants, which on Citus runs on
    -- the shard, where billing._grant_remainders could not query further
    SELECT pg_catalog.array_agg(r.grant_id ORDER BY r.o), pg_catalog.array_agg(r.remaining_micros ORDER BY r.o)
      INTO ids, rems
      FROM billing._grant_remainders(_credits.account_id) WITH ORDINALITY r(grant_id, remaining_micros, spent_entry_id, o);
    -- the multi-array unnest is FROM-clause syntax and cannot be schema-qualified
    SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'grant_id', g.grant_id, 'category', g.category, 'granted_micros', g.amount_micros,
               'remaining_micros', u.remaining_micros, 'expires_at', g.expires_at) ORDER BY u.o),
           '[]'::jsonb) INTO credits
      FROM unnest(ids, rems) WITH ORDINALITY u(grant_id, remaining_micros, o)
      JOIN billing.grants g ON g.account_id = _credits.account_id AND g.grant_id = u.grant_id
     WHERE u.remaining_micros > 0 AND (g.expires_at IS NULL OR g.expires_at > pg_catalog.now());
    RETURN credits;
END $$;

CREATE OR REPLACE FUNCTION billing.grant_credits(account_id bigint, amount_micros bigint,
                                                 expires_at timestamptz DEFAULT NULL,
                                                 category text DEFAULT 'promotional',
                                                 idempotency_key text DEFAULT NULL,
                                                 reference text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    acct billing.accounts;
    earlier billing.grants;
    new_id bigint;
    entry bigint;
BEGIN
    IF account_id IS NULL OR amount_micros IS NULL OR category IS NULL THEN
        RAISE EXCEPTION 'account_id, amount_micros and category must not be null'
            USING ERRCODE = '22023';
    END IF;
    IF amount_micros <= 0 THEN
        RAISE EXCEPTION 'amount_micros must be positive'
            USING ERRCODE = '22023', DETAIL = pg_catalog.format('Got %s micros.', amount_micros);
    END IF;
    IF category NOT IN ('promotional', 'paid') THEN
        RAISE EXCEPTION 'invalid grant category "%"', category
            USING ERRCODE = '22023', HINT = 'Use "promotional" or "paid".';
    END IF;
    IF pg_catalog.length(idempotency_key) NOT BETWEEN 1 AND 256 THEN
        RAISE EXCEPTION 'idempotency key must have 1 to 256 characters' USING ERRCODE = '22023';
    END IF;

    -- the account row, locked: concurrent grants with one key wait here
    acct := billing._account(account_id, true, true);
    IF acct.billing_type = 'postpaid' THEN
        RAISE EXCEPTION 'account % is postpaid', account_id
            USING ERRCODE = 'PB409', DETAIL = 'Credits are granted to prepaid accounts only.';
    END IF;
    IF idempotency_key IS NOT NULL THEN
        SELECT * INTO earlier FROM billing.grants g
         WHERE g.account_id = grant_credits.account_id AND g.idempotency_key = grant_credits.idempotency_key;
        IF FOUND THEN
            IF earlier.amount_micros <> amount_micros OR earlier.category <> category
               OR earlier.expires_at IS DISTINCT FROM expires_at THEN
                RAISE EXCEPTION 'idempotency key "%" was already used with other parameters', idempotency_key
                    USING ERRCODE = 'PB409',
                          DETAIL = pg_catalog.format('Grant %s was made with this key: %s micros, %s, expiring %s.',
                                                     earlier.grant_id, earlier.amount_micros, earlier.category,
                                                     COALESCE(earlier.expires_at::text, 'never'));
            END IF;
            RETURN earlier.grant_id;
        END IF;
    END IF;
    IF expires_at <= pg_catalog.clock_timestamp() THEN
        RAISE EXCEPTION 'expires_at must be in the future'
            USING ERRCODE = '22023', DETAIL = pg_catalog.format('It is %s.', expires_at);
    END IF;

    new_id := pg_catalog.nextval(pg_catalog.pg_get_serial_sequence('billing.grants', 'grant_id'));
    INSERT INTO billing.ledger (account_id, kind, amount_micros, grant_id, reference)
    VALUES (grant_credits.account_id, 'grant', grant_credits.amount_micros, new_id, grant_credits.reference)
    RETURNING entry_id INTO entry;
    INSERT INTO billing.grants (account_id, grant_id, category, amount_micros, expires_at, entry_id,
                                idempotency_key, reference)
    OVERRIDING SYSTEM VALUE
    VALUES (grant_credits.account_id, new_id, grant_credits.category, grant_credits.amount_micros,
            grant_credits.expires_at, entry, grant_credits.idempotency_key, grant_credits.reference);
    PERFORM billing._adjust_available(account_id, amount_micros);
    PERFORM billing._event(grant_credits.account_id, 'credits_granted',
        pg_catalog.jsonb_build_object('grant_id', new_id, 'entry_id', entry,
                                      'amount_micros', grant_credits.amount_micros,
                                      'category', grant_credits.category,
                                      'expires_at', grant_credits.expires_at,
                                      'reference', grant_credits.reference));
    RETURN new_id;
END $$;

-- Posts an expiry entry for what is left of every grant whose expires_at has
-- passed; returns how many it posted. Accounts are taken one by one in
-- account order, each with every slice locked to commit (the cold paths'
-- exclusive gate), so that two runs expire a grant once and wait for each
-- other rather than deadlock.
CREATE OR REPLACE FUNCTION billing.expire_credits() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    acct bigint;
    settling bigint;
    avail bigint;
    gr record;
    take bigint;
    entry bigint;
    posted integer := 0;
BEGIN
    -- each statement must see what committed before the locks were taken
    PERFORM billing._require_read_committed('expire_credits()');
    FOR acct IN
        SELECT DISTINCT g.account_id
          FROM billing.grants g JOIN billing.accounts a USING (account_id)
         WHERE g.spent_entry_id IS NULL AND g.expires_at <= pg_catalog.clock_timestamp()
           AND a.billing_type = 'prepaid'
         ORDER BY 1
    LOOP
        -- No charge, credit or settlement that moves the available amount is
        -- in flight on the account once every slice is locked. A settlement
        -- that costs exactly its hold moves nothing, so it only holds its
        -- request row: the requests locked right now may post usage before
        -- the expiry entry and commit after it, so their holds are kept back
        -- from every grant; the others are share-locked to commit, so that
        -- none of them settles until this run ends.
        PERFORM billing._adjust_available(acct, 0);
        SELECT (SELECT COALESCE(pg_catalog.sum(r.hold_micros), 0) FROM billing.requests r
                 WHERE r.account_id = acct AND r.status IN ('queued', 'in_progress'))
             - (SELECT COALESCE(pg_catalog.sum(x.hold_micros), 0)
                  FROM (SELECT r.hold_micros FROM billing.requests r
                         WHERE r.account_id = acct AND r.status IN ('queued', 'in_progress')
                         FOR SHARE SKIP LOCKED) x),
               (SELECT COALESCE(pg_catalog.sum(s.available_micros), 0) FROM billing.account_slices s
                 WHERE s.account_id = acct)
          INTO settling, avail;

        FOR gr IN
            SELECT r.grant_id, r.remaining_micros, r.spent_entry_id, x.expires_at
              FROM billing._grant_remainders(acct) WITH ORDINALITY r(grant_id, remaining_micros, spent_entry_id, o)
              JOIN billing.grants x ON x.account_id = acct AND x.grant_id = r.grant_id
             WHERE x.spent_entry_id IS NULL
             ORDER BY r.o
        LOOP
            IF gr.remaining_micros = 0 THEN
                -- empty for good: later derivations can start after it
                UPDATE billing.grants x SET spent_entry_id = gr.spent_entry_id
                 WHERE x.account_id = acct AND x.grant_id = gr.grant_id;
                CONTINUE;
            END IF;
            IF gr.expires_at > pg_catalog.clock_timestamp() OR gr.expires_at IS NULL THEN
                CONTINUE;
            END IF;
            -- never below zero available: the rest at a later run
            take := LEAST(gr.remaining_micros - settling, avail);
            IF take <= 0 THEN
                CONTINUE;
            END IF;
            INSERT INTO billing.ledger (account_id, kind, amount_micros, grant_id)
            VALUES (acct, 'expiry', -take, gr.grant_id)
            RETURNING entry_id INTO entry;
            PERFORM billing._adjust_available(acct, -take);
            PERFORM billing._event(acct, 'credits_expired',
                pg_catalog.jsonb_build_object('grant_id', gr.grant_id, 'entry_id', entry,
                                              'amount_micros', take,
                                              'remaining_micros', gr.remaining_micros - take));
            avail := avail - take;
            posted := posted + 1;
            IF take = gr.remaining_micros THEN
                UPDATE billing.grants x SET spent_entry_id = entry
                 WHERE x.account_id = acct AND x.grant_id = gr.grant_id;
            END IF;
        END LOOP;
    END LOOP;
    RETURN posted;
END $$;

-- verify()'s part for grants: remainders, the bounded walk, expiry entries.
CREATE OR REPLACE FUNCTION billing._verify_grants(only_account bigint)
RETURNS TABLE(account_id bigint, problem text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
-- PL/pgSQL, not SQL: Citus plans no SQL function's parameters
RETURN QUERY
WITH acct AS (
    SELECT DISTINCT g.account_id FROM billing.grants g
     WHERE _verify_grants.only_account IS NULL OR g.account_id = _verify_grants.only_account
), bounded AS (
    SELECT a.account_id, b.grant_id, b.remaining_micros
      FROM acct a CROSS JOIN LATERAL billing._grant_remainders(a.account_id) b
), walk AS (
    SELECT a.account_id, f.grant_id, f.remaining_micros AS full_rem, b.remaining_micros AS bounded_rem
      FROM acct a
     CROSS JOIN LATERAL billing._grant_remainders(a.account_id, true) f
      LEFT JOIN bounded b ON b.account_id = a.account_id AND b.grant_id = f.grant_id
)
SELECT w.account_id, pg_catalog.format('grant %s: remainder %s is outside [0, %s]',
                                       w.grant_id, w.full_rem, g.amount_micros)
  FROM walk w JOIN billing.grants g USING (account_id, grant_id)
 WHERE w.full_rem < 0 OR w.full_rem > g.amount_micros
UNION ALL
SELECT w.account_id, pg_catalog.format('grant %s: remainder %s from its account''s first grant, %s from the last spent one',
                                       w.grant_id, w.full_rem, COALESCE(w.bounded_rem, 0))
  FROM walk w WHERE w.full_rem <> COALESCE(w.bounded_rem, 0)
UNION ALL
SELECT w.account_id, pg_catalog.format('grant %s is marked spent at entry %s but %s micros are left',
                                       w.grant_id, g.spent_entry_id, w.full_rem)
  FROM walk w JOIN billing.grants g USING (account_id, grant_id)
 WHERE g.spent_entry_id IS NOT NULL AND w.full_rem <> 0
UNION ALL
SELECT g.account_id, pg_catalog.format('grant %s has %s grant entries for %s micros, entry %s expected',
                                       g.grant_id, COALESCE(e.n, 0), COALESCE(e.total, 0), g.entry_id)
  FROM billing.grants g JOIN acct USING (account_id)
  LEFT JOIN (SELECT l.account_id, l.grant_id, pg_catalog.count(*) AS n,
                    pg_catalog.sum(l.amount_micros) AS total, pg_catalog.min(l.entry_id) AS entry_id
               FROM billing.ledger l JOIN acct USING (account_id)
              WHERE l.kind = 'grant' GROUP BY 1, 2) e USING (account_id, grant_id)
 WHERE e.n IS DISTINCT FROM 1 OR e.total <> g.amount_micros OR e.entry_id <> g.entry_id
UNION ALL
SELECT l.account_id, pg_catalog.format('ledger entry %s: %s entry of grant %s, which %s',
                                       l.entry_id, l.kind, l.grant_id,
                                       CASE WHEN g.grant_id IS NULL THEN 'does not exist'
                                            WHEN g.expires_at IS NULL THEN 'never expires'
                                            ELSE 'expires at ' || g.expires_at END)
  FROM billing.ledger l
  LEFT JOIN billing.grants g USING (account_id, grant_id)
 WHERE (_verify_grants.only_account IS NULL OR l.account_id = _verify_grants.only_account)
   AND ((l.kind IN ('grant', 'expiry') AND g.grant_id IS NULL)
        OR (l.kind = 'expiry' AND (g.expires_at IS NULL OR l.created_at < g.expires_at)))
UNION ALL
SELECT l.account_id, pg_catalog.format('ledger entry %s: a %s entry linked to grant %s',
                                       l.entry_id, l.kind, l.grant_id)
  FROM billing.ledger l
 WHERE (_verify_grants.only_account IS NULL OR l.account_id = _verify_grants.only_account)
   AND l.grant_id IS NOT NULL AND l.kind NOT IN ('grant', 'expiry');
END $$;
-- Spend limits and balance alerts (docs/limits.md). Admission and settlement
-- against limits, and the alerts' checks after a debit, are in C
-- (limits.c, alerts.c); this file holds the cold parts.

-- The calendar period (day, ISO week, month) in billing.timezone that
-- contains at: [starts_at, ends_at). The one definition of a limit's period.
CREATE OR REPLACE FUNCTION billing._limit_period(period text, at timestamptz,
                                      OUT starts_at timestamptz, OUT ends_at timestamptz)
LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
    SELECT l AT TIME ZONE tz, (l + ('1 ' || period)::interval) AT TIME ZONE tz
      FROM (SELECT billing._setting('billing.timezone') AS tz) s,
           LATERAL (SELECT pg_catalog.date_trunc(period, at AT TIME ZONE s.tz) AS l) t
$$;

-- An instant as billing.timezone shows it, with its offset:
-- 2026-12-02 00:00:00+00, 2026-12-02 00:00:00+05:30.
CREATE OR REPLACE FUNCTION billing._local_time(at timestamptz) RETURNS text
LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.to_char(at AT TIME ZONE tz, 'YYYY-MM-DD HH24:MI:SS')
           || CASE WHEN off < interval '0' THEN '-' ELSE '+' END
           || pg_catalog.to_char(pg_catalog.abs(EXTRACT(HOUR FROM off)), 'FM00')
           || CASE WHEN EXTRACT(MINUTE FROM off) = 0 THEN ''
                   ELSE ':' || pg_catalog.to_char(pg_catalog.abs(EXTRACT(MINUTE FROM off)), 'FM00') END
      FROM (SELECT billing._setting('billing.timezone') AS tz) s,
           LATERAL (SELECT (at AT TIME ZONE s.tz) - (at AT TIME ZONE 'UTC') AS off) o
$$;

-- Holds of the unfinished requests that a limit of scope (NULL: the whole
-- account) applies to, but for request except_request.
CREATE OR REPLACE FUNCTION billing._limit_holds(account_id bigint, scope text, except_request bigint)
RETURNS bigint LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- PL/pgSQL, not SQL: Citus plans no SQL function's parameters
    RETURN (SELECT COALESCE(pg_catalog.sum(r.hold_micros), 0)::bigint FROM billing.requests r
             WHERE r.account_id = _limit_holds.account_id AND r.status IN ('queued', 'in_progress')
               AND (_limit_holds.scope IS NULL OR r.scope = _limit_holds.scope)
               AND r.request_id IS DISTINCT FROM except_request);
END $$;

-- Usage charged since from_ts that a limit of scope applies to (refunds do
-- not give it back): a new limit starts from it.
CREATE OR REPLACE FUNCTION billing._limit_spent(account_id bigint, scope text, from_ts timestamptz)
RETURNS bigint LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- PL/pgSQL, not SQL: Citus plans no SQL function's parameters
    RETURN (SELECT COALESCE(-pg_catalog.sum(l.amount_micros), 0)::bigint
              FROM billing.ledger l
              LEFT JOIN billing.requests r ON r.account_id = l.account_id AND r.request_id = l.request_id
             WHERE l.account_id = _limit_spent.account_id AND l.kind = 'usage'
               AND l.created_at >= from_ts
               AND (_limit_spent.scope IS NULL OR r.scope = _limit_spent.scope));
END $$;

-- balance()'s "limits": each limit in its current period. A period that
-- ended without a request since has spent nothing yet. In PL/pgSQL, each
-- limit's holds apart from the query of the limits: Citus plans no SQL
-- function's parameters, and runs a function of billing's inside a query of
-- the account's tables on the shard, where it could not query further.
CREATE OR REPLACE FUNCTION billing._limits(account_id bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    base jsonb;
    l record;
    held bigint;
    ends timestamptz;
    now_ts timestamptz;
    limits jsonb := '[]';
BEGIN
    -- the limits and their slices in one query of the account's shards
    SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'scope', sl.scope, 'period', sl.period, 'limit_micros', sl.limit_micros,
               'avail', s.avail, 'period_end', s.period_end)
             ORDER BY sl.scope NULLS FIRST, pg_catalog.array_position('{day,week,month}'::text[], sl.period))
      INTO base
      FROM billing.spend_limits sl
     CROSS JOIN LATERAL (SELECT pg_catalog.sum(x.available_micros)::bigint AS avail,
                                pg_catalog.max(x.period_end) AS period_end
                           FROM billing.limit_slices x
                          WHERE x.account_id = sl.account_id AND x.limit_id = sl.limit_id) s
     WHERE sl.account_id = _limits.account_id;
    FOR l IN SELECT * FROM pg_catalog.jsonb_to_recordset(COALESCE(base, '[]'))
                        AS x(scope text, period text, limit_micros bigint, avail bigint, period_end timestamptz)
    LOOP
        held := billing._limit_holds(_limits.account_id, l.scope, NULL);
        now_ts := pg_catalog.clock_timestamp();
        SELECT p.ends_at INTO ends FROM billing._limit_period(l.period, now_ts) p;
        limits := limits || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
            'scope', l.scope, 'period', l.period, 'limit_micros', l.limit_micros,
            'spent_micros', CASE WHEN l.period_end > now_ts THEN l.limit_micros - l.avail - held ELSE 0 END,
            'held_micros', held,
            'remaining_micros', GREATEST(CASE WHEN l.period_end > now_ts THEN l.avail
                                              ELSE l.limit_micros - held END, 0),
            'resets_at', CASE WHEN l.period_end > now_ts THEN l.period_end ELSE ends END));
    END LOOP;
    RETURN limits;
END $$;

CREATE OR REPLACE FUNCTION billing.set_spend_limit(account_id bigint, limit_micros bigint,
                                        period text DEFAULT 'month', scope text DEFAULT NULL)
RETURNS void LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_set_spend_limit';

-- Replaces the account's alert thresholds. Each starts armed when the
-- available amount is at or above it; one set while the amount is already
-- below fires at once (and waits to be re-armed).
CREATE OR REPLACE FUNCTION billing.set_balance_alerts(account_id bigint, thresholds_micros bigint[])
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    available bigint;
    t bigint;
BEGIN
    IF account_id IS NULL THEN
        RAISE EXCEPTION 'account_id must not be null' USING ERRCODE = '22023';
    END IF;
    IF thresholds_micros IS NULL THEN
        RAISE EXCEPTION 'thresholds_micros must not be null'
            USING ERRCODE = '22023', HINT = 'Use an empty array for no alerts.';
    END IF;
    IF pg_catalog.array_ndims(thresholds_micros) > 1 THEN
        RAISE EXCEPTION 'thresholds_micros must be a one-dimensional array' USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT FROM pg_catalog.unnest(thresholds_micros) u(v) WHERE u.v IS NULL OR u.v < 0) THEN
        RAISE EXCEPTION 'alert thresholds must be zero or positive'
            USING ERRCODE = '22023', DETAIL = 'Thresholds are amounts in micros; NULL is not one.';
    END IF;
    IF (SELECT pg_catalog.count(DISTINCT u.v) <> pg_catalog.count(*)
          FROM pg_catalog.unnest(thresholds_micros) u(v)) THEN
        RAISE EXCEPTION 'alert thresholds must be distinct' USING ERRCODE = '22023';
    END IF;
    PERFORM billing._account(set_balance_alerts.account_id, false, true);
    -- under the account's exclusive gate: an admission in flight commits
    -- first and is counted here, a later one sees the alerts (ledger.h,
    -- account_has_alerts)
    available := billing._lock_available(set_balance_alerts.account_id);
    DELETE FROM billing.balance_alerts b WHERE b.account_id = set_balance_alerts.account_id;
    INSERT INTO billing.balance_alerts (account_id, threshold_micros, armed)
    SELECT set_balance_alerts.account_id, u.v, available >= u.v
      FROM pg_catalog.unnest(thresholds_micros) u(v);
    FOR t IN SELECT u.v FROM pg_catalog.unnest(thresholds_micros) u(v) WHERE available < u.v ORDER BY u.v
    LOOP
        PERFORM billing._event(set_balance_alerts.account_id, 'balance_alert',
            pg_catalog.jsonb_build_object('threshold_micros', t, 'available_micros', available));
    END LOOP;
END $$;

-- Whether an account has limits or alerts is cached with the account
-- (ledger.c), and the limits that apply to a scope with the limits
-- (limits.c): adding, removing or changing them drops the caches.
CREATE OR REPLACE TRIGGER spend_limits_changed
    AFTER INSERT OR UPDATE OF limit_micros OR DELETE OR TRUNCATE ON billing.spend_limits
    FOR EACH STATEMENT EXECUTE FUNCTION billing._cache_changed();
CREATE OR REPLACE TRIGGER balance_alerts_changed AFTER INSERT OR DELETE OR TRUNCATE ON billing.balance_alerts
    FOR EACH STATEMENT EXECUTE FUNCTION billing._cache_changed();
-- Usage reports and statements (docs/reports.md). Reports read the rollup
-- (billing.usage_rollup, quarter-hour sums brought up to date by
-- billing.rollup_usage) and the ledger entries it has not taken in yet, so
-- that they are exact for every committed transaction without the charge
-- path writing anything for them.

-- The quarter hour an instant falls in. Every time zone of today's tz
-- database is a whole number of quarter hours off UTC, so a day or a month
-- in billing.timezone is a run of whole slots; usage() reads the raw ledger
-- for a slot that a bucket boundary cuts (historic offsets).
CREATE OR REPLACE FUNCTION billing._usage_slot(at timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN pg_catalog.date_bin('15 minutes', at, '2000-01-01 00:00:00+00');

-- The facts a report sums: usage and refund entries of the ledger with
-- their request's model, executing provider and scope. One definition
-- shared by rollup_usage, usage and verify, which filter it by account,
-- entry ids and time. A view: the planner (and Citus, which plans no SQL
-- function that queries a distributed table) sees through it to the
-- ledger's indexes. A request is joined by its account too, which routes
-- a report of one account to that account's shard on Citus.
CREATE OR REPLACE VIEW billing._usage_facts AS
    SELECT l.account_id, l.entry_id, l.created_at, q.model,
           COALESCE(q.routing ->> 'provider', q.provider) AS provider, q.scope,
           (l.kind = 'usage')::integer AS requests,
           CASE WHEN l.kind = 'usage' THEN -l.amount_micros ELSE 0 END AS cost_micros,
           CASE WHEN l.kind = 'refund' THEN l.amount_micros ELSE 0 END AS refunded_micros
      FROM billing.ledger l
      LEFT JOIN billing.requests q ON q.account_id = l.account_id AND q.request_id = l.request_id
     WHERE l.kind IN ('usage', 'refund');

-- Whether the role that called a SECURITY DEFINER function is an admin:
-- the role set with SET ROLE, else the session's.
CREATE OR REPLACE FUNCTION billing._caller_is_admin() RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN pg_catalog.pg_has_role(
    CASE pg_catalog.current_setting('role') WHEN 'none' THEN SESSION_USER
         ELSE pg_catalog.current_setting('role')::name END,
    'billing_admin', 'MEMBER');

-- The common refusals of usage() and statement(): a window is two instants,
-- from_ts not after to_ts; an account that does not exist is PB404.
CREATE OR REPLACE FUNCTION billing._report_window(account_id bigint, from_ts timestamptz,
                                                  to_ts timestamptz) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF from_ts IS NULL OR to_ts IS NULL THEN
        RAISE EXCEPTION 'from_ts and to_ts are required'
            USING ERRCODE = '22023',
                  HINT = 'Give a window of two instants; ''-infinity'' and ''infinity'' are allowed.';
    END IF;
    IF from_ts > to_ts THEN
        RAISE EXCEPTION 'from_ts % is after to_ts %', from_ts, to_ts USING ERRCODE = '22023';
    END IF;
    IF account_id IS NOT NULL THEN
        PERFORM billing._account(account_id, false, false);
    END IF;
END $$;

CREATE OR REPLACE FUNCTION billing.usage(account_id bigint, from_ts timestamptz,
                                         to_ts timestamptz,
                                         group_by text[] DEFAULT '{day,model}')
RETURNS TABLE(bucket_start timestamptz, model text, provider text, scope text,
              requests bigint, cost_micros bigint, refunded_micros bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
-- short index-range queries whose cost estimates over a large ledger would
-- otherwise start JIT compilation, slower than the query itself
SET jit = off AS $$
DECLARE
    tz text := billing._setting('billing.timezone');
    unit text;
    word text;
    horizon bigint;
    lo timestamptz;
    hi timestamptz;
BEGIN
    IF group_by IS NULL OR array_position(group_by, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'group_by cannot be null or contain null'
            USING ERRCODE = '22023', HINT = 'Use ''{}'' for one row of totals.';
    END IF;
    FOREACH word IN ARRAY group_by LOOP
        IF word NOT IN ('hour', 'day', 'month', 'model', 'provider', 'scope') THEN
            RAISE EXCEPTION 'unknown grouping "%"', word
                USING ERRCODE = '22023',
                      HINT = 'Group by any of hour, day, month, model, provider and scope.';
        END IF;
        IF word IN ('hour', 'day', 'month') THEN
            IF unit IS NOT NULL AND unit <> word THEN
                RAISE EXCEPTION 'group_by names two time buckets, % and %', unit, word
                    USING ERRCODE = '22023', HINT = 'Group by at most one of hour, day and month.';
            END IF;
            unit := word;
        END IF;
    END LOOP;
    IF usage.account_id IS NULL AND NOT billing._caller_is_admin() THEN
        RAISE EXCEPTION 'permission denied to report the usage of every account'
            USING ERRCODE = '42501', HINT = 'Name an account, or ask a billing_admin.';
    END IF;
    IF usage.account_id IS NULL AND billing._distributed() THEN
        RAISE EXCEPTION 'billing.usage() of every account is not supported on Citus'
            USING ERRCODE = '0A000',
                  DETAIL = 'A report of every account would read every shard from inside a call delegated to one worker.',
                  HINT = 'Ask for each account''s usage (docs/citus.md).';
    END IF;
    PERFORM billing._report_window(usage.account_id, from_ts, to_ts);

    SELECT s.rolled_up_to INTO horizon FROM billing.rollup_state s;
    -- [lo, hi): the whole slots of the window. The rollup is read for the
    -- slots in it that no bucket boundary cuts; the ledger for the edges of
    -- the window, the cut slots (gaps) and every entry after the horizon.
    lo := CASE WHEN from_ts = '-infinity' THEN from_ts
               ELSE billing._usage_slot(from_ts + interval '15 minutes' - interval '1 microsecond') END;
    hi := CASE WHEN to_ts = 'infinity' THEN to_ts ELSE billing._usage_slot(to_ts) END;
    IF lo >= hi THEN
        lo := from_ts;
        hi := from_ts;
    END IF;
    -- EXECUTE plans with the values, so that an account's report reads its
    -- own index ranges; the account is written into the query, which Citus
    -- then routes to the account's shard (a parameter it would not).
    RETURN QUERY EXECUTE pg_catalog.replace($q$
    WITH slots AS MATERIALIZED (
        SELECT r.*, $4 IS NOT NULL
                    AND pg_catalog.date_trunc($4, r.slot_start, $5)
                        <> pg_catalog.date_trunc($4, r.slot_start + interval '15 minutes'
                                                     - interval '1 microsecond', $5) AS cut
          FROM billing.usage_rollup r
         WHERE ({account} IS NULL OR r.account_id = {account}) AND r.slot_start >= $7 AND r.slot_start < $8
    ), gaps AS (
        SELECT g.r FROM (SELECT pg_catalog.tstzrange($1, $7)
                         UNION ALL SELECT pg_catalog.tstzrange($8, $2)
                         UNION SELECT pg_catalog.tstzrange(s.slot_start, s.slot_start + interval '15 minutes')
                                 FROM slots s WHERE s.cut) g(r)
         WHERE NOT pg_catalog.isempty(g.r)
    ), facts AS (
        SELECT r.slot_start AS at, r.model, r.provider, r.scope,
               r.requests, r.cost_sum AS cost_micros, r.refunded_sum AS refunded_micros
          FROM slots r WHERE NOT r.cut
        UNION ALL
        SELECT f.created_at, f.model, f.provider, f.scope, f.requests, f.cost_micros, f.refunded_micros
          FROM billing._usage_facts f
         WHERE ({account} IS NULL OR f.account_id = {account}) AND f.entry_id > $3
           AND f.created_at >= $1 AND f.created_at < $2
        UNION ALL
        SELECT f.created_at, f.model, f.provider, f.scope, f.requests, f.cost_micros, f.refunded_micros
          FROM gaps g CROSS JOIN LATERAL
               -- OFFSET 0: one index range per gap, not a join of the account's entries
               (SELECT * FROM billing._usage_facts f
                 WHERE ({account} IS NULL OR f.account_id = {account}) AND f.entry_id <= $3
                   AND f.created_at >= pg_catalog.lower(g.r) AND f.created_at < pg_catalog.upper(g.r)
                OFFSET 0) f
    )
    SELECT CASE WHEN $4 IS NOT NULL THEN pg_catalog.date_trunc($4, f.at, $5) END,
           CASE WHEN 'model' = ANY ($6) THEN f.model END,
           CASE WHEN 'provider' = ANY ($6) THEN f.provider END,
           CASE WHEN 'scope' = ANY ($6) THEN f.scope END,
           pg_catalog.sum(f.requests)::bigint, pg_catalog.sum(f.cost_micros)::bigint,
           pg_catalog.sum(f.refunded_micros)::bigint
      FROM facts f
     GROUP BY 1, 2, 3, 4
     ORDER BY 1, 2, 3, 4
    $q$, '{account}', COALESCE(usage.account_id::text, 'NULL::bigint'))
    USING from_ts, to_ts, horizon, unit, tz, group_by, lo, hi;
END $$;

CREATE OR REPLACE FUNCTION billing.statement(account_id bigint, from_ts timestamptz,
                                             to_ts timestamptz)
RETURNS TABLE(entry_id bigint, created_at timestamptz, kind text, amount_micros bigint,
              balance_after_micros bigint, request_id bigint, model text, reference text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off AS $$
BEGIN
    IF statement.account_id IS NULL THEN
        RAISE EXCEPTION 'account_id is required' USING ERRCODE = '22023';
    END IF;
    PERFORM billing._report_window(statement.account_id, from_ts, to_ts);
    -- The entries of the window form runs of consecutive entries of the
    -- account (one run, unless a clock time fell out of order): each run
    -- starts from the balance before it (a checkpoint and the entries since)
    -- and adds up its own entries.
    -- The account is written into the query, which Citus then routes to the
    -- account's shard (a parameter it would not).
    RETURN QUERY EXECUTE pg_catalog.replace($q$
    WITH w AS (
        SELECT l.entry_id, l.created_at, l.kind, l.amount_micros, l.request_id, l.reference,
               pg_catalog.lag(l.entry_id) OVER (ORDER BY l.entry_id) AS prev
          FROM billing.ledger l
         WHERE l.account_id = {account} AND l.created_at >= $1 AND l.created_at < $2
    ), r AS (
        SELECT w.*, pg_catalog.count(*) FILTER (
                        WHERE w.prev IS NULL OR EXISTS (
                            SELECT FROM billing.ledger x
                             WHERE x.account_id = {account}
                               AND x.entry_id > w.prev AND x.entry_id < w.entry_id))
                        OVER (ORDER BY w.entry_id) AS run
          FROM w
    ), b AS (
        SELECT r.*, (pg_catalog.first_value(r.entry_id) OVER runs) AS run_start,
               pg_catalog.sum(r.amount_micros) OVER (runs ROWS UNBOUNDED PRECEDING) AS run_sum
          FROM r WINDOW runs AS (PARTITION BY r.run ORDER BY r.entry_id)
    ), s AS MATERIALIZED (
        -- once per run, not per entry: the balance before the run is the
        -- latest checkpoint before it and the entries since
        SELECT x.run_start,
               COALESCE(k.balance_micros, 0) + COALESCE((
                   SELECT pg_catalog.sum(l.amount_micros) FROM billing.ledger l
                    WHERE l.account_id = {account}
                      AND l.entry_id > COALESCE(k.entry_id, 0) AND l.entry_id < x.run_start
                      -- the row comparison repeats the lower bound in a form
                      -- only the primary key serves: the planner cannot tell
                      -- how few of the account's entries lie in the range,
                      -- and would read them all through the (account_id,
                      -- created_at) index
                      AND (l.account_id, l.entry_id) > ({account}, COALESCE(k.entry_id, 0))), 0)
               AS balance_micros
          FROM (SELECT DISTINCT b.run_start FROM b) x
          LEFT JOIN LATERAL (
              SELECT k.entry_id, k.balance_micros FROM billing.ledger_checkpoints k
               WHERE k.account_id = {account} AND k.entry_id < x.run_start
               ORDER BY k.entry_id DESC LIMIT 1) k ON true
    )
    SELECT b.entry_id, b.created_at, b.kind, b.amount_micros,
           (s.balance_micros + b.run_sum)::bigint, b.request_id,
           -- a lookup per entry: a page never joins the whole requests table
           (SELECT q.model FROM billing.requests q
             WHERE q.account_id = {account} AND q.request_id = b.request_id),
           b.reference
      FROM b JOIN s USING (run_start)
     ORDER BY b.entry_id
    $q$, '{account}', statement.account_id::text) USING from_ts, to_ts;
END $$;

-- Folds the ledger into usage_rollup and ledger_checkpoints up to a horizon
-- below which every entry is committed or gone: entry ids are taken from a
-- sequence before the entry commits, so an id below the sequence's last
-- value may still be in flight. The horizon is a last value (candidate)
-- taken while some transactions ran; once all of them have ended (and no
-- transaction prepared before it is left), nothing at or below it can
-- appear any more. Safe to run concurrently (the state row serializes the
-- runs) and from pg_cron; returns the number of entries taken in.
CREATE OR REPLACE FUNCTION billing.rollup_usage() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    st billing.rollup_state;
    upto bigint;
    taken bigint := 0;
    n bigint;
BEGIN
    IF billing._distributed() THEN
        RAISE EXCEPTION 'billing.rollup_usage() is not supported on Citus'
            USING ERRCODE = '0A000',
                  DETAIL = 'Its horizon is one server''s: the last entry id of one sequence and the transactions of one node.',
                  HINT = 'Reports read the ledger itself on Citus (docs/citus.md).';
    END IF;
    -- an older snapshot would miss entries that committed after it began
    PERFORM billing._require_read_committed('billing.rollup_usage()');
    SELECT * INTO st FROM billing.rollup_state FOR UPDATE;
    FOR pass IN 1 .. 2 LOOP
        -- a candidate of an earlier run (pass 1), or the one just taken (pass 2)
        IF st.candidate IS NOT NULL
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_locks k
                            WHERE k.locktype = 'virtualxid' AND k.granted
                              AND k.virtualxid = ANY (st.candidate_vxids))
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_prepared_xacts p
                            WHERE p.prepared <= st.candidate_at) THEN
            upto := st.candidate;
            WITH f AS (
                SELECT l.account_id, billing._usage_slot(l.created_at) AS slot_start, l.model,
                       l.provider, l.scope, pg_catalog.sum(l.requests)::bigint AS requests,
                       pg_catalog.sum(l.cost_micros) AS cost_micros,
                       pg_catalog.sum(l.refunded_micros) AS refunded_micros
                  FROM billing._usage_facts l
                 WHERE l.entry_id > st.rolled_up_to AND l.entry_id <= upto
                 GROUP BY 1, 2, 3, 4, 5)
            INSERT INTO billing.usage_rollup AS r
            SELECT * FROM f
            ON CONFLICT (account_id, slot_start, model, provider, scope) DO UPDATE
               SET requests = r.requests + excluded.requests,
                   cost_sum = r.cost_sum + excluded.cost_sum,
                   refunded_sum = r.refunded_sum + excluded.refunded_sum;
            -- a checkpoint at every 1024th entry of an account since its last one
            WITH a AS (
                SELECT DISTINCT l.account_id FROM billing.ledger l
                 WHERE l.entry_id > st.rolled_up_to AND l.entry_id <= upto),
            c AS (
                SELECT a.account_id, COALESCE(k.entry_id, 0) AS entry_id,
                       COALESCE(k.balance_micros, 0) AS balance_micros
                  FROM a LEFT JOIN LATERAL (
                      SELECT k.entry_id, k.balance_micros FROM billing.ledger_checkpoints k
                       WHERE k.account_id = a.account_id ORDER BY k.entry_id DESC LIMIT 1) k ON true),
            e AS (
                SELECT l.account_id, l.entry_id,
                       c.balance_micros + pg_catalog.sum(l.amount_micros) OVER w AS balance_micros,
                       pg_catalog.row_number() OVER w AS n
                  FROM c JOIN billing.ledger l
                    ON l.account_id = c.account_id AND l.entry_id > c.entry_id AND l.entry_id <= upto
                WINDOW w AS (PARTITION BY l.account_id ORDER BY l.entry_id))
            INSERT INTO billing.ledger_checkpoints
            SELECT e.account_id, e.entry_id, e.balance_micros FROM e WHERE e.n % 1024 = 0;
            SELECT pg_catalog.count(*) INTO n FROM billing.ledger l
             WHERE l.entry_id > st.rolled_up_to AND l.entry_id <= upto;
            taken := taken + n;
            st.rolled_up_to := upto;
            st.candidate := NULL;
            st.rolled_up_at := pg_catalog.clock_timestamp();
        END IF;
        EXIT WHEN pass = 2 OR st.candidate IS NOT NULL;
        -- the next candidate: the last id handed out, and who might hold one
        st.candidate := COALESCE(pg_catalog.pg_sequence_last_value(
                            pg_catalog.pg_get_serial_sequence('billing.ledger', 'entry_id')::regclass),
                            0);
        st.candidate_at := pg_catalog.clock_timestamp();
        SELECT COALESCE(pg_catalog.array_agg(k.virtualxid), '{}') INTO st.candidate_vxids
          FROM pg_catalog.pg_locks k
         WHERE k.locktype = 'virtualxid' AND k.granted AND k.mode = 'ExclusiveLock'
           AND k.pid <> pg_catalog.pg_backend_pid();
        IF st.candidate <= st.rolled_up_to THEN
            st.candidate := NULL;
            EXIT;
        END IF;
    END LOOP;
    UPDATE billing.rollup_state
       SET rolled_up_to = st.rolled_up_to, candidate = st.candidate,
           candidate_vxids = st.candidate_vxids, candidate_at = st.candidate_at,
           rolled_up_at = st.rolled_up_at;
    RETURN taken;
END $$;

-- The invariants of reports, for billing.verify(): the rollup holds exactly
-- the ledger's facts up to its horizon, and each checkpoint the sum of its
-- account's entries up to it.
CREATE OR REPLACE FUNCTION billing._verify_reports(account_id bigint)
RETURNS TABLE(account_id bigint, problem text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    WITH h AS (SELECT s.rolled_up_to FROM billing.rollup_state s),
    l AS (
        SELECT f.account_id, billing._usage_slot(f.created_at) AS slot_start, f.model,
               f.provider, f.scope, sum(f.requests) AS requests,
               sum(f.cost_micros) AS cost_micros, sum(f.refunded_micros) AS refunded_micros
          FROM h, billing._usage_facts f
         WHERE (_verify_reports.account_id IS NULL OR f.account_id = _verify_reports.account_id)
           AND f.entry_id <= h.rolled_up_to
         GROUP BY 1, 2, 3, 4, 5),
    r AS (
        SELECT r.* FROM billing.usage_rollup r
         WHERE _verify_reports.account_id IS NULL OR r.account_id = _verify_reports.account_id)
    SELECT COALESCE(l.account_id, r.account_id),
           format('usage rollup at %s for model %s, provider %s, scope %s: %s requests, %s cost, %s refunded'
                  ' but the ledger has %s, %s, %s',
                  COALESCE(l.slot_start, r.slot_start), COALESCE(l.model, r.model),
                  COALESCE(l.provider, r.provider), COALESCE(l.scope, r.scope),
                  COALESCE(r.requests, 0), COALESCE(r.cost_sum, 0), COALESCE(r.refunded_sum, 0),
                  COALESCE(l.requests, 0), COALESCE(l.cost_micros, 0), COALESCE(l.refunded_micros, 0))
      FROM l FULL JOIN r
        ON r.account_id = l.account_id AND r.slot_start = l.slot_start
       AND r.model IS NOT DISTINCT FROM l.model AND r.provider IS NOT DISTINCT FROM l.provider
       AND r.scope IS NOT DISTINCT FROM l.scope
     WHERE (r.requests, r.cost_sum, r.refunded_sum)
           IS DISTINCT FROM (l.requests, l.cost_micros, l.refunded_micros)
    UNION ALL
    SELECT c.account_id,
           format('checkpoint at entry %s holds balance %s, the entries up to it total %s%s',
                  c.entry_id, c.balance_micros, t.total,
                  CASE WHEN c.entry_id > h.rolled_up_to THEN ' (and it is past the rollup)' ELSE '' END)
      FROM h, billing.ledger_checkpoints c
      -- one pass over each account's entries, not one sum per checkpoint
      LEFT JOIN (SELECT e.account_id, e.entry_id,
                        sum(e.amount_micros) OVER (PARTITION BY e.account_id ORDER BY e.entry_id) AS total
                   FROM billing.ledger e
                  WHERE e.account_id IN (SELECT k.account_id FROM billing.ledger_checkpoints k)
                    AND (_verify_reports.account_id IS NULL OR e.account_id = _verify_reports.account_id)) t
        ON t.account_id = c.account_id AND t.entry_id = c.entry_id
     WHERE (_verify_reports.account_id IS NULL OR c.account_id = _verify_reports.account_id)
       AND (t.total IS DISTINCT FROM c.balance_micros OR c.entry_id > h.rolled_up_to);
END;
-- billing on a Citus cluster (docs/citus.md). Nothing here runs on plain
-- PostgreSQL: billing.citus_setup() refuses to run without Citus.

-- Whether billing's tables are distributed (billing.citus_setup() ran).
CREATE OR REPLACE FUNCTION billing._distributed() RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    distributed boolean := false;
BEGIN
    IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
        EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                                 WHERE logicalrelid = ''billing.accounts''::pg_catalog.regclass)'
           INTO distributed;
    END IF;
    RETURN distributed;
END $$;

-- Once a table is distributed its rows are in the shards; the table's own
-- copy, invisible, would only take disk space. Truncated with billing's
-- triggers off (they refuse a TRUNCATE of the ledger or of prices).
CREATE OR REPLACE FUNCTION billing._citus_truncate_local(t regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET session_replication_role = replica AS $$
BEGIN
    PERFORM pg_catalog.truncate_local_data_after_distributing_table(t);
END $$;

-- Distributes billing on the cluster of this coordinator: every table of one
-- account's rows by account_id, all co-located with billing.accounts; the
-- catalog and the external ids as reference tables (a copy on every node);
-- each node's id sequences in a range of their own; every public function
-- whose first argument is an account_id delegated to the account's worker.
-- Run again after adding a worker: what is done already is left as it is.
CREATE OR REPLACE FUNCTION billing.citus_setup() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t regclass;
    fn regprocedure;
    fkeys text[];
    drops text[];
    cmd text;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'citus') THEN
        RAISE EXCEPTION 'billing.citus_setup() needs the citus extension'
            USING ERRCODE = '0A000', HINT = 'Run CREATE EXTENSION citus first, on every node.';
    END IF;
    IF NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = CURRENT_USER) THEN
        RAISE EXCEPTION 'billing.citus_setup() must be run by a superuser' USING ERRCODE = '42501';
    END IF;
    IF (SELECT groupid FROM pg_catalog.pg_dist_local_group) <> 0 THEN
        RAISE EXCEPTION 'billing.citus_setup() must be run on the coordinator' USING ERRCODE = '0A000';
    END IF;
    -- billing's triggers only touch the rows of the account whose row fired
    -- them, and those are on the same node (co-location)
    PERFORM pg_catalog.set_config('citus.enable_unsafe_triggers', 'on', true);
    -- foreign keys to reference tables are made over one connection a node
    PERFORM pg_catalog.set_config('citus.multi_shard_modify_mode', 'sequential', true);

    -- Foreign keys between billing's tables are set aside while the tables
    -- are distributed (Citus would convert the tables on either side of
    -- one first) and made again on the distributed tables, on every node.
    SELECT pg_catalog.array_agg(pg_catalog.format('ALTER TABLE %s ADD CONSTRAINT %I %s',
                                                  k.conrelid::regclass, k.conname, pg_catalog.pg_get_constraintdef(k.oid))),
           pg_catalog.array_agg(pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', k.conrelid::regclass, k.conname))
      INTO fkeys, drops
      FROM pg_catalog.pg_constraint k
      JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
     WHERE k.contype = 'f' AND c.relnamespace = 'billing'::regnamespace
       AND NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = k.conrelid);
    FOREACH cmd IN ARRAY COALESCE(drops, '{}') LOOP
        -- the workers' copies of the tables (their CREATE EXTENSION) too
        EXECUTE cmd;
        PERFORM pg_catalog.run_command_on_workers(cmd);
    END LOOP;

    -- 1. reference tables: the tables without an account_id, and the
    -- external ids, unique across the cluster
    FOR t IN
        SELECT c.oid::regclass FROM pg_catalog.pg_class c
         WHERE c.relnamespace = 'billing'::regnamespace AND c.relkind = 'r'
           AND (c.relname = 'external_ids'
                OR NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a
                                WHERE a.attrelid = c.oid AND a.attname = 'account_id' AND NOT a.attisdropped))
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = c.oid)
         ORDER BY c.relname = 'models' DESC, c.relname
    LOOP
        PERFORM pg_catalog.create_reference_table(t);
        PERFORM billing._citus_truncate_local(t);
    END LOOP;

    -- 2. the tables of one account's rows, accounts first
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition WHERE logicalrelid = 'billing.accounts'::regclass) THEN
        PERFORM pg_catalog.create_distributed_table('billing.accounts', 'account_id', colocate_with => 'none');
        PERFORM billing._citus_truncate_local('billing.accounts');
    END IF;
    FOR t IN
        SELECT c.oid::regclass FROM pg_catalog.pg_class c
         WHERE c.relnamespace = 'billing'::regnamespace AND c.relkind = 'r'
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = c.oid)
         ORDER BY c.relname
    LOOP
        PERFORM pg_catalog.create_distributed_table(t, 'account_id', colocate_with => 'billing.accounts');
        PERFORM billing._citus_truncate_local(t);
    END LOOP;
    FOREACH cmd IN ARRAY COALESCE(fkeys, '{}') LOOP
        EXECUTE cmd;
    END LOOP;

    -- 3. ids unique cluster-wide: the sequences of node group g give ids
    -- from g * 2^48 + 1 (the coordinator is group 0), as Citus does for the
    -- sequences it propagates itself
    PERFORM pg_catalog.run_command_on_all_nodes($cmd$
        DO $do$
        DECLARE
            g bigint := (SELECT groupid FROM pg_catalog.pg_dist_local_group);
            s record;
        BEGIN
            FOR s IN SELECT schemaname, sequencename, last_value FROM pg_catalog.pg_sequences
                      WHERE schemaname = 'billing' AND sequencename <> 'event_node' LOOP
                IF COALESCE(s.last_value, 0) < g << 48 THEN
                    PERFORM pg_catalog.setval(pg_catalog.format('%I.%I', s.schemaname, s.sequencename),
                                              g << 48, true);
                END IF;
            END LOOP;
        END $do$
    $cmd$);

    -- 4. event ids: each node's group in billing.event_node (docs/events.md);
    -- the base starts at 0 and billing.events_after raises it on a node
    -- that lags behind the others
    IF (SELECT pg_catalog.max(groupid) FROM pg_catalog.pg_dist_node) > 63 THEN
        RAISE EXCEPTION 'billing on Citus supports node groups 0 to 63'
            USING ERRCODE = '0A000', DETAIL = 'Event ids hold the node group in 6 bits.';
    END IF;
    PERFORM pg_catalog.run_command_on_all_nodes($cmd$
        SELECT pg_catalog.setval('billing.event_node', g.groupid, true)
          FROM billing.event_node s, pg_catalog.pg_dist_local_group g WHERE NOT s.is_called
    $cmd$);

    -- 5. calls keyed by an account run on its worker, in a transaction
    -- block too (force_delegation). Not billing.verify, whose account may be
    -- NULL (all of them; Citus would push a NULL down to some worker).
    FOR fn IN
        SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
         WHERE p.pronamespace = 'billing'::regnamespace AND p.prokind = 'f'
           AND p.proname !~ '^_' AND p.proname <> 'verify' AND p.pronargs > 0
           AND p.proargtypes[0] = 'bigint'::regtype AND p.proargnames[1] = 'account_id'
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_dist_object o
                            WHERE o.classid = 'pg_catalog.pg_proc'::regclass AND o.objid = p.oid
                              AND o.distribution_argument_index IS NOT NULL)
    LOOP
        PERFORM pg_catalog.create_distributed_function(fn, '$1', colocate_with => 'billing.accounts',
                                                       force_delegation => true);
    END LOOP;
END $$;

-- Removes billing's tables from the cluster, data included, so that DROP
-- EXTENSION billing leaves nothing behind: the shards of every billing table
-- on every node and their Citus metadata, as Citus does when it drops a
-- distributed table (DROP EXTENSION alone would leave the shards on the
-- workers, and the shards of the reference tables keep triggers that name
-- billing's functions). Superuser, on the coordinator. To leave Citus with
-- the data, copy it out first (docs/citus.md).
CREATE OR REPLACE FUNCTION billing.citus_drop() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t record;
BEGIN
    IF NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = CURRENT_USER) THEN
        RAISE EXCEPTION 'billing.citus_drop() must be run by a superuser' USING ERRCODE = '42501';
    END IF;
    IF NOT billing._distributed() THEN
        RETURN;
    END IF;
    FOR t IN SELECT p.logicalrelid AS relid, c.relname
               FROM pg_catalog.pg_dist_partition p JOIN pg_catalog.pg_class c ON c.oid = p.logicalrelid
              WHERE c.relnamespace = 'billing'::regnamespace ORDER BY c.relname LOOP
        PERFORM pg_catalog.master_remove_distributed_table_metadata_from_workers(t.relid, 'billing', t.relname);
        PERFORM pg_catalog.citus_drop_all_shards(t.relid, 'billing', t.relname, drop_shards_metadata_only => false);
        PERFORM pg_catalog.master_remove_partition_metadata(t.relid, 'billing', t.relname);
    END LOOP;
END $$;
-- billing.verify(): every invariant of the data model, the invoices' included
-- (so it is installed after invoice.sql).

-- Every invariant of the data model; no rows means all hold. In SQL around
-- PL/pgSQL: a PL/pgSQL function's argument cannot share the name of its
-- result column account_id, and Citus plans no SQL function's parameters.
CREATE OR REPLACE FUNCTION billing.verify(account_id bigint DEFAULT NULL)
RETURNS TABLE(account_id bigint, problem text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM billing._verify(verify.account_id)
$$;

-- VOLATILE for the SET LOCAL on Citus; each account's checks see one snapshot.
CREATE OR REPLACE FUNCTION billing._verify(only_account bigint)
RETURNS TABLE(account_id bigint, problem text)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    one bigint;
BEGIN
    IF NOT billing._distributed() THEN
        RETURN QUERY SELECT * FROM billing._verify_checks(only_account);
        RETURN QUERY SELECT * FROM billing._verify_reports(only_account);
    ELSE
        -- (usage reports are not on Citus yet, docs/citus.md)
        -- On Citus, one account at a time, so that every query goes to the
        -- account's shard. The checks call functions of billing's inside
        -- queries of the account's tables, which then run on the shard and
        -- query the same account's shards there: allowed for this
        -- transaction, on every node (SET LOCAL is propagated).
        SET LOCAL citus.propagate_set_commands = 'local';
        SET LOCAL citus.allow_nested_distributed_execution = on;
        FOR one IN SELECT a.account_id FROM billing.accounts a
                    WHERE only_account IS NULL OR a.account_id = only_account ORDER BY 1 LOOP
            RETURN QUERY SELECT * FROM billing._verify_checks(one);
        END LOOP;
        RESET citus.allow_nested_distributed_execution;
    END IF;
    IF only_account IS NULL THEN
        RETURN QUERY SELECT * FROM billing._verify_invoice_numbers();
    END IF;
END $$;

-- The invariants of one account, or of all (only_account NULL), but for
-- the invoice numbers, which span accounts.
CREATE OR REPLACE FUNCTION billing._verify_checks(only_account bigint)
RETURNS TABLE(account_id bigint, problem text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
RETURN QUERY
WITH acct AS NOT MATERIALIZED (
    SELECT a.account_id, a.billing_type, a.credit_limit_micros, a.currency
      FROM billing.accounts a
     WHERE _verify_checks.only_account IS NULL OR a.account_id = _verify_checks.only_account
), sums AS NOT MATERIALIZED (
    SELECT a.account_id, a.billing_type,
           CASE WHEN a.billing_type = 'postpaid' THEN a.credit_limit_micros ELSE 0 END AS credit,
           (SELECT COALESCE(sum(l.amount_micros), 0) FROM billing.ledger l
             WHERE l.account_id = a.account_id) AS balance,
           (SELECT COALESCE(sum(r.hold_micros), 0) FROM billing.requests r
             WHERE r.account_id = a.account_id AND r.status IN ('queued', 'in_progress')) AS held,
           (SELECT COALESCE(sum(s.available_micros), 0) FROM billing.account_slices s
             WHERE s.account_id = a.account_id) AS available,
           (SELECT count(*) FROM billing.account_slices s
             WHERE s.account_id = a.account_id AND s.slice = 0) AS has_slice0,
           (SELECT count(*) FROM billing.account_slices s
             WHERE s.account_id = a.account_id AND s.available_micros < 0) AS negative,
           (SELECT count(*) FROM billing.account_slices s
             WHERE s.account_id = a.account_id AND s.slice <> 0 AND s.available_micros <> 0) AS others,
           (SELECT count(*) FROM billing.account_slices s
             WHERE s.account_id = a.account_id
               AND (s.fast_micros < 0 OR s.fast_micros > GREATEST(s.available_micros, 0))) AS bad_budgets
      FROM acct a
)
SELECT s.account_id, format('available %s <> balance %s - holds %s + credit limit %s',
                            s.available, s.balance, s.held, s.credit)
  FROM sums s WHERE s.available <> s.balance - s.held + s.credit
UNION ALL
-- the prepaid credit kept and what invoices consumed of it agree with the
-- ledger (docs/invoices.md, "How a postpaid account's money works")
SELECT s.account_id, format('balance %s <> kept prepaid credit %s - unbilled usage %s - unpaid invoices %s',
                            s.balance, p.credit_micros, p.unbilled_micros, p.unpaid_micros)
  FROM sums s CROSS JOIN LATERAL billing._postpaid_position(s.account_id) p
 WHERE s.billing_type = 'postpaid'
   AND s.balance <> p.credit_micros - p.unbilled_micros - p.unpaid_micros
UNION ALL
SELECT s.account_id, 'account has no slice 0' FROM sums s WHERE s.has_slice0 = 0
UNION ALL
SELECT s.account_id, 'a slice other than 0 is negative, or slice 0 is and others are not zero'
  FROM sums s
 WHERE s.negative > 0
   AND (s.others > 0 OR EXISTS (SELECT 1 FROM billing.account_slices x
                                 WHERE x.account_id = s.account_id AND x.slice <> 0
                                   AND x.available_micros < 0))
UNION ALL
SELECT s.account_id, format('fast-path budget below zero or above the available amount in %s slices',
                            s.bad_budgets)
  FROM sums s WHERE s.bad_budgets > 0
UNION ALL
SELECT r.account_id, format('request %s: unknown status %s', r.request_id, r.status)
  FROM billing.requests r JOIN acct a USING (account_id)
 WHERE r.status NOT IN ('queued', 'in_progress', 'completed', 'failed', 'cancelled')
UNION ALL
SELECT r.account_id, format('request %s: hold %s does not match its state %s (estimate %s)',
                            r.request_id, r.hold_micros, r.status, r.cost_estimate_micros)
  FROM billing.requests r JOIN acct a USING (account_id)
 WHERE CASE WHEN r.status IN ('queued', 'in_progress')
            THEN r.hold_micros <> r.cost_estimate_micros OR r.cost_micros IS NOT NULL
                 OR r.completed_at IS NOT NULL
            ELSE r.hold_micros <> 0 OR r.cost_micros IS NULL OR r.completed_at IS NULL END
    OR r.cost_estimate_micros < 0 OR r.cost_micros < 0
UNION ALL
SELECT r.account_id, format('request %s: currency %s, its account pays in %s',
                            r.request_id, r.currency, a.currency)
  FROM billing.requests r JOIN acct a USING (account_id)
 WHERE r.currency <> a.currency
UNION ALL
-- an unfinished request has no usage yet
SELECT r.account_id, format('request %s: cost %s but usage entries total %s',
                            r.request_id, COALESCE(r.cost_micros::text, 'none'), COALESCE(-u.total, 0))
  FROM billing.requests r JOIN acct a USING (account_id)
  -- aggregated once: a lookup per request would read the account's whole ledger each time
  LEFT JOIN (SELECT l.account_id, l.request_id, sum(l.amount_micros) AS total, count(*) AS n
               FROM billing.ledger l
              WHERE l.kind = 'usage' AND l.request_id IS NOT NULL
                AND (_verify_checks.only_account IS NULL OR l.account_id = _verify_checks.only_account)
              GROUP BY l.account_id, l.request_id) u
         ON u.account_id = r.account_id AND u.request_id = r.request_id
 WHERE COALESCE(-u.total, 0) <> COALESCE(r.cost_micros, 0) OR u.n > 1
UNION ALL
SELECT l.account_id, format('ledger entry %s names request %s, not a request of its account',
                            l.entry_id, l.request_id)
  FROM billing.ledger l JOIN acct a USING (account_id)
 WHERE l.request_id IS NOT NULL
   AND NOT EXISTS (SELECT FROM billing.requests r
                    WHERE r.request_id = l.request_id AND r.account_id = l.account_id)
UNION ALL
SELECT l.account_id, format('ledger entry %s names top-up %s, not a top-up of its account',
                            l.entry_id, l.topup_id)
  FROM billing.ledger l JOIN acct a USING (account_id)
 WHERE l.topup_id IS NOT NULL
   AND NOT EXISTS (SELECT FROM billing.topups t
                    WHERE t.topup_id = l.topup_id AND t.account_id = l.account_id)
UNION ALL
SELECT t.account_id, format('top-up %s is %s but has %s ledger entries for %s micros',
                            t.topup_id, t.status, COALESCE(e.n, 0), COALESCE(e.total, 0))
  FROM billing.topups t JOIN acct a USING (account_id)
  LEFT JOIN (SELECT l.account_id, l.topup_id, count(*) AS n, sum(l.amount_micros) AS total
               FROM billing.ledger l
              WHERE l.topup_id IS NOT NULL
                AND (_verify_checks.only_account IS NULL OR l.account_id = _verify_checks.only_account)
              GROUP BY l.account_id, l.topup_id) e
         ON e.account_id = t.account_id AND e.topup_id = t.topup_id
 WHERE CASE WHEN t.status = 'succeeded' THEN e.n IS DISTINCT FROM 1 OR e.total <> t.amount_micros
            ELSE e.n IS NOT NULL END
UNION ALL
SELECT o.account_id, format('%s rows of an account that does not exist', o.tbl)
  FROM (SELECT l.account_id, 'ledger' AS tbl FROM billing.ledger l
        UNION SELECT r.account_id, 'request' FROM billing.requests r
        UNION SELECT s.account_id, 'slice' FROM billing.account_slices s
        UNION SELECT g.account_id, 'grant' FROM billing.grants g) o
 WHERE (_verify_checks.only_account IS NULL OR o.account_id = _verify_checks.only_account)
   AND NOT EXISTS (SELECT 1 FROM billing.accounts a WHERE a.account_id = o.account_id)
UNION ALL
SELECT l.account_id, format('ledger entry %s: invalid kind %s or amount %s',
                            l.entry_id, l.kind, l.amount_micros)
  FROM billing.ledger l JOIN acct a USING (account_id)
 WHERE NOT billing._ledger_entry_valid(l.kind, l.amount_micros, l.request_id IS NOT NULL)
UNION ALL
-- refunds: of a request of the same account, never more than it was charged
SELECT f.account_id, format('refunds of request %s total %s micros, %s',
                            f.request_id, f.total,
                            CASE WHEN r.account_id IS DISTINCT FROM f.account_id
                                 THEN 'but it is no request of this account'
                                 ELSE format('more than its charge of %s', r.cost_micros) END)
  FROM (SELECT l.account_id, l.request_id, sum(l.amount_micros) AS total
          FROM billing.ledger l
         WHERE l.kind = 'refund' AND (_verify_checks.only_account IS NULL OR l.account_id = _verify_checks.only_account)
         GROUP BY l.account_id, l.request_id) f
  LEFT JOIN billing.requests r ON r.request_id = f.request_id
 WHERE r.account_id IS DISTINCT FROM f.account_id OR f.total > COALESCE(r.cost_micros, 0)
UNION ALL
-- each refund and adjustment row has its own ledger entry, of its kind and amount
SELECT c.account_id, format('%s %s does not match ledger entry %s', c.what, c.id, c.entry_id)
  FROM (SELECT f.account_id, 'refund' AS what, f.refund_id AS id, f.entry_id, f.amount_micros,
               f.request_id
          FROM billing.refunds f
        UNION ALL
        SELECT d.account_id, 'adjustment', d.entry_id, d.entry_id, d.amount_micros, NULL
          FROM billing.adjustments d) c
 WHERE (_verify_checks.only_account IS NULL OR c.account_id = _verify_checks.only_account)
   AND NOT EXISTS (SELECT FROM billing.ledger l
                    WHERE l.account_id = c.account_id AND l.entry_id = c.entry_id
                      AND l.kind = c.what AND l.amount_micros = c.amount_micros
                      AND l.request_id IS NOT DISTINCT FROM c.request_id)
UNION ALL
SELECT l.account_id, format('refund entry %s is recorded in no refund', l.entry_id)
  FROM billing.ledger l
 WHERE l.kind = 'refund' AND (_verify_checks.only_account IS NULL OR l.account_id = _verify_checks.only_account)
   AND NOT EXISTS (SELECT FROM billing.refunds f
                    WHERE f.account_id = l.account_id AND f.entry_id = l.entry_id)
;
RETURN QUERY SELECT * FROM billing._verify_invoices(_verify_checks.only_account);
RETURN QUERY SELECT * FROM billing._verify_grants(_verify_checks.only_account);
END $$;
-- security: privilege tiers (docs/security.md). This part is concatenated last,
-- so every object of the extension exists when it runs.

-- Roles are cluster-wide and survive DROP EXTENSION, so create them only when
-- absent, and grant the membership only once (a second GRANT would print a
-- notice on every re-install).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'billing_app') THEN
        CREATE ROLE billing_app NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'billing_admin') THEN
        CREATE ROLE billing_admin NOLOGIN;
    END IF;
    IF NOT pg_catalog.pg_has_role('billing_admin', 'billing_app', 'MEMBER') THEN
        GRANT billing_app TO billing_admin;
    END IF;
END $$;

-- Nothing for PUBLIC. New functions are executable by PUBLIC by default;
-- that default is what this takes away, including from every internal
-- function (billing._move, billing._adjust_available, trigger functions),
-- which are then granted to no one.
REVOKE ALL ON SCHEMA billing FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA billing FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA billing FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA billing FROM PUBLIC;

GRANT USAGE ON SCHEMA billing TO billing_app;

-- The tiers, by full signature (docs/security.md). A function that is not (yet) in
-- the install script is skipped rather than failing CREATE EXTENSION while
-- the parts land one by one; the regression test "security" lists the
-- granted signatures and fails if one is missing.
DO $$
DECLARE
    tier text;
    sig text;
    fn regprocedure;
BEGIN
    FOR tier, sig IN
        SELECT 'billing_app', s FROM pg_catalog.unnest(ARRAY[
            -- accounts, prices (read), the request lifecycle
            'billing.create_account(text, text, text)',
            'billing.balance(bigint)',
            'billing.estimate(text, jsonb)',
            'billing.effective_cost(text, jsonb, text)',
            'billing.begin_request(bigint, text, jsonb, text, text)',
            'billing.complete_request(bigint, jsonb, jsonb)',
            'billing.fail_request(bigint, text, bigint)',
            'billing.cancel_request(bigint)',
            'billing.charge(bigint, text, jsonb, jsonb, jsonb, text, text)',
            'billing.response_metadata(bigint)',
            'billing.configure_auto_topup(bigint, bigint, bigint, boolean)',
            'billing.set_spend_limit(bigint, bigint, text, text)',
            'billing.set_balance_alerts(bigint, bigint[])',
            -- reports (every account: admins only, checked inside)
            'billing.usage(bigint, timestamptz, timestamptz, text[])',
            'billing.statement(bigint, timestamptz, timestamptz)']) s
        UNION ALL
        SELECT 'billing_admin', s FROM pg_catalog.unnest(ARRAY[
            -- money in, catalog, credit and invoicing, housekeeping, invariants
            'billing.add_funds(bigint, bigint, text, text)',
            'billing.refund_request(bigint, bigint, text, text)',
            'billing.adjust_balance(bigint, bigint, text, text)',
            'billing.complete_topup(bigint, boolean, text, text)',
            'billing.set_billing_type(bigint, text)',
            'billing.set_model(text, text, text, text, text, boolean)',
            'billing.set_price(text, jsonb, text, timestamptz)',
            'billing.set_credit_limit(bigint, bigint, text)',
            'billing.suggest_credit_limit(bigint)',
            'billing.close_period(date)',
            'billing.mark_invoice_paid(bigint, text)',
            'billing.expire_requests(interval)',
            'billing.grant_credits(bigint, bigint, timestamptz, text, text, text)',
            'billing.expire_credits()',
            'billing.rollup_usage()',
            'billing.events_after(bigint, integer)',
            'billing.verify(bigint)']) s
    LOOP
        fn := pg_catalog.to_regprocedure(sig);
        IF fn IS NOT NULL THEN
            EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %I', fn, tier);
        END IF;
    END LOOP;
    IF pg_catalog.to_regclass('billing.catalog') IS NOT NULL THEN
        GRANT SELECT ON billing.catalog TO billing_app;
    END IF;
END $$;

-- The plain-UPDATE path (README.md): a backend may finish a request with a
-- plain UPDATE. Only the three columns the trigger settles from are
-- writable; SELECT on request_id alone lets "WHERE request_id = ..." find
-- the row without exposing anyone's params, outputs or costs.
GRANT UPDATE (status, outputs, routing) ON billing.requests TO billing_app;
GRANT SELECT (request_id) ON billing.requests TO billing_app;
-- The upgrade from 0.1.0, its last part: what needs this release's
-- functions and views, which the re-runnable parts before it have created.

-- Unfinished requests of 0.1.0 get the version that priced them: the one in
-- force at their start for their admitted provider, by the one price choice
-- (billing._route_prices, as 0.1.0 would have settled). The transition
-- trigger freezes price_id, so it is off for this one statement; finished
-- requests keep NULL (they never settle again).
ALTER TABLE billing.requests DISABLE TRIGGER requests_transition;
UPDATE billing.requests r
   SET price_id = (SELECT p.price_id FROM billing._route_prices p
                    WHERE p.model = r.model AND p.provider = r.provider AND p.span @> r.created_at)
 WHERE r.price_id IS NULL AND r.status IN ('queued', 'in_progress');
ALTER TABLE billing.requests ENABLE TRIGGER requests_transition;
