-- What pg_dump needs of billing (docs/operations.md): every table and
-- sequence is marked as holding the user's data, and event ids go on
-- above the restored ones on a server whose transaction ids are lower.
SET client_min_messages = warning;
-- no relation of the extension is left out of a dump
SELECT c.relname AS not_marked
  FROM pg_class c
  JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'billing'
 WHERE c.relkind IN ('r', 'p', 'S') AND c.oid <> ALL (e.extconfig);
SELECT count(*) > 20 AS marked FROM pg_extension e, unnest(e.extconfig) WHERE e.extname = 'billing';

-- A restore from another server, as _event_clock sees it: an event whose
-- id lies far above what this server's transactions make, and a clock
-- that names another server. (In a transaction rolled back: the raise of
-- the base and the clock are sequences', kept, and harmless to the tests
-- after.)
SELECT billing.create_account('bk-a') AS a \gset
SELECT count(*) >= 0 AS stamped FROM billing.events_after(NULL);
CREATE FUNCTION pg_temp.here() RETURNS bigint LANGUAGE sql AS $$
    SELECT hashtextextended((pg_control_system()).system_identifier || '/'
                            || (SELECT oid FROM pg_database WHERE datname = current_database()), 0) $$;
SELECT last_value = pg_temp.here() AND is_called AS clock_names_this_server FROM billing.event_clock;
BEGIN;
CREATE TEMP TABLE restored AS
SELECT (pg_current_xact_id()::text::bigint + 1000000) << 22 AS event_id;
INSERT INTO billing.events (account_id, event_id, type, payload)
SELECT :a, event_id, 'balance_alert', '{"restored":true}' FROM restored;
SELECT setval('billing.event_clock', 1) AS restored_from_elsewhere;
-- the restored event comes out of events_after once its clock is re-based
SELECT e.event_id = r.event_id AS restored_event_returned
  FROM billing.events_after((SELECT r.event_id - 1 FROM restored r)) e, restored r;
SELECT last_value = pg_temp.here() AS clock_names_this_server FROM billing.event_clock;
-- and a new event's id is above it
SELECT billing.grant_credits(:a, 1000, now() + interval '1 day') > 0 AS granted;
SELECT e.event_id > r.event_id AS new_id_above
  FROM billing.events e, restored r WHERE e.account_id = :a AND e.type = 'credits_granted';
ROLLBACK;
-- a read-only transaction (a standby) neither re-bases nor fails
BEGIN READ ONLY;
SELECT count(*) >= 0 AS read_only_read FROM billing.events_after(NULL);
ROLLBACK;
SELECT * FROM billing.verify();
