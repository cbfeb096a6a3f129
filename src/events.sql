-- events: the durable event log. The design and its proof are in docs/events.md.

-- The one definition of an event's insert: appends it in the calling
-- transaction and sends the wake-up NOTIFY billing_events (at commit). The
-- id's high bits are the transaction's xid8, its low 22 bits count the
-- transaction's events; the max below sees only this transaction's ids.
CREATE OR REPLACE FUNCTION billing._event(account_id bigint, type text, payload jsonb)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    xid bigint := pg_catalog.pg_current_xact_id()::text::bigint;
    base bigint;
    id bigint;
BEGIN
    IF xid >= 2199023255552 THEN    -- 2^41: the id would not fit in a bigint
        RAISE EXCEPTION 'transaction id % is too large for an event id', xid
            USING ERRCODE = '54000';
    END IF;
    base := xid << 22;
    SELECT COALESCE(pg_catalog.max(e.event_id) + 1, base) INTO id
      FROM billing.events e WHERE e.event_id >= base AND e.event_id < base + 4194304;
    IF id = base + 4194304 THEN
        RAISE EXCEPTION 'too many events in one transaction'
            USING ERRCODE = '54000', DETAIL = 'A transaction can append at most 4194304 events.';
    END IF;
    INSERT INTO billing.events (account_id, event_id, type, payload)
    VALUES (_event.account_id, id, _event.type, _event.payload);
    PERFORM pg_catalog.pg_notify('billing_events',
        pg_catalog.json_build_object('event_id', id, 'type', _event.type,
                                     'account_id', _event.account_id)::text);
    RETURN id;
END $$;

-- Committed events with an id above after_event_id (NULL: from the first),
-- in id order, up to max_events. Only ids below the smallest id that a
-- transaction still running (or not begun) can hold are returned: those of
-- transactions older than the snapshot's xmin, all finished.
CREATE OR REPLACE FUNCTION billing.events_after(after_event_id bigint, max_events integer DEFAULT 100)
RETURNS TABLE(event_id bigint, account_id bigint, type text, payload jsonb, created_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF max_events IS NULL OR max_events NOT BETWEEN 1 AND 10000 THEN
        RAISE EXCEPTION 'max_events must be between 1 and 10000'
            USING ERRCODE = '22023', DETAIL = pg_catalog.format('Got %s.', COALESCE(max_events::text, 'NULL'));
    END IF;
    -- one statement: its snapshot is the one whose xmin bounds the ids
    RETURN QUERY
        SELECT e.event_id, e.account_id, e.type, e.payload, e.created_at
          FROM billing.events e
         WHERE e.event_id > COALESCE(after_event_id, -1)
           AND e.event_id < (pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())::text::bigint << 22)
         ORDER BY e.event_id
         LIMIT max_events;
END $$;
