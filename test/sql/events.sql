-- events: the durable event log, billing.events_after (docs/events.md).
-- Every event type that has a cause is emitted once by it; a refusal or an
-- idempotent replay writes none. Event ids derive from transaction ids, so
-- no output shows one: ids are compared, never printed. No date of today.
SET client_min_messages = warning;
SET TimeZone = 'UTC';
DROP ROLE IF EXISTS ev_backend, ev_dba;
RESET client_min_messages;

-- The events of the ev-* accounts since the last call. Waits first until
-- every transaction begun before the call has ended (an autovacuum's
-- ANALYZE, say, holds back what events_after may return), so that what this
-- session committed is returned. Ids in payloads are left out.
CREATE TABLE regress.ev_cursor (last_id bigint);
INSERT INTO regress.ev_cursor
SELECT COALESCE(max(event_id), 0) FROM billing.events_after(NULL, 10000);
CREATE FUNCTION regress.wait_settled() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    horizon xid8 := pg_snapshot_xmax(pg_current_snapshot());
BEGIN
    FOR i IN 1..1000 LOOP
        EXIT WHEN pg_snapshot_xmin(pg_current_snapshot()) >= horizon;
        PERFORM pg_sleep(0.01);
    END LOOP;
END $$;
CREATE FUNCTION regress.new_events()
RETURNS TABLE(account text, type text, payload jsonb) LANGUAGE plpgsql AS $$
DECLARE
    seen bigint;
    top bigint;
BEGIN
    PERFORM regress.wait_settled();
    SELECT c.last_id INTO seen FROM regress.ev_cursor c;
    SELECT max(e.event_id) INTO top FROM billing.events_after(seen, 10000) e;
    UPDATE regress.ev_cursor SET last_id = COALESCE(top, seen);
    RETURN QUERY
        SELECT a.external_id, e.type,
               e.payload - '{topup_id,grant_id,entry_id,invoice_id,invoice_number,expires_at}'::text[]
          FROM billing.events_after(seen, 10000) e JOIN billing.accounts a USING (account_id)
         WHERE e.event_id <= top AND a.external_id LIKE 'ev-%'
         ORDER BY e.event_id;
END $$;
CREATE FUNCTION regress.ev_charge(acct bigint, images integer) RETURNS bigint LANGUAGE sql AS $$
SELECT (billing.charge(acct, 'ev-img', jsonb_build_object('n', images),
                       jsonb_build_object('images', (SELECT jsonb_agg('{"width":1024,"height":1024}'::jsonb)
                                                       FROM generate_series(1, images)))) ->> 'cost_micros')::bigint
$$;

SELECT billing.set_model('ev-img', 'image', 'ev-prov', 'Events Provider', 'ev-img-v1');
SELECT billing.set_price('ev-img',
    '[{"type":"output","metric":"image","unit_price_micros":1000000,"unit_size":1}]',
    NULL, '2020-01-01') > 0 AS priced;
SELECT billing.create_account('ev-topup') AS t \gset
SELECT billing.add_funds(:t, 10000000) > 0 AS funded;
SELECT * FROM regress.new_events();     -- money in is no event

-- auto top-up: requested by the charge that crosses the threshold, then
-- succeeded; a replay and a refused completion write nothing
SELECT billing.configure_auto_topup(:t, 5000000, 20000000);
SELECT regress.ev_charge(:t, 6) AS cost;
SELECT * FROM regress.new_events();
SELECT max(topup_id) AS topup FROM billing.topups WHERE account_id = :t \gset
SELECT (SELECT payload ->> 'topup_id' FROM billing.events_after(NULL, 10000)
         WHERE account_id = :t AND type = 'auto_topup_requested')::bigint = :topup AS names_its_topup;
SELECT billing.complete_topup(:topup, true, 'pay_1') ->> 'status' AS status;
SELECT billing.complete_topup(:topup, true, 'pay_1') ->> 'status' AS replayed;
SELECT regexp_replace(regress.try(format('SELECT billing.complete_topup(%s, false)', :topup)), 'top-up [0-9]+', 'top-up N') AS refused;
SELECT regexp_replace(regress.try(format('SELECT billing.complete_topup(%s, true, %L)', :topup, 'pay_2')), 'top-up [0-9]+', 'top-up N') AS refused;
SELECT * FROM regress.new_events();

-- a failure that is the last one allowed: topup_failed, auto_topup_disabled
SET billing.auto_topup_max_failures = 1;
SELECT regress.ev_charge(:t, 20) AS cost;
SELECT max(topup_id) AS topup FROM billing.topups WHERE account_id = :t \gset
SELECT billing.complete_topup(:topup, false, NULL, 'card declined') ->> 'status' AS status;
SELECT billing.complete_topup(:topup, false, NULL, 'card declined') ->> 'status' AS replayed;
RESET billing.auto_topup_max_failures;
SELECT * FROM regress.new_events();
-- on again below the threshold: requested at once; off: the pending one fails
SELECT billing.configure_auto_topup(:t, 5000000, 20000000);
SELECT billing.configure_auto_topup(:t, 5000000, 20000000, false);
SELECT billing.configure_auto_topup(:t, 5000000, 20000000, false);
SELECT * FROM regress.new_events();

-- credits: granted once per grant (not on a replay of its key, not on a
-- refusal), expired once per expiry entry
SELECT billing.create_account('ev-credits') AS c \gset
SELECT billing.grant_credits(:c, 3000000, '2999-01-01 00:00+00', 'paid', 'ev-k1', 'welcome') AS g1 \gset
SELECT billing.grant_credits(:c, 3000000, '2999-01-01 00:00+00', 'paid', 'ev-k1', 'welcome') = :g1 AS replayed;
SELECT regress.try(format('SELECT billing.grant_credits(%s, 0)', :c));
SELECT regress.try(format('SELECT billing.grant_credits(%s, 5, NULL, %L, %L)', :c, 'paid', 'ev-k1'));
SELECT * FROM regress.new_events();
SELECT (SELECT payload ->> 'grant_id' FROM billing.events_after(NULL, 10000)
         WHERE account_id = :c AND type = 'credits_granted')::bigint = :g1 AS names_its_grant;
SELECT billing.grant_credits(:c, 500000, clock_timestamp() + interval '1 second') AS g2 \gset
SELECT billing.grant_credits(:c, 700000, clock_timestamp() + interval '1 second', 'paid') AS g3 \gset
SELECT pg_sleep(1.2);
SELECT billing.expire_credits() >= 2 AS posted;
SELECT billing.expire_credits() AS posted_again;
SELECT * FROM regress.new_events();
SELECT count(*) AS expiry_entries, count(*) = (SELECT count(*) FROM billing.events_after(NULL, 10000) e
                                               WHERE e.account_id = :c AND e.type = 'credits_expired')
       AS one_event_each
  FROM billing.ledger WHERE account_id = :c AND kind = 'expiry';

-- invoices: issued once per invoice at the close (not again on a second
-- close), paid once; one paid in full by the kept prepaid credit is both
SELECT billing.create_account('ev-post', 'postpaid') AS p \gset
SELECT billing.create_account('ev-kept') AS k \gset
SELECT billing.add_funds(:k, 1000000) > 0 AS funded;
SELECT billing.set_billing_type(:k, 'postpaid');
-- usage dated in March 2023 (regress.usage_at, test/sql/setup.sql)
CREATE FUNCTION pg_temp.usage_at(acct bigint, micros bigint, at timestamptz) RETURNS void
LANGUAGE sql AS $$
    SELECT regress.usage_at(acct, 'ev-img', micros, at, true, 'ev-prov') $$;
SELECT billing.set_credit_limit(:p, 10000000, 'events test');
SELECT pg_temp.usage_at(:p, 2500000, '2023-03-10 12:00+00');
SELECT pg_temp.usage_at(:k, 400000, '2023-03-11 12:00+00');
SELECT billing.close_period('2023-03-01') >= 2 AS issued;
SELECT billing.close_period('2023-03-01') AS issued_again;
SELECT * FROM regress.new_events();
SELECT invoice_id AS inv FROM billing.invoices WHERE account_id = :p \gset
SELECT billing.mark_invoice_paid(:inv, 'wire-1');
SELECT billing.mark_invoice_paid(:inv, 'wire-1');
SELECT regress.try('SELECT billing.mark_invoice_paid(-1)');
SELECT * FROM regress.new_events();
SELECT count(*) AS invoice_events, count(DISTINCT payload ->> 'invoice_id') AS invoices
  FROM billing.events_after(NULL, 10000) e
 WHERE e.account_id IN (:p, :k) AND e.type LIKE 'invoice_%';

-- a refused call inside a transaction that is rolled back leaves nothing;
-- this transaction's own events are not committed, so not returned
BEGIN;
SELECT billing.grant_credits(:c, 100000) > 0 AS granted;
SELECT count(*) AS own_uncommitted_seen
  FROM billing.events_after((SELECT last_id FROM regress.ev_cursor), 10000);
ROLLBACK;
SELECT * FROM regress.new_events();

-- events_after: id order, the limit, the refusals
SELECT bool_and(event_id > prev) AS ascending, count(*) >= 14 AS enough
  FROM (SELECT event_id, lag(event_id, 1, 0::bigint) OVER (ORDER BY o) AS prev
          FROM billing.events_after(NULL, 10000) WITH ORDINALITY x(event_id, a, t, p, c, o)) s;
SELECT count(*) AS limited FROM billing.events_after(NULL, 3);
SELECT count(*) = LEAST(100, (SELECT count(*) FROM billing.events)) AS hundred_by_default
  FROM billing.events_after(0);
SELECT (SELECT array_agg(event_id) FROM billing.events_after(NULL, 5))
     = (SELECT array_agg(event_id) FROM billing.events_after(0, 5)) AS null_is_from_the_start;
SELECT (SELECT array_agg(event_id) FROM billing.events_after(x.second, 2))
     = (SELECT (array_agg(event_id))[3:4] FROM billing.events_after(NULL, 4)) AS resumes_after
  FROM (SELECT (array_agg(event_id))[2] AS second FROM billing.events_after(NULL, 2)) x;
SELECT count(*) AS past_the_end FROM billing.events_after(9223372036854775807, 10);
SELECT regress.try('SELECT billing.events_after(0, 0)');
SELECT regress.try('SELECT billing.events_after(0, 10001)');
SELECT regress.try('SELECT billing.events_after(0, NULL)');
SELECT string_agg(DISTINCT e.type, ', ') AS types_emitted
  FROM billing.events e JOIN billing.accounts a USING (account_id) WHERE a.external_id LIKE 'ev-%';

-- security: events_after is for the admin tier; nobody but billing's
-- functions writes the log
CREATE ROLE ev_backend LOGIN IN ROLE billing_app;
CREATE ROLE ev_dba LOGIN IN ROLE billing_admin;
GRANT USAGE ON SCHEMA regress TO ev_backend, ev_dba;
SET ROLE ev_backend;
SELECT regress.try('SELECT billing.events_after(0, 1)');
SELECT regress.try($$INSERT INTO billing.events VALUES (1, 1, 'invoice_paid', '{}')$$);
SELECT regress.try($$SELECT billing._event(1, 'invoice_paid', '{}')$$);
SET ROLE ev_dba;
SELECT count(*) = 1 AS admin_reads FROM billing.events_after(0, 1);
SELECT regress.try($$INSERT INTO billing.events VALUES (1, 1, 'invoice_paid', '{}')$$);
SELECT regress.try('DELETE FROM billing.events');
SELECT regress.try($$SELECT billing._event(1, 'invoice_paid', '{}')$$);
RESET ROLE;
REVOKE USAGE ON SCHEMA regress FROM ev_backend, ev_dba;
DROP ROLE ev_backend, ev_dba;
SELECT regress.try($$SELECT billing._event(1, 'no_such_type', '{}')$$);

-- refund_issued: one per refund, carrying the refund object; a replay and a
-- refusal write none
SELECT billing.create_account('ev-refund') AS rf \gset
SELECT billing.add_funds(:rf, 1000000) IS NOT NULL AS funded;
SELECT (billing.charge(:rf, 'ev-img', '{"n":1}', '{"images":[{"width":1024,"height":1024}]}')
        ->> 'request_id')::bigint AS rf_req \gset
SELECT billing.refund_request(:rf_req, 10000, 'blank image', 'ev-rf-1') ->> 'amount_micros' AS refunded;
SELECT billing.refund_request(:rf_req, 10000, 'blank image', 'ev-rf-1') ->> 'amount_micros' AS replayed;
SELECT regexp_replace(regress.try(format('SELECT billing.refund_request(%s, 99999999)', :rf_req)),
                      'request [0-9]+', 'request N') AS refused;
SELECT type, payload ->> 'amount_micros' AS amount_micros, payload ->> 'reason' AS reason,
       (payload ->> 'request_id')::bigint = :rf_req AS names_its_request
  FROM billing.events WHERE account_id = :rf;

-- a base in billing.event_node (set on Citus, or after leaving it,
-- docs/citus.md): new ids start above it, with the node group in bits 16
-- to 21, and events_after's horizon moves with it
SELECT billing.create_account('ev-base') AS eb \gset
SELECT max(event_id) AS before_base FROM billing.events \gset
SELECT setval('billing.event_node', ((:before_base >> 22) + 1000) << 6 | 5, true) > 0 AS base_set;
SELECT billing._event(:eb, 'invoice_paid', '{}') AS based_id \gset
SELECT :based_id >= ((:before_base >> 22) + 1000) << 22 AS above_the_base,
       (:based_id >> 16) & 63 = 5 AS carries_the_group;
SELECT array_agg(event_id) = ARRAY[:based_id]::bigint[] AS returned
  FROM billing.events_after(:before_base, 10);
SELECT setval('billing.event_node', 0, false) = 0 AS base_unset;

SELECT * FROM billing.verify();
