-- 0.1.0 -> 0.2.0, from the "requests" branch: work in flight settles at the
-- price of its start (docs/pricing.md, "Work in flight"). Idempotent.

-- The price version that priced an admission; schema.sql adds it last, as here.
ALTER TABLE billing.requests ADD COLUMN IF NOT EXISTS price_id bigint;

-- Unfinished requests of 0.1.0 get the version that priced them: the one in
-- force at their start for their admitted provider (what 0.1.0 would have
-- settled with). The transition trigger freezes price_id, so it is off for
-- this one statement; finished requests keep NULL (they never settle again).
ALTER TABLE billing.requests DISABLE TRIGGER requests_transition;
UPDATE billing.requests r
   SET price_id = (SELECT p.price_id FROM billing.prices p
                    WHERE p.model = r.model
                      AND COALESCE(p.provider, '') IN (r.provider, '')
                      AND p.effective_from <= r.created_at
                    ORDER BY p.provider IS NULL, p.effective_from DESC
                    LIMIT 1)
 WHERE r.price_id IS NULL AND r.status IN ('queued', 'in_progress');
ALTER TABLE billing.requests ENABLE TRIGGER requests_transition;

-- Price versions are never edited; only a scheduled one may be deleted.
-- (The function body is the one of src/pricing/pricing.sql; it must exist
-- before the triggers, whatever order the rest of the script uses.)
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
REVOKE ALL ON FUNCTION billing.refuse_price_change() FROM PUBLIC;
CREATE OR REPLACE TRIGGER prices_versioned BEFORE UPDATE OR DELETE ON billing.prices
    FOR EACH ROW EXECUTE FUNCTION billing.refuse_price_change();
CREATE OR REPLACE TRIGGER prices_no_truncate BEFORE TRUNCATE ON billing.prices
    FOR EACH STATEMENT EXECUTE FUNCTION billing.refuse_price_change();
