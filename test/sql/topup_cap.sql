-- Auto top-up to a target and under a monthly cap (docs/topup.md):
-- the amount up to the target (rounded up to the minor unit), the cut to
-- what the cap leaves (rounded down), the refusal once nothing useful is
-- left (a warning, one auto_topup_capped event a month), failed top-ups not
-- counting, the month of billing.timezone, the 0.2.0 call, bad input.
-- Months are computed from now() in SQL: nothing depends on today's date.
SET client_min_messages = warning;
SET billing.timezone = 'UTC';
\set VERBOSITY terse
SELECT billing.set_model('tc-img', 'image', 'acme', 'Acme Imaging');
SELECT billing.set_price('tc-img', '[{"type":"output","metric":"image","unit_price_micros":1000000}]') > 0 AS priced;
-- n images at 1.00 USD each; returns the charge's status
CREATE FUNCTION pg_temp.charge(acct bigint, n int) RETURNS text LANGUAGE sql AS $$
    SELECT billing.charge(acct, 'tc-img', pg_catalog.jsonb_build_object('n', n),
            pg_catalog.jsonb_build_object('images',
                (SELECT pg_catalog.jsonb_agg('{"width":1,"height":1}'::jsonb)
                   FROM pg_catalog.generate_series(1, n)))) ->> 'status' $$;
CREATE FUNCTION pg_temp.pending(acct bigint) RETURNS bigint LANGUAGE sql AS $$
    SELECT topup_id FROM billing.topups WHERE account_id = acct AND status = 'pending' $$;
-- the account's top-ups in order, and its auto top-up in balance()
CREATE FUNCTION pg_temp.topups(acct bigint) RETURNS TABLE (amount bigint, status text, cap bigint)
LANGUAGE sql AS $$
    SELECT amount_micros, status, cap_micros FROM billing.topups WHERE account_id = acct ORDER BY topup_id $$;
CREATE FUNCTION pg_temp.shown(acct bigint) RETURNS jsonb LANGUAGE sql AS $$
    SELECT pg_catalog.jsonb_build_object('available', b -> 'available_micros', 'auto_topup', b -> 'auto_topup',
               'target', b -> 'auto_topup_target_micros', 'month', b -> 'auto_topup_month_micros',
               'cap', b -> 'auto_topup_month_cap_micros')
      FROM billing.balance(acct) b $$;
-- the events of the account since event_id "after", the month's times as
-- whether they are this month's bounds in UTC
CREATE FUNCTION pg_temp.events(acct bigint, after bigint) RETURNS TABLE (type text, payload jsonb)
LANGUAGE sql AS $$
    SELECT e.type, e.payload - 'topup_id' - 'month_start' - 'resets_at'
               || CASE WHEN e.type = 'auto_topup_capped' THEN pg_catalog.jsonb_build_object(
                      'this_month', (e.payload ->> 'month_start')::timestamptz
                                    = pg_catalog.date_trunc('month', pg_catalog.now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                                AND (e.payload ->> 'resets_at')::timestamptz
                                    = (pg_catalog.date_trunc('month', pg_catalog.now() AT TIME ZONE 'UTC')
                                       + interval '1 month') AT TIME ZONE 'UTC')
                  ELSE '{}' END
      FROM billing.events e WHERE e.account_id = acct AND e.event_id > after ORDER BY e.event_id $$;

-- docs/topup.md's example: threshold 25, target 50, minimum 10, 21.004 available:
-- a top-up of 29 (50 - 21.004 = 28.996, rounded up to whole cents)
SELECT billing.create_account('tc-a') AS a \gset
SELECT billing.add_funds(:a, 30004000) > 0 AS funded;
SELECT pg_temp.charge(:a, 9);
SELECT billing.configure_auto_topup(:a, 25000000, 10000000, true, 50000000);
SELECT * FROM pg_temp.topups(:a);
SELECT pg_temp.shown(:a);
SELECT * FROM pg_temp.events(:a, 0);
SELECT billing.complete_topup(pg_temp.pending(:a), true, 'pay-1') ->> 'status' AS completed;

-- A cap of 40.005 a month: 29 used, 11.005 left. The next top-up would be
-- for 50 - 24.004 = 26 (rounded up): cut to 11.00 (rounded down, >= 10).
SELECT COALESCE(max(event_id), 0) AS ev1 FROM billing.events WHERE account_id = :a \gset
SELECT billing.configure_auto_topup(:a, 25000000, 10000000, true, 50000000, 40005000);
SELECT pg_temp.charge(:a, 26);
SELECT * FROM pg_temp.topups(:a);
SELECT * FROM pg_temp.events(:a, :ev1) WHERE type <> 'topup_succeeded';
SELECT billing.complete_topup(pg_temp.pending(:a), true, 'pay-2') ->> 'status' AS completed;
SELECT pg_temp.shown(:a);

-- 1.005 left, below the minimum of 10: no top-up, the charge goes through
-- with a warning; the first refusal of the month writes one event, the
-- next ones none
SELECT COALESCE(max(event_id), 0) AS ev2 FROM billing.events WHERE account_id = :a \gset
SELECT pg_temp.charge(:a, 15);
SELECT pg_temp.charge(:a, 1);
SELECT count(*) AS pending FROM billing.topups WHERE account_id = :a AND status = 'pending';
SELECT * FROM pg_temp.events(:a, :ev2) WHERE type LIKE 'auto_topup%';
SELECT auto_topup_capped_month = date_trunc('month', now() AT TIME ZONE 'UTC')::date AS capped_this_month
  FROM billing.accounts WHERE account_id = :a;

-- A failed top-up does not count: the cap raised to 60 leaves 20; the
-- top-up requested at once fails, the next is cut to 20 again
SELECT billing.configure_auto_topup(:a, 25000000, 10000000, true, 50000000, 60000000);
SELECT billing.complete_topup(pg_temp.pending(:a), false, NULL, 'card declined') ->> 'status' AS failed;
SELECT pg_temp.charge(:a, 1);
SELECT * FROM pg_temp.topups(:a);
SELECT pg_temp.shown(:a);

-- The month is billing.timezone's: top-ups of the month before count no
-- more (re-dated to the day before this month began)
SELECT billing.complete_topup(pg_temp.pending(:a), false, NULL, 'card declined') ->> 'status' AS failed;
UPDATE billing.topups SET created_at = date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '1 day'
 WHERE account_id = :a;
SELECT pg_temp.shown(:a);
SELECT pg_temp.charge(:a, 1);
SELECT amount, status, cap FROM pg_temp.topups(:a) OFFSET 4;
SELECT billing.complete_topup(pg_temp.pending(:a), false, NULL, 'card declined') ->> 'status' AS failed;

-- A 0.2.0 call sets the whole configuration: no target, no cap
SELECT billing.configure_auto_topup(:a, 25000000, 10000000);
SELECT pg_temp.shown(:a);
SELECT amount, status, cap FROM pg_temp.topups(:a) OFFSET 5;
SELECT billing.configure_auto_topup(:a, 25000000, 10000000, false);

-- Refusals (22023, PB404, PB409) change nothing
SELECT billing.create_account('tc-off') AS off \gset
UPDATE billing.accounts SET active = false WHERE account_id = :off;
SELECT billing.create_account('tc-post', 'postpaid') AS post \gset
SELECT pg_temp.shown(:a) AS before \gset
SELECT regexp_replace(call, '\(\d+', '(N') AS call, regexp_replace(regress.try(call), 'account -?\d+', 'account N') AS refused
  FROM unnest(ARRAY[
      format('SELECT billing.configure_auto_topup(%s, 25000000, 10000000, true, 25000000)', :a),
      format('SELECT billing.configure_auto_topup(%s, 25000000, 10000000, true, 1000)', :a),
      format('SELECT billing.configure_auto_topup(%s, 25000000, 10000000, true, NULL, 0)', :a),
      format('SELECT billing.configure_auto_topup(%s, 25000000, 10000000, true, NULL, -5)', :a),
      format('SELECT billing.configure_auto_topup(%s, 25000000, 10000000, true, NULL, 9999999)', :a),
      format('SELECT billing.configure_auto_topup(NULL, 25000000, 10000000, true, 50000000)'),
      'SELECT billing.configure_auto_topup(-1, 25000000, 10000000, true, 50000000, 60000000)',
      format('SELECT billing.configure_auto_topup(%s, 25000000, 10000000, true, 50000000)', :off),
      format('SELECT billing.configure_auto_topup(%s, 25000000, 10000000, true, 50000000)', :post)]) call;
SELECT pg_temp.shown(:a) = :'before' AS unchanged,
       (SELECT count(*) FROM billing.topups WHERE account_id IN (:off, :post)) AS no_topups;

-- read-only (as on a standby): 25006, and the session goes on
BEGIN READ ONLY;
SELECT regress.try(format('SELECT billing.configure_auto_topup(%s, 25000000, 10000000, true, 50000000, 60000000)', :a));
ROLLBACK;
SELECT 'the session goes on' AS after;

-- a damaged cap: verify() finds a capped top-up its month passes
BEGIN;
UPDATE billing.topups SET cap_micros = 1000 WHERE account_id = :a AND status = 'succeeded' AND cap_micros IS NOT NULL;
SELECT regexp_replace(problem, '[0-9]+', 'N') AS problem FROM billing.verify(:a);
ROLLBACK;
SELECT * FROM billing.verify();
