-- invoice helper (postpaid unbilled usage, kept prepaid credit, whole-unit
-- invoice credits): schema changes from 0.1.0. Idempotent.

-- billing._unbilled_usage is replaced by billing._postpaid_position
-- (src/invoice/invoice.sql, re-applied with the other function bodies).
DROP FUNCTION IF EXISTS billing._unbilled_usage(bigint);

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
