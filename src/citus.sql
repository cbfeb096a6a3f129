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
