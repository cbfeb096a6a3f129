-- The triggers of the tables of schema.sql. Apart from schema.sql, so that
-- the upgrade script can re-apply them (see the Makefile).

-- Writes to the accounts, the catalog (routes, price versions, provider
-- costs) and the price books (books, discounts, assignments) drop the
-- backend-local caches of all backends at commit (src/cache.c): every write
-- to these tables, each through a trigger <table>_changed. The spend limits
-- and balance alerts drop them on some writes only (ledger/limits.sql).
CREATE OR REPLACE FUNCTION billing._cache_changed() RETURNS trigger
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_cache_changed';
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['accounts', 'models', 'model_providers', 'prices', 'provider_costs',
                             'price_books', 'discounts', 'price_book_assignments'] LOOP
        EXECUTE pg_catalog.format('CREATE OR REPLACE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE'
                                  ' ON billing.%I FOR EACH STATEMENT EXECUTE FUNCTION billing._cache_changed()',
                                  t || '_changed', t);
    END LOOP;
END $$;

-- Makes fn, a trigger function that refuses what it does not allow, guard
-- every row change of table (trigger <table>_versioned) and every TRUNCATE
-- (<table>_no_truncate): the tables of versions (pricing.sql, books.sql).
CREATE OR REPLACE FUNCTION billing._keep_versions(tbl text, fn text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    EXECUTE pg_catalog.format('CREATE OR REPLACE TRIGGER %I BEFORE UPDATE OR DELETE ON billing.%I'
                              ' FOR EACH ROW EXECUTE FUNCTION billing.%I()', tbl || '_versioned', tbl, fn);
    EXECUTE pg_catalog.format('CREATE OR REPLACE TRIGGER %I BEFORE TRUNCATE ON billing.%I'
                              ' FOR EACH STATEMENT EXECUTE FUNCTION billing.%I()', tbl || '_no_truncate', tbl, fn);
END $$;

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
