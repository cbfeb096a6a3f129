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
-- regress.try with the errdetail too
CREATE FUNCTION regress.try_detail(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    d text;
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
    RETURN SQLSTATE || ': ' || SQLERRM || ' / ' || d;
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
