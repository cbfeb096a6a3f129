-- backup: pg_dump takes the tables and sequences of an extension for part of
-- it and dumps only CREATE EXTENSION, unless they are marked as holding the
-- user's data. Every billing table and sequence is (docs/operations.md):
-- its rows come back with pg_restore or psql, and each sequence where it
-- was, so new ids follow the old. Re-runnable: a mark set again stays one
-- mark, and a table that a later release adds is marked by this same loop.
DO $$
DECLARE
    rel regclass;
BEGIN
    -- the extension's own: on Citus, a worker's shards live in the schema too
    FOR rel IN SELECT c.oid FROM pg_catalog.pg_class c
                 JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e'
                 JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid AND e.extname = 'billing'
                WHERE c.relnamespace = 'billing'::regnamespace AND c.relkind IN ('r', 'p', 'S')
                ORDER BY c.relname LOOP
        PERFORM pg_catalog.pg_extension_config_dump(rel, '');
    END LOOP;
END $$;
