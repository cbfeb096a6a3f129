-- billing: the schema changes from 0.1.0 to 0.2.0 to the tables 0.1.0 had,
-- the first part of the update from 0.1.0. The Makefile appends the tables
-- that 0.2.0 added (src/schema/0.2.0.sql, which the install runs too), then
-- the same for 0.3.0, then every function, view, trigger and grant part of
-- the install script, re-applied with CREATE OR REPLACE, so changed function
-- bodies need nothing here.
--
-- What goes here: the columns, indexes and constraints that src/schema.sql
-- gives the tables of 0.1.0, and the functions and views that are dropped,
-- or change their arguments, result type or view columns (CREATE OR REPLACE
-- cannot). It runs before the functions are defined again, so their bodies
-- find the new columns.
--
-- Each statement must be safe to run again and where the object already
-- exists (on Citus a node may have it): IF NOT EXISTS / IF EXISTS, or a
-- catalog check in a DO block (ADD CONSTRAINT has no IF NOT EXISTS). The
-- upgraded schema must equal a fresh install's, so a new column goes last in
-- its CREATE TABLE in src/schema.sql too; test/upgrade.sh compares the two and
-- runs the script twice.
\echo Use "ALTER EXTENSION billing UPDATE" to load this file. \quit

-- Columns.

-- Credit grants (docs/credits.md): the ledger's link to a grant.
ALTER TABLE billing.ledger ADD COLUMN IF NOT EXISTS grant_id bigint;

-- Refunds and corrections (docs/refunds.md).
-- Entries posted before the upgrade do not know who made them; later ones
-- record the login role of their session.
ALTER TABLE billing.ledger ADD COLUMN IF NOT EXISTS created_by text NOT NULL DEFAULT '(before 0.2.0)';
ALTER TABLE billing.ledger ALTER COLUMN created_by SET DEFAULT SESSION_USER;

-- Postpaid refunds and adjustments are credited on invoices
-- (docs/invoices.md, "Refunds and corrections on invoices").
ALTER TABLE billing.invoices ADD COLUMN IF NOT EXISTS corrections_micros bigint NOT NULL DEFAULT 0;

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

-- Indexes and constraints.

-- Usage reports (docs/reports.md): the first billing.rollup_usage() takes
-- in the whole ledger.
CREATE INDEX IF NOT EXISTS ledger_entry_brin ON billing.ledger USING brin (entry_id);

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
-- external ids move to a table of their own, unique across a cluster
-- (src/schema/0.2.0.sql, filled by 0.1.0--0.2.0.after.sql), whose key takes
-- the name of the accounts' key.
ALTER TABLE billing.accounts DROP CONSTRAINT IF EXISTS accounts_external_id_key;
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
