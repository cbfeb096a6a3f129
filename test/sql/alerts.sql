-- Balance alerts (docs/limits.md): a threshold fires once on the way down
-- (holds count), re-arms at or above it; refusals of set_balance_alerts.
SET client_min_messages = warning;
SELECT regress.image_model('al-img', 1000000) AS priced;
SELECT billing.create_account('al-a') AS a \gset
SELECT billing.add_funds(:a, 10000000) > 0 AS funded;
CREATE FUNCTION pg_temp.charge(a bigint, n integer) RETURNS text LANGUAGE sql AS $$
    SELECT billing.charge(a, 'al-img', '{}', regress.images(n)) ->> 'cost' $$;
CREATE FUNCTION pg_temp.alerts(a bigint) RETURNS TABLE(threshold bigint, available bigint)
LANGUAGE sql AS $$
    SELECT (payload ->> 'threshold_micros')::bigint, (payload ->> 'available_micros')::bigint
      FROM billing.events WHERE account_id = a AND type = 'balance_alert' ORDER BY event_id $$;

-- refusals: nothing written
SELECT regress.try(format('SELECT billing.set_balance_alerts(%s, NULL)', :a));
SELECT regress.try(format('SELECT billing.set_balance_alerts(%s, ''{-1}'')', :a));
SELECT regress.try(format('SELECT billing.set_balance_alerts(%s, ''{5, 5}'')', :a));
SELECT regress.try(format('SELECT billing.set_balance_alerts(%s, ''{5, NULL}'')', :a));
SELECT regress.try(format('SELECT billing.set_balance_alerts(%s, ''{{5}}'')', :a));
SELECT regress.try('SELECT billing.set_balance_alerts(999999, ''{5}'')');
SELECT count(*) AS alerts FROM billing.balance_alerts;

-- 10 available; thresholds 8 and 3
SELECT billing.set_balance_alerts(:a, '{8000000, 3000000}');
SELECT * FROM pg_temp.alerts(:a);
SELECT pg_temp.charge(:a, 1);
SELECT * FROM pg_temp.alerts(:a);
-- 9 -> 7: crosses 8 once
SELECT pg_temp.charge(:a, 2);
SELECT pg_temp.charge(:a, 1);
SELECT * FROM pg_temp.alerts(:a);
-- a hold lowers the available amount: 6 -> 2 crosses 3
SELECT billing.begin_request(:a, 'al-img', '{"n":4}') ->> 'status' AS begun;
SELECT * FROM pg_temp.alerts(:a);
-- cancelled: back to 6, re-armed; crossing again fires again
SELECT billing.cancel_request(request_id) ->> 'status' AS cancelled
  FROM billing.requests WHERE account_id = :a AND status = 'queued';
SELECT threshold_micros, armed FROM billing.balance_alerts WHERE account_id = :a ORDER BY 1;
SELECT pg_temp.charge(:a, 4);
SELECT * FROM pg_temp.alerts(:a);
-- funds re-arm both; set while below fires at once
SELECT billing.add_funds(:a, 20000000) > 0 AS funded;
SELECT threshold_micros, armed FROM billing.balance_alerts WHERE account_id = :a ORDER BY 1;
SELECT billing.set_balance_alerts(:a, '{30000000}');
SELECT * FROM pg_temp.alerts(:a);
SELECT threshold_micros, armed FROM billing.balance_alerts WHERE account_id = :a ORDER BY 1;
-- an empty array removes them: charges fire nothing
SELECT billing.set_balance_alerts(:a, '{}');
SELECT pg_temp.charge(:a, 20);
SELECT count(*) AS alerts_events FROM billing.events WHERE account_id = :a AND type = 'balance_alert';
SELECT * FROM billing.verify();
