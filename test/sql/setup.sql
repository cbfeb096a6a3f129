-- Shared by every regress test that follows: the extension and the helpers
-- of schema regress (a test's own helpers are pg_temp functions).
CREATE EXTENSION billing;
CREATE SCHEMA regress;
CREATE FUNCTION regress.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
SELECT regress.try('SELECT 1/0');
-- regress.try with the errdetail too, and the errhint when asked, each
-- after sep
CREATE FUNCTION regress.try_detail(sql text, with_hint boolean DEFAULT false, sep text DEFAULT ' / ')
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    d text;
    h text;
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    RETURN SQLSTATE || ': ' || SQLERRM || sep || d || CASE WHEN with_hint THEN sep || h ELSE '' END;
END $$;
-- Test only, a controlled clock: posts what a settled request posts (the
-- request, its usage entry, the change of the available amount) dated "at"
-- instead of the clock, postpaid when the account is unless told; returns
-- the request. Real settlements are dated by clock_timestamp().
CREATE FUNCTION regress.usage_at(acct bigint, model text, micros bigint, at timestamptz,
                                 postpaid boolean DEFAULT NULL, provider text DEFAULT 'acme')
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    rid bigint;
BEGIN
    INSERT INTO billing.requests (account_id, model, provider, status, params, outputs,
                                  cost_estimate_micros, cost_micros, currency, postpaid,
                                  created_at, completed_at)
    SELECT acct, model, provider, 'completed', '{}', '{}', micros, micros, a.currency,
           COALESCE(postpaid, a.billing_type = 'postpaid'), at, at
      FROM billing.accounts a WHERE a.account_id = acct
    RETURNING request_id, requests.postpaid INTO rid, postpaid;
    INSERT INTO billing.ledger (account_id, kind, amount_micros, postpaid, request_id, created_at)
    VALUES (acct, 'usage', -micros, postpaid, rid, at);
    PERFORM billing._adjust_available(acct, -micros);
    RETURN rid;
END $$;
SELECT regress.try_detail('SELECT 1/0');
-- Test only: a postpaid adjustment dated "at" (as adjust_balance posts one
-- then), for the invoices of past months
CREATE FUNCTION regress.adjust_at(acct bigint, micros bigint, at timestamptz, reason text DEFAULT 'regress')
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    eid bigint;
BEGIN
    INSERT INTO billing.ledger (account_id, kind, amount_micros, postpaid, reference, created_at)
    VALUES (acct, 'adjustment', micros, true, reason, at)
    RETURNING entry_id INTO eid;
    PERFORM billing._adjust_available(acct, micros);
    INSERT INTO billing.adjustments (account_id, entry_id, amount_micros, reason, created_at)
    VALUES (acct, eid, micros, reason, at);
END $$;
-- For the tests that cancel a call sent over dblink (dblink is theirs to
-- create): waits until backend pid waits for a lock ...
CREATE FUNCTION regress.await_lock(pid integer) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. 2000 LOOP
        EXIT WHEN EXISTS (SELECT FROM pg_stat_activity a WHERE a.pid = await_lock.pid AND a.wait_event_type = 'Lock');
        PERFORM pg_sleep(0.005);
    END LOOP;
END $$;
-- ... and the end of the call sent on connection conn: ok, or its SQLSTATE
-- and message (a cancel too, which WHEN OTHERS alone does not catch)
CREATE FUNCTION regress.sent_result(conn text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    result text;
BEGIN
    SELECT 'ok' INTO result FROM dblink_get_result(conn) AS t(r text);
    PERFORM * FROM dblink_get_result(conn) AS t(r text);
    RETURN result;
EXCEPTION WHEN OTHERS OR query_canceled THEN
    PERFORM * FROM dblink_get_result(conn, false) AS t(r text);
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
-- ... and call run on connection conn (of backend pid) while it waits,
-- ended by how: lock_timeout, statement_timeout (200 ms) or cancel
-- (pg_cancel_backend()); its end as sent_result says it
CREATE FUNCTION regress.ended_by(how text, conn text, call text, pid integer) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    result text;
BEGIN
    PERFORM dblink_exec(conn, CASE how WHEN 'cancel' THEN 'RESET lock_timeout'
                                       ELSE format('SET %s = ''200ms''', how) END);
    PERFORM dblink_send_query(conn, call);
    IF how = 'cancel' THEN
        PERFORM regress.await_lock(pid);
        PERFORM pg_cancel_backend(pid);
    END IF;
    result := regress.sent_result(conn);
    PERFORM dblink_exec(conn, format('RESET %s', CASE how WHEN 'cancel' THEN 'lock_timeout' ELSE how END));
    RETURN result;
END $$;
-- An image model of provider acme at unit_price micros an image, priced
-- since yesterday; true once priced.
CREATE FUNCTION regress.image_model(model text, unit_price bigint) RETURNS boolean
LANGUAGE sql AS $$
    SELECT billing.set_model(model, 'image', 'acme', 'Acme Images');
    SELECT billing.set_price(model, pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
               'type', 'output', 'metric', 'image', 'unit_price_micros', unit_price)),
           NULL, pg_catalog.now() - interval '1 day') > 0 $$;
-- The outputs of n images of one pixel.
CREATE FUNCTION regress.images(n integer) RETURNS jsonb LANGUAGE sql AS $$
    SELECT pg_catalog.jsonb_build_object('images',
        (SELECT pg_catalog.jsonb_agg('{"width":1,"height":1}'::jsonb) FROM pg_catalog.generate_series(1, n))) $$;
SELECT regress.image_model('setup-img', 1000), regress.images(2);
