-- Auto top-up (docs/topup.md): the state machine of billing.topups, the
-- consecutive-failure switch-off, the daily guard and bad input.
-- The NOTIFY payloads are checked by the topup_cross isolation spec and the
-- payment worker TAP test (psql prints them with a process id).
SET client_min_messages = warning;
-- regress.try with the detail and hint of the refusal, and its ids masked as N
CREATE FUNCTION pg_temp.refusal(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    detail text;
    hint text;
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    RETURN pg_catalog.regexp_replace(SQLSTATE || ': ' || SQLERRM
        || COALESCE(' | ' || NULLIF(detail, ''), '') || COALESCE(' | ' || NULLIF(hint, ''), ''),
        '(top-up|[Aa]ccount|pay_) ?[0-9]+', '\1 N', 'g');
END $$;
-- n images at 1.00 USD each
CREATE FUNCTION pg_temp.charge(acct bigint, n int) RETURNS bigint LANGUAGE sql AS $$
    SELECT (billing.charge(acct, 'tu-img', pg_catalog.jsonb_build_object('n', n),
            pg_catalog.jsonb_build_object('images',
                (SELECT pg_catalog.jsonb_agg('{"width":1024,"height":1024}'::jsonb)
                   FROM pg_catalog.generate_series(1, n)))) ->> 'cost_micros')::bigint $$;
-- what auto top-up has done to an account
CREATE FUNCTION pg_temp.state(acct bigint)
RETURNS TABLE (available bigint, enabled boolean, failures integer, pending bigint,
               succeeded bigint, failed bigint, credited bigint)
LANGUAGE sql AS $$
    SELECT (billing.balance(acct) ->> 'available_micros')::bigint,
           a.auto_topup_enabled, a.auto_topup_failures,
           (SELECT pg_catalog.count(*) FROM billing.topups t WHERE t.account_id = acct AND t.status = 'pending'),
           (SELECT pg_catalog.count(*) FROM billing.topups t WHERE t.account_id = acct AND t.status = 'succeeded'),
           (SELECT pg_catalog.count(*) FROM billing.topups t WHERE t.account_id = acct AND t.status = 'failed'),
           (SELECT COALESCE(pg_catalog.sum(l.amount_micros), 0)::bigint FROM billing.ledger l
             WHERE l.account_id = acct AND l.kind = 'auto_topup')
      FROM billing.accounts a WHERE a.account_id = acct $$;
-- the pending top-up of an account
CREATE FUNCTION pg_temp.pending(acct bigint) RETURNS bigint LANGUAGE sql AS $$
    SELECT topup_id FROM billing.topups WHERE account_id = acct AND status = 'pending' $$;
-- a top-up's JSON without its ids and times
CREATE FUNCTION pg_temp.shown(j jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT j - 'topup_id' - 'account_id' - 'created_at' - 'completed_at'
             || pg_catalog.jsonb_build_object('finished', j -> 'completed_at' <> 'null') $$;

SELECT billing.set_model('tu-img', 'image', 'acme', 'Acme Imaging');
SELECT billing.set_price('tu-img', '[{"type":"output","metric":"image","unit_price_micros":1000000}]') > 0 AS priced;

SELECT billing.create_account('tu-alice') AS alice \gset
SELECT billing.add_funds(:alice, 10000000) > 0 AS funded;

-- off by default: going below anything requests nothing
SELECT pg_temp.charge(:alice, 8);
SELECT * FROM pg_temp.state(:alice);

-- turned on while already below the threshold (2 < 5): one top-up at once
SELECT billing.configure_auto_topup(:alice, 5000000, 20000000);
SELECT * FROM pg_temp.state(:alice);
SELECT amount_micros, status, payment_reference, failure_reason, completed_at IS NULL AS open
  FROM billing.topups WHERE account_id = :alice;
-- never a second while one is pending: configuring again, charging again
SELECT billing.configure_auto_topup(:alice, 5000000, 20000000, true);
SELECT pg_temp.charge(:alice, 1);
SELECT * FROM pg_temp.state(:alice);

-- success credits once, through the ledger
SELECT pg_temp.pending(:alice) AS t1 \gset
SELECT billing.complete_topup(:t1, true, 'pay_1') AS first \gset
SELECT pg_temp.shown(:'first');
SELECT * FROM pg_temp.state(:alice);
SELECT kind, amount_micros, topup_id = :t1 AS this_topup, reference
  FROM billing.ledger WHERE account_id = :alice AND kind = 'auto_topup';
-- however often it is called: the first result again, no money moves
SELECT billing.complete_topup(:t1, true, 'pay_1') = :'first'::jsonb AS same_result;
SELECT billing.complete_topup(:t1, true) = :'first'::jsonb AS same_without_reference;
-- another outcome, or a second payment, is refused and changes nothing
SELECT pg_temp.refusal(format('SELECT billing.complete_topup(%s, false, NULL, %L)', :t1, 'declined'));
SELECT pg_temp.refusal(format('SELECT billing.complete_topup(%s, true, %L)', :t1, 'pay_other'));
SELECT * FROM pg_temp.state(:alice);

-- failures: each failed top-up counts, the next charge below asks again
SELECT pg_temp.charge(:alice, 17);                      -- 21 -> 4
SELECT * FROM pg_temp.state(:alice);
SELECT pg_temp.pending(:alice) AS t2 \gset
SELECT pg_temp.shown(billing.complete_topup(:t2, false, NULL, 'card declined'));
SELECT * FROM pg_temp.state(:alice);                    -- failures 1, nothing pending
SELECT billing.complete_topup(:t2, false) = billing.complete_topup(:t2, false, NULL, 'again')
    AS failed_twice_same_result;
SELECT pg_temp.refusal(format('SELECT billing.complete_topup(%s, true, %L)', :t2, 'pay_late'));
SELECT pg_temp.charge(:alice, 1);                       -- 4 -> 3: a new top-up
SELECT * FROM pg_temp.state(:alice);
-- a success resets the count of consecutive failures
SELECT pg_temp.pending(:alice) AS t3 \gset
SELECT billing.complete_topup(:t3, true, 'pay_3') ->> 'status' AS status;
SELECT * FROM pg_temp.state(:alice);                    -- 23, failures 0

-- billing.auto_topup_max_failures consecutive failures switch it off
SET billing.auto_topup_max_failures = 2;
SELECT pg_temp.charge(:alice, 19);                      -- 23 -> 4
SELECT pg_temp.pending(:alice) AS t4 \gset
SELECT billing.complete_topup(:t4, false, NULL, 'declined') ->> 'status' AS status;
SELECT * FROM pg_temp.state(:alice);
SELECT pg_temp.charge(:alice, 1);                       -- 4 -> 3
SELECT pg_temp.pending(:alice) AS t5 \gset
SELECT billing.complete_topup(:t5, false, NULL, 'declined') ->> 'status' AS status;
SELECT * FROM pg_temp.state(:alice);                    -- off, failures 2
SELECT pg_temp.charge(:alice, 1);                       -- off: nothing requested
SELECT * FROM pg_temp.state(:alice);
RESET billing.auto_topup_max_failures;

-- turned on again: a fresh count, and one top-up at once (2 < 5)
SELECT billing.configure_auto_topup(:alice, 5000000, 20000000);
SELECT * FROM pg_temp.state(:alice);
-- turned off while one is pending: it is cancelled, which is no failure
SELECT pg_temp.pending(:alice) AS t6 \gset
SELECT billing.configure_auto_topup(:alice, 5000000, 20000000, false);
SELECT * FROM pg_temp.state(:alice);
SELECT status, failure_reason FROM billing.topups WHERE topup_id = :t6;
-- completing the cancelled top-up: no credit; as failed it returns its result
SELECT pg_temp.refusal(format('SELECT billing.complete_topup(%s, true, %L)', :t6, 'pay_6'));
SELECT billing.complete_topup(:t6, false) ->> 'failure_reason' AS reason;
SELECT * FROM pg_temp.state(:alice);

-- a hold that takes the account below the threshold requests one too
SELECT billing.add_funds(:alice, 10000000) > 0 AS funded;   -- 12
SELECT billing.configure_auto_topup(:alice, 5000000, 20000000);
SELECT * FROM pg_temp.state(:alice);                    -- above: nothing
SELECT billing.begin_request(:alice, 'tu-img', '{"n":8}') ->> 'status' AS status;  -- holds 8
SELECT * FROM pg_temp.state(:alice);                    -- 4 available, one pending
SELECT billing.complete_topup(pg_temp.pending(:alice), true, 'pay_hold') ->> 'status' AS status;
SELECT * FROM pg_temp.state(:alice);
-- a charge rolled back takes its top-up request with it
BEGIN;
SELECT pg_temp.charge(:alice, 20);                      -- 24 -> 4
SELECT pending FROM pg_temp.state(:alice);
ROLLBACK;
SELECT * FROM pg_temp.state(:alice);

-- the daily guard: at billing.auto_topup_max_per_day top-ups in 24 hours,
-- no more, and the refusal is a warning (and a line in the server log)
SELECT pg_catalog.count(*) AS topups_today FROM billing.topups WHERE account_id = :alice;
SET billing.auto_topup_max_per_day = 7;
\set VERBOSITY terse
SELECT pg_temp.charge(:alice, 20);                      -- 24 -> 4: refused
\set VERBOSITY default
SELECT * FROM pg_temp.state(:alice);
SET billing.auto_topup_max_per_day = 8;
SELECT pg_temp.charge(:alice, 1);                       -- one more allowed
SELECT * FROM pg_temp.state(:alice);
RESET billing.auto_topup_max_per_day;
SELECT billing.complete_topup(pg_temp.pending(:alice), true, 'pay_9') ->> 'status' AS status;

-- bad input: refused with its SQLSTATE, nothing changes
SELECT * FROM pg_temp.state(:alice);
SELECT auto_topup_threshold_micros, auto_topup_amount_micros FROM billing.accounts WHERE account_id = :alice;
SELECT pg_temp.refusal(format('SELECT billing.configure_auto_topup(%s, -1, 20000000)', :alice));
SELECT pg_temp.refusal(format('SELECT billing.configure_auto_topup(%s, 5000000, -20000000)', :alice));
SELECT pg_temp.refusal(format('SELECT billing.configure_auto_topup(%s, 5000000, 0)', :alice));
SELECT pg_temp.refusal(format('SELECT billing.configure_auto_topup(%s, 5000000, -1, false)', :alice));
SELECT pg_temp.refusal(format('SELECT billing.configure_auto_topup(%s, NULL, 20000000)', :alice));
SELECT pg_temp.refusal(format('SELECT billing.configure_auto_topup(%s, 5000000, 20000000, NULL)', :alice));
SELECT pg_temp.refusal('SELECT billing.configure_auto_topup(-1, 5000000, 20000000)');
SELECT pg_temp.refusal('SELECT billing.configure_auto_topup(5000000, 5000000, 20000000)');
SELECT * FROM pg_temp.state(:alice);
SELECT auto_topup_threshold_micros, auto_topup_amount_micros FROM billing.accounts WHERE account_id = :alice;
SELECT pg_temp.refusal('SELECT billing.complete_topup(-1, true)');
SELECT pg_temp.refusal('SELECT billing.complete_topup(9223372036854775807, false)');
SELECT pg_temp.refusal(format('SELECT billing.complete_topup(%s, NULL)', :t1));
SELECT pg_temp.refusal(format('SELECT billing.complete_topup(NULL, true)'));
SELECT pg_temp.refusal(format('SELECT billing.complete_topup(%s, true, NULL, %L)', :t1, 'why'));
SELECT pg_temp.refusal(format('SELECT billing.complete_topup(%s, true, %L)', :t1, ''));
SELECT pg_temp.refusal(format('SELECT billing.complete_topup(%s, true, %L)', :t1, repeat('x', 257)));
SELECT pg_temp.refusal(format('SELECT billing.complete_topup(%s, false, NULL, %L)', :t2, repeat('x', 1025)));
SELECT * FROM pg_temp.state(:alice);

-- a pending top-up of an account disabled meanwhile cannot be completed
SELECT pg_temp.charge(:alice, 20);                      -- 24 -> 4
SELECT pg_temp.pending(:alice) AS t10 \gset
UPDATE billing.accounts SET active = false WHERE account_id = :alice;
SELECT pg_temp.refusal(format('SELECT billing.complete_topup(%s, true, %L)', :t10, 'pay_10'));
UPDATE billing.accounts SET active = true WHERE account_id = :alice;
SELECT billing.complete_topup(:t10, true, 'pay_10') ->> 'status' AS status;
SELECT * FROM pg_temp.state(:alice);

-- postpaid accounts have a credit limit, not top-ups
SELECT billing.create_account('tu-bob', 'postpaid') AS bob \gset
SELECT pg_temp.refusal(format('SELECT billing.configure_auto_topup(%s, 5000000, 20000000)', :bob));
SELECT pg_temp.refusal(format('SELECT billing.configure_auto_topup(%s, 5000000, 20000000, false)', :bob));
SELECT auto_topup_enabled, auto_topup_threshold_micros, auto_topup_amount_micros
  FROM billing.accounts WHERE account_id = :bob;

-- the money in the amount is exact
SELECT billing.create_account('tu-carol') AS carol \gset
SELECT billing.configure_auto_topup(:carol, 1, 12345678);
SELECT billing.complete_topup(pg_temp.pending(:carol), true, 'pay_c') -> 'amount' AS amount;
SELECT * FROM pg_temp.state(:carol);

SELECT * FROM billing.verify();
