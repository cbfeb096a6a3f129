-- The schema changes of 0.3.0 for a database at 0.2.0 (idempotent: the
-- update test runs this script twice): the columns, indexes and
-- constraints 0.3.0 gives the tables 0.2.0 had (each also in its CREATE
-- TABLE in src/schema.sql or src/schema/0.2.0.sql, last), and the
-- functions it drops or re-signs. The tables 0.3.0 added (and the types of
-- its events) follow: src/schema/0.3.0.sql, which the install runs too, so
-- a new table is written there only. The re-runnable parts come last and
-- bring every function, view, trigger and grant to 0.3.0, and mark every
-- table and sequence for pg_dump (src/backup.sql).

-- billing._limit_holds is now billing._holds, the one definition of what
-- is held (its arguments as before, scope and except_request optional)
DROP FUNCTION IF EXISTS billing._limit_holds(bigint, text, bigint);

-- 0.3.0, contract prices (docs/pricing.md, "Price books and discounts"):
-- a price version of a book, and what requests record of books and
-- discounts. Every account stays on the list (no assignment).
ALTER TABLE billing.prices ADD COLUMN IF NOT EXISTS price_book text;
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
-- set_model gains display_name: the 0.2.0 signature goes
DROP FUNCTION IF EXISTS billing.set_model(text, text, text, text, text, boolean);

-- The charge reads top to bottom: billing._move gains grant_id,
-- through which credit grants and their expiry post their entries; the
-- 0.2.0 signature goes
DROP FUNCTION IF EXISTS billing._move(bigint, bigint, text, text, bigint, bigint);
