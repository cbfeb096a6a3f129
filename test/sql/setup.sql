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
