-- Usage reports and statements (docs/reports.md): every grouping, windows
-- that cut a day or slot, DST days, zones half an hour off UTC, refunds and
-- grants, refusals, and the rollup: a report equals the ledger before and
-- after billing.rollup_usage(). Usage is dated explicitly (never today).
SET client_min_messages = warning;
SET TimeZone = 'UTC';
SET billing.timezone = 'UTC';
SELECT billing.set_model('rp-img', 'image', 'acme', 'Acme', 'acme-img');
SELECT billing.set_model('rp-img', 'image', 'beta', 'Beta', 'beta-img', false);
SELECT billing.set_model('rp-vid', 'video', 'acme', 'Acme', 'acme-vid');
SELECT billing.set_price('rp-img', '[{"type":"output","metric":"image","unit_price_micros":40000}]',
                         NULL, '2020-01-01') > 0 AS priced;
SELECT billing.set_price('rp-vid', '[{"type":"output","metric":"second","unit_price_micros":30000}]',
                         NULL, '2020-01-01') > 0 AS priced;
SELECT billing.create_account('rp-ann') AS ann \gset
SELECT billing.create_account('rp-ben') AS ben \gset
SELECT billing.add_funds(:ann, 100000000) > 0 AS funded;
SELECT billing.add_funds(:ben, 100000000) > 0 AS funded;

-- Test only, a controlled clock: what a settled request posts, dated "at",
-- executed by "provider" (its routing) with a scope.
CREATE FUNCTION pg_temp.usage_at(acct bigint, model text, provider text, scope text,
                                 micros bigint, at timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    rid bigint;
BEGIN
    INSERT INTO billing.requests (account_id, model, provider, status, params, outputs, routing,
                                  cost_estimate_micros, cost_micros, currency, postpaid,
                                  created_at, completed_at, scope)
    VALUES (acct, model, 'acme', 'completed', '{}', '{}',
            CASE WHEN provider = 'acme' THEN '{}' ELSE jsonb_build_object('provider', provider) END,
            micros, micros, 'USD', false, at, at, scope)
    RETURNING request_id INTO rid;
    INSERT INTO billing.ledger (account_id, kind, amount_micros, request_id, created_at)
    VALUES (acct, 'usage', -micros, rid, at);
    PERFORM billing._adjust_available(acct, -micros);
    RETURN rid;
END $$;
-- ... and a refund of it, dated "at"
CREATE FUNCTION pg_temp.refund_at(acct bigint, rid bigint, micros bigint, at timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    eid bigint;
BEGIN
    INSERT INTO billing.ledger (account_id, kind, amount_micros, request_id, created_at)
    VALUES (acct, 'refund', micros, rid, at) RETURNING entry_id INTO eid;
    INSERT INTO billing.refunds (account_id, request_id, amount_micros, entry_id, created_at)
    VALUES (acct, rid, micros, eid, at);
    PERFORM billing._adjust_available(acct, micros);
END $$;
-- The oracle: the same report straight from the ledger and the requests.
CREATE FUNCTION pg_temp.oracle(acct bigint, from_ts timestamptz, to_ts timestamptz,
                               group_by text[])
RETURNS TABLE(bucket_start timestamptz, model text, provider text, scope text,
              requests bigint, cost_micros bigint, refunded_micros bigint)
LANGUAGE sql AS $$
    SELECT CASE WHEN u.unit IS NOT NULL
                THEN date_trunc(u.unit, l.created_at, current_setting('billing.timezone')) END,
           CASE WHEN 'model' = ANY (group_by) THEN q.model END,
           CASE WHEN 'provider' = ANY (group_by) THEN COALESCE(q.routing ->> 'provider', q.provider) END,
           CASE WHEN 'scope' = ANY (group_by) THEN q.scope END,
           count(*) FILTER (WHERE l.kind = 'usage'),
           COALESCE(-sum(l.amount_micros) FILTER (WHERE l.kind = 'usage'), 0)::bigint,
           COALESCE(sum(l.amount_micros) FILTER (WHERE l.kind = 'refund'), 0)::bigint
      FROM billing.ledger l LEFT JOIN billing.requests q USING (request_id)
     CROSS JOIN (SELECT (SELECT w FROM unnest(group_by) w WHERE w IN ('hour', 'day', 'month'))) u(unit)
     WHERE (acct IS NULL OR l.account_id = acct) AND l.kind IN ('usage', 'refund')
       AND l.created_at >= from_ts AND l.created_at < to_ts
     GROUP BY 1, 2, 3, 4
$$;
-- Rows in which usage() and the oracle differ (0: equal).
CREATE FUNCTION pg_temp.diff(acct bigint, from_ts timestamptz, to_ts timestamptz,
                             group_by text[]) RETURNS bigint
LANGUAGE sql AS $$
    SELECT count(*) FROM (
        (SELECT * FROM billing.usage(acct, from_ts, to_ts, group_by)
         EXCEPT ALL SELECT * FROM pg_temp.oracle(acct, from_ts, to_ts, group_by))
        UNION ALL
        (SELECT * FROM pg_temp.oracle(acct, from_ts, to_ts, group_by)
         EXCEPT ALL SELECT * FROM billing.usage(acct, from_ts, to_ts, group_by))) d
$$;
-- Every grouping of interest over a few windows, against the oracle.
CREATE FUNCTION pg_temp.diffs(acct bigint) RETURNS TABLE(windows integer, groupings integer,
                                                         differing bigint)
LANGUAGE sql AS $$
    SELECT count(DISTINCT w.f)::integer, count(DISTINCT g.g)::integer,
           sum(pg_temp.diff(acct, w.f, w.t, g.g))
      FROM (VALUES ('2026-01-01 00:00+00'::timestamptz, '2026-12-01 00:00+00'::timestamptz),
                   ('2026-01-15 12:07+00', '2026-01-16 03:00+00'),
                   ('2026-03-28 00:00+00', '2026-03-31 00:00+00'),
                   ('2026-10-24 21:10+00', '2026-10-25 05:00+00'),
                   ('-infinity', 'infinity')) w(f, t),
           (VALUES ('{}'::text[]), ('{hour}'), ('{day}'), ('{month}'), ('{model}'), ('{provider}'),
                   ('{scope}'), ('{day,model}'), ('{month,model,provider,scope}'),
                   ('{hour,provider}'), ('{scope,day}')) g(g)
     -- every account of every test: unbounded sums may overflow a bigint
     WHERE acct IS NOT NULL OR w.f > '-infinity'
$$;
-- pg_temp.diffs in UTC, Europe/Berlin and Asia/Kolkata (then the zone of before)
CREATE FUNCTION pg_temp.diffs_by_zone(acct bigint)
RETURNS TABLE(zone text, windows integer, groupings integer, differing bigint)
LANGUAGE plpgsql AS $$
DECLARE
    before text := current_setting('billing.timezone');
BEGIN
    FOREACH zone IN ARRAY ARRAY['UTC', 'Europe/Berlin', 'Asia/Kolkata'] LOOP
        PERFORM set_config('billing.timezone', zone, false);
        RETURN QUERY SELECT zone, d.* FROM pg_temp.diffs(acct) d;
    END LOOP;
    PERFORM set_config('billing.timezone', before, false);
END $$;
-- rollup_usage until its horizon is past every entry (another session,
-- such as autovacuum, may hold it back for a moment)
CREATE FUNCTION pg_temp.rolled_up() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. 200 LOOP
        PERFORM billing.rollup_usage();
        IF (SELECT rolled_up_to FROM billing.rollup_state)
           >= (SELECT max(entry_id) FROM billing.ledger) THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN false;
END $$;

-- ann: two models, two providers, scopes, across months, a refund
SELECT pg_temp.usage_at(:ann, 'rp-img', 'acme', NULL, 40000, '2026-01-15 12:05+00') AS r1 \gset
SELECT pg_temp.usage_at(:ann, 'rp-img', 'acme', 'team-a', 40000, '2026-01-15 12:10+00') AS r2 \gset
SELECT pg_temp.usage_at(:ann, 'rp-img', 'beta', 'team-a', 45000, '2026-01-15 23:59:59.999999+00') AS r3 \gset
SELECT pg_temp.usage_at(:ann, 'rp-vid', 'acme', 'team-b', 240000, '2026-01-16 00:00+00') AS r4 \gset
SELECT pg_temp.usage_at(:ann, 'rp-vid', 'acme', NULL, 300000, '2026-02-03 08:00+00') AS r5 \gset
SELECT pg_temp.refund_at(:ann, :r4, 100000, '2026-02-10 09:00+00');
-- a DST spring day in Berlin (23 hours) and an autumn night (02:00-03:00 twice)
SELECT pg_temp.usage_at(:ann, 'rp-img', 'acme', NULL, 40000, '2026-03-28 23:30+00') IS NOT NULL AS ok;
SELECT pg_temp.usage_at(:ann, 'rp-img', 'acme', NULL, 40000, '2026-03-29 21:30+00') IS NOT NULL AS ok;
SELECT pg_temp.usage_at(:ann, 'rp-img', 'acme', NULL, 40000, '2026-03-29 22:30+00') IS NOT NULL AS ok;
SELECT pg_temp.usage_at(:ann, 'rp-img', 'acme', NULL, 40000, '2026-10-25 00:30+00') IS NOT NULL AS ok;
SELECT pg_temp.usage_at(:ann, 'rp-img', 'acme', NULL, 40000, '2026-10-25 01:30+00') IS NOT NULL AS ok;
-- a day boundary of Asia/Kolkata (18:30 UTC) between two requests
SELECT pg_temp.usage_at(:ann, 'rp-img', 'beta', NULL, 45000, '2026-03-30 18:20+00') IS NOT NULL AS ok;
SELECT pg_temp.usage_at(:ann, 'rp-img', 'beta', NULL, 45000, '2026-03-30 18:40+00') IS NOT NULL AS ok;
-- ben: one request, to tell accounts apart
SELECT pg_temp.usage_at(:ben, 'rp-img', 'acme', NULL, 40000, '2026-01-15 13:00+00') IS NOT NULL AS ok;

-- The default grouping: by day and model
SELECT * FROM billing.usage(:ann, '2026-01-01', '2026-03-01');
-- every single grouping
SELECT * FROM billing.usage(:ann, '2026-01-01', '2026-03-01', '{}');
SELECT * FROM billing.usage(:ann, '2026-01-15', '2026-01-17', '{hour}');
SELECT * FROM billing.usage(:ann, '2026-01-01', '2026-03-01', '{month}');
SELECT * FROM billing.usage(:ann, '2026-01-01', '2026-03-01', '{model}');
SELECT * FROM billing.usage(:ann, '2026-01-01', '2026-03-01', '{provider}');
SELECT * FROM billing.usage(:ann, '2026-01-01', '2026-03-01', '{scope}');
SELECT * FROM billing.usage(:ann, '2026-01-01', '2026-03-01', '{month,model,provider,scope}');
-- an empty window, and one before any usage
SELECT count(*) AS empty FROM billing.usage(:ann, '2026-01-15 12:05', '2026-01-15 12:05');
SELECT count(*) AS empty FROM billing.usage(:ann, '2025-01-01', '2025-02-01');
-- a window that cuts a day (and a quarter hour): 12:05 is before it
SELECT * FROM billing.usage(:ann, '2026-01-15 12:07', '2026-01-16 03:00', '{day}');
-- half-open: the last microsecond of the 15th is in, midnight of the 16th is out
SELECT * FROM billing.usage(:ann, '2026-01-15 23:59:59.999999', '2026-01-16 00:00', '{day,model}');
-- Berlin: the spring day of 23 hours is one bucket; the autumn hour 02:00
-- comes twice, as two buckets an hour apart
SET billing.timezone = 'Europe/Berlin';
SELECT * FROM billing.usage(:ann, '2026-03-28', '2026-03-31', '{day}');
SELECT * FROM billing.usage(:ann, '2026-10-24 22:00', '2026-10-25 03:00', '{hour}');
-- Kolkata (+05:30): the two requests of 18:20 and 18:40 UTC fall on two days
SET billing.timezone = 'Asia/Kolkata';
SELECT * FROM billing.usage(:ann, '2026-03-30', '2026-04-01', '{day}');
SET billing.timezone = 'UTC';
SELECT * FROM billing.usage(:ann, '2026-03-30', '2026-04-01', '{day}');

-- every account (admins): the other tests' accounts too, so only compared
SELECT pg_temp.diff(NULL, '2026-01-15', '2026-01-16', '{day}') AS differing,
       (SELECT requests >= 4 FROM billing.usage(NULL, '2026-01-15', '2026-01-16', '{day}')) AS ann_and_ben;
-- the refund is in refunded_micros, in its own month, with its request's model
SELECT * FROM billing.usage(:ann, '2026-02-01', '2026-03-01', '{model,scope}');

-- refusals, 22023, 42501 and PB404
SELECT regress.try(format('SELECT * FROM billing.usage(%s, %L, %L)', :ann, '2026-02-01', '2026-01-01'));
SELECT regress.try(format('SELECT * FROM billing.usage(%s, %L, %L, %L)', :ann, '2026-01-01', '2026-02-01', '{week}'));
SELECT regress.try(format('SELECT * FROM billing.usage(%s, %L, %L, %L)', :ann, '2026-01-01', '2026-02-01', '{day,month}'));
SELECT regress.try(format('SELECT * FROM billing.usage(%s, %L, %L, %L)', :ann, '2026-01-01', '2026-02-01', '{day,NULL}'));
SELECT regress.try(format('SELECT * FROM billing.usage(%s, %L, %L, NULL)', :ann, '2026-01-01', '2026-02-01'));
SELECT regress.try(format('SELECT * FROM billing.usage(%s, NULL, %L)', :ann, '2026-02-01'));
SELECT regress.try(format('SELECT * FROM billing.usage(%s, %L, %L)', -1, '2026-01-01', '2026-02-01'));
SELECT regress.try(format('SELECT * FROM billing.statement(NULL, %L, %L)', '2026-01-01', '2026-02-01'));
SELECT regress.try(format('SELECT * FROM billing.statement(%s, %L, %L)', :ann, '2026-02-01', '2026-01-01'));
SELECT regress.try(format('SELECT * FROM billing.statement(%s, %L, %L)', -1, '2026-01-01', '2026-02-01'));
DROP ROLE IF EXISTS rp_backend, rp_dba;
CREATE ROLE rp_backend LOGIN;
GRANT billing_app TO rp_backend;
CREATE ROLE rp_dba LOGIN;
GRANT billing_admin TO rp_dba;
GRANT USAGE ON SCHEMA regress TO rp_backend;
SET SESSION AUTHORIZATION rp_backend;
SELECT count(*) AS app_sees_its_account FROM billing.usage(:ann, '2026-01-01', '2026-03-01');
SELECT count(*) AS app_statement FROM billing.statement(:ann, '2026-01-01', '2026-03-01');
SELECT regress.try(format('SELECT * FROM billing.usage(NULL, %L, %L)', '2026-01-01', '2026-02-01'));
SELECT regress.try('SELECT billing.rollup_usage()');
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION rp_dba;
SELECT count(*) > 0 AS admin_every_account FROM billing.usage(NULL, '2026-01-01', '2026-03-01');
RESET SESSION AUTHORIZATION;
-- SET ROLE counts as well
SET ROLE rp_backend;
SELECT regress.try(format('SELECT * FROM billing.usage(NULL, %L, %L)', '2026-01-01', '2026-02-01'));
RESET ROLE;
REVOKE USAGE ON SCHEMA regress FROM rp_backend;
DROP ROLE rp_backend, rp_dba;
-- rollup_usage needs a snapshot per statement
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT regress.try('SELECT billing.rollup_usage()');
ROLLBACK;

-- Nothing is written by a report or a statement
BEGIN;
SELECT count(*) > 0 AS reported FROM billing.usage(NULL, '2026-01-01', '2026-12-01', '{hour,model,provider,scope}');
SELECT count(*) > 0 AS listed FROM billing.statement(:ann, '-infinity', 'infinity');
SELECT pg_current_xact_id_if_assigned() IS NULL AS nothing_written;
COMMIT;

-- The report equals the ledger before the rollup, in every zone ...
SELECT * FROM pg_temp.diffs_by_zone(:ann);
SELECT * FROM pg_temp.diffs(NULL);
-- ... and after it, when the rollup has taken everything in
SELECT pg_temp.rolled_up() AS rolled_up;
SELECT count(*) > 0 AS has_rollup_rows FROM billing.usage_rollup WHERE account_id = :ann;
SELECT * FROM pg_temp.diffs_by_zone(:ann);
-- a zone with a historic offset that is no whole quarter hour (LMT before
-- 1893): the cut slots are read from the ledger
SET billing.timezone = 'Europe/Amsterdam';
SELECT pg_temp.usage_at(:ben, 'rp-img', 'acme', NULL, 40000, '1900-01-01 23:50+00') IS NOT NULL AS ok;
SELECT pg_temp.usage_at(:ben, 'rp-img', 'acme', NULL, 40000, '1900-01-01 23:35+00') IS NOT NULL AS ok;
SELECT pg_temp.rolled_up() AS rolled_up;
SELECT * FROM billing.usage(:ben, '1899-12-31', '1900-01-03', '{day}');
SELECT pg_temp.diff(:ben, '1899-12-31', '1900-01-03', '{day}') AS differing;
SET billing.timezone = 'UTC';
SELECT * FROM pg_temp.diffs(NULL);

-- A charge committed a moment ago counts at once, before any rollup, and
-- a refund of it too (real settlement: a routing provider, executed by beta)
SELECT (billing.charge(:ann, 'rp-img', '{"n":1}', '{"images":[{"width":1024,"height":1024}]}',
                       '{"provider":"beta"}') ->> 'request_id')::bigint AS live \gset
SELECT billing.refund_request(:live, 10000) ->> 'amount_micros' AS refunded;
SELECT billing.grant_credits(:ann, 500000, NULL, 'promotional') > 0 AS granted;
SELECT model, provider, requests, cost_micros, refunded_micros
  FROM billing.usage(:ann, now() - interval '1 hour', now() + interval '1 hour', '{model,provider}');
SELECT pg_temp.diff(:ann, now() - interval '1 hour', now() + interval '1 hour', '{hour,model,provider,scope}')
       AS differing;
SELECT pg_temp.rolled_up() AS rolled_up;
SELECT pg_temp.diff(:ann, now() - interval '1 hour', now() + interval '1 hour', '{hour,model,provider,scope}')
       AS differing;

-- Statements: entries in entry order, each with the balance after it
SELECT created_at, kind, amount_micros, balance_after_micros, model, reference
  FROM billing.statement(:ann, '2026-01-01', '2026-03-01');
-- the running balance is exact from the account's first entry on
SELECT bool_and(s.balance_after_micros = (SELECT sum(l.amount_micros) FROM billing.ledger l
                                           WHERE l.account_id = :ann AND l.entry_id <= s.entry_id))
       AS exact
  FROM billing.statement(:ann, '-infinity', 'infinity') s;
-- the last balance of a statement to the future is balance()
SELECT (SELECT balance_after_micros FROM billing.statement(:ann, '2026-01-01', 'infinity')
         ORDER BY entry_id DESC LIMIT 1)
       = (billing.balance(:ann) ->> 'balance_micros')::bigint AS last_is_balance;
SELECT kind, amount_micros FROM billing.statement(:ann, now() - interval '1 hour', 'infinity');
SELECT count(*) AS empty FROM billing.statement(:ann, '2025-01-01', '2025-02-01');

-- Checkpoints: an account with more than 1024 entries gets one, and
-- statements from it are exact
SELECT billing.create_account('rp-many') AS many \gset
SELECT billing.add_funds(:many, 100000000) > 0 AS funded;
SELECT count(pg_temp.usage_at(:many, 'rp-img', 'acme', NULL, 1000 + g,
                              '2026-05-01'::timestamptz + g * interval '1 minute')) AS posted
  FROM generate_series(1, 3000) g;
SELECT pg_temp.rolled_up() AS rolled_up;
SELECT count(*) AS checkpoints FROM billing.ledger_checkpoints WHERE account_id = :many;
SELECT count(*) AS entries, bool_and(s.balance_after_micros
                  = (SELECT sum(l.amount_micros) FROM billing.ledger l
                      WHERE l.account_id = :many AND l.entry_id <= s.entry_id)) AS exact
  FROM billing.statement(:many, '2026-05-02 20:00', '2026-05-03 02:00') s;
SELECT * FROM billing.usage(:many, '2026-05-01', '2026-05-04', '{day}');
SELECT pg_temp.diff(:many, '2026-05-01 10:10', '2026-05-03 01:01', '{hour}') AS differing;

-- A rollup that disagrees with the ledger is found by verify()
SELECT count(*) AS problems FROM billing.verify();
BEGIN;
UPDATE billing.usage_rollup SET cost_sum = cost_sum + 1
 WHERE account_id = :ben AND slot_start = '2026-01-15 13:00+00';
UPDATE billing.ledger_checkpoints SET balance_micros = balance_micros + 1 WHERE account_id = :many
 AND entry_id = (SELECT min(entry_id) FROM billing.ledger_checkpoints WHERE account_id = :many);
SELECT regexp_replace(problem, 'entry \d+', 'entry N') AS problem FROM billing.verify() ORDER BY problem;
ROLLBACK;
SELECT count(*) AS problems FROM billing.verify();
