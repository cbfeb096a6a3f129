-- events: the durable event log. The design and its proof are in docs/events.md.

-- Keeps event ids growing across a restore (docs/operations.md). An id is
-- its transaction's xid plus the base of billing.event_node, and xids
-- start again low on the server a dump is restored into: there the restored
-- ids would lie above every new one, and above the horizon of events_after.
-- So on the first call on a server and database other than the ones
-- billing.event_clock names (a restore, pg_upgrade, or none yet), the base is
-- raised above the highest id when it is not already, then the clock names
-- this server and database. Only a raise waits (for the transactions that
-- read the old base); the clock is a sequence, whose setval no one waits
-- for. Not on Citus (docs/citus.md) and not in a read-only transaction,
-- where nothing can be written (a standby replays what its primary did).
CREATE OR REPLACE FUNCTION billing._event_clock() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    here bigint := pg_catalog.hashtextextended(
        (pg_catalog.pg_control_system()).system_identifier || '/'
        || (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()), 0);
    top bigint;
    xmin bigint;
    node bigint;
    based boolean;
BEGIN
    FOR pass IN 1 .. 2 LOOP
        IF EXISTS (SELECT FROM billing.event_clock c WHERE c.is_called AND c.last_value = here) THEN
            RETURN;
        END IF;
        IF pass = 1 AND (pg_catalog.current_setting('transaction_read_only')::boolean
                         OR billing._distributed()) THEN
            RETURN;
        END IF;
        SELECT e.event_id >> 22 INTO top FROM billing.events e ORDER BY e.event_id DESC LIMIT 1;
        xmin := pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())::text::bigint;
        SELECT s.last_value, s.is_called INTO node, based FROM billing.event_node s;
        IF NOT based THEN
            node := 0;
        END IF;
        EXIT WHEN top IS NULL OR top < xmin + (node >> 6);
        IF pass = 2 THEN
            -- every transaction from xmin on, the only ones that can still
            -- write, makes ids above top
            PERFORM pg_catalog.setval('billing.event_node', ((top + 1 - xmin) << 6) | (node & 63), true);
            EXIT;
        END IF;
        -- as a raise of the base on Citus: when no transaction that read the
        -- old base is left
        PERFORM pg_catalog.pg_advisory_xact_lock(7091318301086082414);
    END LOOP;
    PERFORM pg_catalog.setval('billing.event_clock', here, true);
END $$;

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
    PERFORM billing._event_clock();
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
    PERFORM billing._event_clock();
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
