-- A failed call fails like any SQL statement (docs/operations.md, "A failed
-- call fails like any SQL statement"): cancelled by statement_timeout, lock_timeout or
-- pg_cancel_backend() while it waits, ended by a deadlock, a serialization
-- failure or a read-only transaction, it leaves its session as a failed
-- plain statement would, and nothing of it stays. The calls run on a second
-- connection (the victim, through dblink) while a third (the holder) holds
-- the account's rows; after each, the victim's next statement must run.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT regress.image_model('cn-img', 1000);
SELECT billing.set_model('cn-vid', 'video', 'acme', 'Acme Video');
SELECT billing.set_price('cn-vid', '[{"type":"output","metric":"second","unit_price_micros":1000}]',
                         NULL, now() - interval '1 day') > 0 AS priced;
SELECT billing.create_account('cn-a') AS a \gset
SELECT billing.create_account('cn-b') AS b \gset
SELECT billing.add_funds(:a, 100000000) > 0 AS funded, billing.add_funds(:b, 100000000) > 0 AS funded;
SELECT billing.begin_request(:a, 'cn-vid', '{"duration_seconds":4}') ->> 'request_id' AS open_req \gset
SELECT billing.set_spend_limit(:a, 5000000, 'month');
SELECT billing.charge(:a, 'cn-img', '{}', regress.images(1)) ->> 'request_id' AS done_req \gset
-- reversals (docs/topup.md): an account with a succeeded top-up, a grant and funds
SELECT billing.create_account('cn-c') AS c \gset
SELECT billing.add_funds(:c, 1000000) AS c_funds \gset
SELECT billing.configure_auto_topup(:c, 5000000, 5000000);
SELECT topup_id AS c_topup FROM billing.topups WHERE account_id = :c \gset
SELECT billing.complete_topup(:c_topup, true) ->> 'status' AS completed,
       billing.configure_auto_topup(:c, 5000000, 5000000, false);
SELECT billing.grant_credits(:c, 1000000) AS c_grant \gset
SELECT format('host=%s port=%s dbname=%s user=%s', current_setting('unix_socket_directories'),
              current_setting('port'), current_database(), current_user) AS conninfo \gset
SELECT dblink_connect('victim', :'conninfo'), dblink_connect('holder', :'conninfo');
SELECT pid AS victim_pid FROM dblink('victim', 'SELECT pg_backend_pid()') AS t(pid integer) \gset

-- The state that nothing may change: every account's balance and the ledger.
CREATE FUNCTION pg_temp.state() RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(format('%s %s', a.account_id, billing.balance(a.account_id)
                             - 'computed_at' - 'low_balance_threshold_micros'), '; ' ORDER BY a.account_id)
           || format(' / %s entries, %s requests', (SELECT count(*) FROM billing.ledger),
                     (SELECT count(*) FROM billing.requests))
      FROM billing.accounts a WHERE a.external_id LIKE 'cn-%' $$;
SELECT pg_temp.state() AS before \gset

-- The holder locks the account's row and every row that hangs off it, in a
-- transaction left open.
CREATE FUNCTION pg_temp.locked(conn text, tab text, acct bigint) RETURNS bigint LANGUAGE sql AS $$
    SELECT n FROM dblink(conn, format('SELECT count(*) FROM (SELECT FROM billing.%s WHERE account_id = %s FOR UPDATE) s',
                                      tab, acct)) AS t(n bigint) $$;
CREATE FUNCTION pg_temp.hold(acct bigint, gate boolean DEFAULT false) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM dblink_exec('holder', 'BEGIN');
    PERFORM pg_temp.locked('holder', t, acct)
       FROM unnest(ARRAY['accounts', 'account_slices', 'requests', 'spend_limits', 'limit_slices']) t;
    -- and the image model's row, which set_provider_cost locks
    PERFORM * FROM dblink('holder', 'SELECT 1 FROM billing.models WHERE model = ''cn-img'' FOR UPDATE')
                AS t(x integer);
    -- and when asked its gate, in the exclusive mode that a change of its
    -- limits takes (a charge then waits for the gate, not in its fast path)
    PERFORM * FROM dblink('holder', format('SELECT billing.set_spend_limit(%s, 5000000, ''month'')::text', acct))
                AS t(r text) WHERE gate;
END $$;
-- A charge of one image on the victim, as a query
CREATE FUNCTION pg_temp.charge_sql(acct bigint) RETURNS text LANGUAGE sql AS $$
    SELECT format('SELECT billing.charge(%s, ''cn-img'', ''{}'', ''{"images":[{}]}'')::text', acct) $$;
-- Waits until the victim waits for a lock.
CREATE FUNCTION pg_temp.await_victim(pid integer) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. 2000 LOOP
        EXIT WHEN EXISTS (SELECT FROM pg_stat_activity a WHERE a.pid = await_victim.pid AND a.wait_event_type = 'Lock');
        PERFORM pg_sleep(0.005);
    END LOOP;
END $$;
-- Whether the victim's next statement runs.
CREATE FUNCTION pg_temp.next() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    RETURN (SELECT r FROM dblink('victim', 'SELECT ''the next statement ran''') AS t(r text));
EXCEPTION WHEN OTHERS THEN
    RETURN 'the next statement failed: ' || SQLSTATE || ': ' || SQLERRM;
END $$;
-- The end of a call on the victim: its SQLSTATE and message, then whether
-- the victim's next statement ran. In a transaction block (then) is what
-- the victim sends after the error, e.g. ROLLBACK TO SAVEPOINT s.
CREATE FUNCTION pg_temp.outcome(then_sql text DEFAULT NULL) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    result text;
BEGIN
    BEGIN
        SELECT 'ok' INTO result FROM dblink_get_result('victim') AS t(r text);
        PERFORM * FROM dblink_get_result('victim') AS t(r text);
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        result := SQLSTATE || ': ' || SQLERRM;
        PERFORM * FROM dblink_get_result('victim', false) AS t(r text);
    END;
    IF then_sql IS NOT NULL THEN
        PERFORM dblink_exec('victim', then_sql);
    END IF;
    RETURN result || ' / ' || pg_temp.next();
END $$;
-- Runs call on the victim while the holder holds acct: ended by how
-- (statement_timeout, lock_timeout, or cancel: pg_cancel_backend()).
CREATE FUNCTION pg_temp.cancelled(how text, acct bigint, call text, pid integer) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    result text;
BEGIN
    PERFORM pg_temp.hold(acct, call LIKE '%set_spend_limit%');
    PERFORM dblink_exec('victim', CASE how WHEN 'cancel' THEN 'RESET lock_timeout'
                                          ELSE format('SET %s = ''200ms''', how) END);
    PERFORM dblink_send_query('victim', call);
    IF how = 'cancel' THEN
        PERFORM pg_temp.await_victim(pid);
        PERFORM pg_cancel_backend(pid);
    END IF;
    result := pg_temp.outcome();
    PERFORM dblink_exec('victim', format('RESET %s', CASE how WHEN 'cancel' THEN 'lock_timeout' ELSE how END));
    PERFORM dblink_exec('holder', 'ROLLBACK');
    RETURN result;
END $$;

-- Every call that waits for the account, ended three ways.
SELECT how, regexp_replace(call, '\(\d+', '(N') AS call, pg_temp.cancelled(how, :a, call, :victim_pid) AS outcome
  FROM unnest(ARRAY['lock_timeout', 'statement_timeout', 'cancel']) how,
       unnest(ARRAY[
           format('SELECT billing.charge(%s, ''cn-img'', ''{}'', ''{"images":[{}]}'')', :a),
           format('SELECT billing.charge(%s, ''cn-img'', ''{}'', ''{"images":[{}]}'', ''{}'', ''cn-key'')', :a),
           format('SELECT billing.begin_request(%s, ''cn-vid'', ''{"duration_seconds":2}'')', :a),
           format('SELECT billing.complete_request(%s, ''{"duration_seconds":4}'')', :open_req),
           format('SELECT billing.fail_request(%s, ''upstream'')', :open_req),
           format('SELECT billing.cancel_request(%s)', :open_req),
           format('SELECT billing.add_funds(%s, 1000)', :a),
           format('SELECT billing.adjust_balance(%s, -1000, ''correction'')', :a),
           format('SELECT billing.refund_request(%s, NULL, ''refund'')', :done_req),
           format('SELECT billing.grant_credits(%s, 1000, now() + interval ''1 day'')', :a),
           format('SELECT billing.set_spend_limit(%s, 6000000, ''month'')', :a),
           format('SELECT billing.configure_auto_topup(%s, 1000, 5000)', :a),
           format('SELECT billing.set_billing_type(%s, ''postpaid'')', :a),
           format('SELECT billing.set_credit_limit(%s, 1000, ''more'')', :a),
           format('SELECT billing.set_minimum_commitment(%s, 0, ''2030-01-01'')', :a)]) call
 ORDER BY how, call;
-- the reversals, while the holder holds their account
SELECT how, regexp_replace(call, '\(\d+', '(N') AS call, pg_temp.cancelled(how, :c, call, :victim_pid) AS outcome
  FROM unnest(ARRAY['lock_timeout', 'statement_timeout', 'cancel']) how,
       unnest(ARRAY[
           format('SELECT billing.reverse_topup(%s)', :c_topup),
           format('SELECT billing.reverse_funds(%s)', :c_funds),
           format('SELECT billing.void_grant(%s)', :c_grant),
           format('SELECT billing.configure_auto_topup(%s, 1000, 5000, true, 10000, 1000000)', :c)]) call
 ORDER BY how, call;
-- set_provider_cost waits for the model's row; no version is written
SELECT how, pg_temp.cancelled(how, :a, $$SELECT billing.set_provider_cost('cn-img', 'acme',
           '[{"type":"output","metric":"image","unit_price_micros":1}]')$$, :victim_pid) AS set_provider_cost
  FROM unnest(ARRAY['lock_timeout', 'statement_timeout', 'cancel']) how ORDER BY how;
SELECT count(*) AS cost_versions FROM billing.provider_costs WHERE model = 'cn-img';
SELECT pg_temp.state() = :'before' AS nothing_moved;

-- In a transaction block the block is aborted until the application rolls
-- back to its savepoint; then it goes on and commits what came before.
SELECT pg_temp.hold(:a);
SELECT dblink_exec('victim', 'BEGIN'),
       (SELECT r::jsonb ->> 'status' FROM dblink('victim', pg_temp.charge_sql(:b)) AS t(r text)) AS b_charged,
       dblink_exec('victim', 'SAVEPOINT s'), dblink_exec('victim', 'SET LOCAL lock_timeout = ''200ms''');
SELECT dblink_send_query('victim', pg_temp.charge_sql(:a));
SELECT pg_temp.outcome() AS in_block;
SELECT dblink_exec('victim', 'ROLLBACK TO SAVEPOINT s'), pg_temp.next() AS after_rollback_to_savepoint;
SELECT dblink_exec('victim', 'COMMIT'), dblink_exec('holder', 'ROLLBACK');
SELECT (billing.balance(:a) ->> 'balance_micros')::bigint = 100000000 - 1000 AS a_unchanged,
       (billing.balance(:b) ->> 'balance_micros')::bigint = 100000000 - 1000 AS b_charged_once;
SELECT pg_temp.state() AS before \gset

-- A deadlock: the victim holds b's slice and waits for a's; the holder,
-- which holds a's, then asks for b's. The victim's check runs first.
SELECT dblink_exec('holder', 'SET deadlock_timeout = ''10s'''),
       dblink_exec('victim', 'SET deadlock_timeout = ''100ms''');
SELECT pg_temp.hold(:a);
SELECT dblink_exec('victim', 'BEGIN'),
       (SELECT r::jsonb ->> 'status' FROM dblink('victim', pg_temp.charge_sql(:b)) AS t(r text)) AS b_charged;
SELECT dblink_send_query('victim', pg_temp.charge_sql(:a));
SELECT pg_temp.await_victim(:victim_pid);
SELECT dblink_send_query('holder', format('SELECT count(*) FROM (SELECT FROM billing.account_slices WHERE account_id = %s FOR UPDATE) s', :b));
SELECT regexp_replace(pg_temp.outcome('ROLLBACK'), 'Process \d+.*', '') AS deadlock;
SELECT count(*) > 0 AS holder_got_b FROM dblink_get_result('holder') AS t(n bigint);
SELECT * FROM dblink_get_result('holder') AS t(n bigint);
SELECT dblink_exec('holder', 'ROLLBACK'), dblink_exec('holder', 'RESET deadlock_timeout'),
       dblink_exec('victim', 'RESET deadlock_timeout');

-- A serialization failure: the victim's snapshot is older than the funds
-- added to every slice of a.
SELECT dblink_exec('victim', 'BEGIN ISOLATION LEVEL REPEATABLE READ'),
       (SELECT x FROM dblink('victim', 'SELECT 1') AS t(x integer)) AS snapshot_taken;
SELECT billing.adjust_balance(:a, 2000, 'serialization') > 0 AS adjusted;
SELECT billing.adjust_balance(:a, -2000, 'serialization') > 0 AS adjusted;
SELECT pg_temp.state() AS before \gset
SELECT dblink_send_query('victim', pg_temp.charge_sql(:a));
SELECT pg_temp.outcome('ROLLBACK') AS serialization;

-- A read-only transaction (as on a hot standby): refused, and the session
-- goes on.
CREATE FUNCTION pg_temp.on_victim(call text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM dblink_send_query('victim', call);
    RETURN pg_temp.outcome();
END $$;
SELECT dblink_exec('victim', 'SET default_transaction_read_only = on');
SELECT regexp_replace(call, '\(\d+', '(N') AS call, pg_temp.on_victim(call) AS read_only
  FROM unnest(ARRAY[
           format('SELECT billing.charge(%s, ''cn-img'', ''{}'', ''{"images":[{}]}'')', :a),
           format('SELECT billing.begin_request(%s, ''cn-vid'', ''{"duration_seconds":2}'')', :a),
           format('SELECT billing.add_funds(%s, 1000)', :a),
           format('SELECT billing.set_minimum_commitment(%s, 0, ''2030-01-01'')', :a),
           format('SELECT billing.reverse_topup(%s)', :c_topup),
           format('SELECT billing.void_grant(%s)', :c_grant)]) call
 ORDER BY call;
SELECT dblink_exec('victim', 'RESET default_transaction_read_only');

-- Nothing stayed: no lock, hold or slice budget; the calls work again.
SELECT pg_temp.state() = :'before' AS nothing_moved_since;
SELECT r ->> 'status' AS victim_charges
  FROM dblink('victim', format('SELECT billing.charge(%s, ''cn-img'', ''{}'', ''{"images":[{}]}'', ''{}'', ''cn-key'')', :a)) AS t(r jsonb);
SELECT billing.complete_request(:open_req, '{"duration_seconds":4}') ->> 'status' AS settles;
SELECT count(*) AS locks_left FROM pg_locks WHERE pid = :victim_pid AND locktype <> 'virtualxid' AND NOT (locktype = 'relation' AND relation::regclass::text LIKE 'pg_%');
SELECT dblink_disconnect('victim'), dblink_disconnect('holder');
SELECT * FROM billing.verify();
