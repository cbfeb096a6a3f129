-- Spend limits per period and per scope (docs/limits.md): admission against
-- every limit that applies, the PB402 refusal, balance()'s "limits", periods
-- and their reset, the spend_limit_reached event.
SET client_min_messages = warning;
SELECT regress.image_model('lim-img', 100000) AS priced;
SELECT billing.create_account('lim-a') AS a \gset
SELECT billing.add_funds(:a, 100000000) > 0 AS funded;
CREATE FUNCTION pg_temp.charge(a bigint, n integer, scope text DEFAULT NULL, key text DEFAULT NULL)
RETURNS text LANGUAGE sql AS $$
    SELECT regress.try(format('SELECT billing.charge(%s, %L, %L, %L, ''{}'', %L, %L)',
                              a, 'lim-img', '{}', regress.images(n), key, scope)) $$;
-- a refusal with its detail and hint; the reset instant moves with the
-- clock: its form is what is checked
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE sql AS $$
    SELECT regexp_replace(regress.try_detail(sql, true, E'\n'),
                          '\d{4}-\d\d-\d\d 00:00:00\+00', 'YYYY-MM-DD 00:00:00+00') $$;
CREATE FUNCTION pg_temp.charge_full(a bigint, n integer, scope text DEFAULT NULL) RETURNS text
LANGUAGE sql AS $$
    SELECT pg_temp.try(format('SELECT billing.charge(%s, %L, %L, %L, ''{}'', NULL, %L)',
                              a, 'lim-img', '{}', regress.images(n), scope)) $$;
CREATE FUNCTION pg_temp.limits(a bigint) RETURNS TABLE(scope text, period text, limit_micros bigint,
    spent bigint, held bigint, remaining bigint) LANGUAGE sql AS $$
    SELECT l ->> 'scope', l ->> 'period', (l ->> 'limit_micros')::bigint, (l ->> 'spent_micros')::bigint,
           (l ->> 'held_micros')::bigint, (l ->> 'remaining_micros')::bigint
      FROM jsonb_array_elements(billing.balance(a) -> 'limits') l $$;
CREATE FUNCTION pg_temp.state(a bigint) RETURNS text LANGUAGE sql AS $$
    SELECT format('requests %s, usage %s, events %s',
                  (SELECT count(*) FROM billing.requests WHERE account_id = a),
                  (SELECT -sum(amount_micros) FROM billing.ledger WHERE account_id = a AND kind = 'usage'),
                  (SELECT count(*) FROM billing.events WHERE account_id = a)) $$;

-- refusals of set_spend_limit: nothing written
SELECT regress.try(format('SELECT billing.set_spend_limit(%s, -1)', :a));
SELECT regress.try(format('SELECT billing.set_spend_limit(%s, 1000, ''year'')', :a));
SELECT regress.try(format('SELECT billing.set_spend_limit(%s, 1000, NULL)', :a));
SELECT regress.try(format('SELECT billing.set_spend_limit(%s, 1000, ''day'', '''')', :a));
SELECT regress.try(format('SELECT billing.set_spend_limit(%s, 1000, ''day'', %L)', :a, repeat('k', 257)));
SELECT regress.try('SELECT billing.set_spend_limit(999999, 1000)');
SELECT regress.try('SELECT billing.set_spend_limit(NULL, 1000)');
SELECT count(*) AS limits FROM billing.spend_limits WHERE account_id = :a;
-- removing a limit that does not exist changes nothing
SELECT billing.set_spend_limit(:a, NULL, 'day', 'nobody');
SELECT count(*) AS limits FROM billing.spend_limits WHERE account_id = :a;

-- usage already charged in the period counts when a limit is set
SELECT pg_temp.charge(:a, 2, 'key_1');
SELECT billing.set_spend_limit(:a, 500000, 'day', 'key_1');
SELECT billing.set_spend_limit(:a, 1000000, 'month');
SELECT * FROM pg_temp.limits(:a);

-- key_1: 0.30 left of its daily limit; a charge of 0.40 is refused, one of 0.30 fits
SELECT pg_temp.state(:a) AS before;
SELECT pg_temp.charge_full(:a, 4, 'key_1');
SELECT pg_temp.state(:a) AS after_refusal;
SELECT pg_temp.charge(:a, 3, 'key_1');
SELECT * FROM pg_temp.limits(:a);
-- nothing left: even 0.10 is refused; the detail names the scope's limit
SELECT pg_temp.charge_full(:a, 1, 'key_1');
-- another scope is held by the account's monthly limit only (0.50 left)
SELECT pg_temp.charge(:a, 6, 'key_2');
SELECT pg_temp.charge(:a, 5, 'key_2');
SELECT pg_temp.charge_full(:a, 1);
SELECT * FROM pg_temp.limits(:a);
-- both limits refuse: the one with the least left is named (the account's:
-- a raised key_1 limit has more left)
SELECT billing.set_spend_limit(:a, 5000000, 'day', 'key_1');
SELECT pg_temp.charge_full(:a, 1, 'key_1');
-- one spend_limit_reached event per limit and period
SELECT type, payload - 'period_start' - 'resets_at' AS payload FROM billing.events
 WHERE account_id = :a ORDER BY event_id;

-- holds count; settlement takes the effective cost (an overrun may pass the limit)
SELECT billing.create_account('lim-b') AS b \gset
SELECT billing.add_funds(:b, 100000000) > 0 AS funded;
SELECT billing.set_spend_limit(:b, 1000000, 'week', 'job');
SELECT billing.begin_request(:b, 'lim-img', '{"n":6}', NULL, 'job') ->> 'status' AS begun;
SELECT (billing.begin_request(:b, 'lim-img', '{"n":4}', NULL, 'job') -> 'metadata') ->> 'scope' AS scope;
SELECT * FROM pg_temp.limits(:b);
SELECT regress.try(format('SELECT billing.begin_request(%s, ''lim-img'', ''{"n":1}'', NULL, ''job'')', :b));
-- the first request completes with 8 images: 0.20 over the limit, charged in full
SELECT billing.complete_request(request_id, regress.images(8)) ->> 'cost' AS cost
  FROM billing.requests WHERE account_id = :b ORDER BY request_id LIMIT 1;
SELECT * FROM pg_temp.limits(:b);
SELECT billing.cancel_request(request_id) ->> 'status' AS cancelled
  FROM billing.requests WHERE account_id = :b AND status = 'queued';
SELECT * FROM pg_temp.limits(:b);
-- refunds do not give the period's spend back
SELECT billing.refund_request(request_id) ->> 'amount' AS refunded
  FROM billing.requests WHERE account_id = :b AND status = 'completed';
SELECT * FROM pg_temp.limits(:b);
-- a request without scope is not held by a scope's limit
SELECT pg_temp.charge(:b, 3);

-- limit 0 refuses everything that costs money; a free request passes
SELECT billing.set_spend_limit(:b, 0, 'day');
SELECT pg_temp.charge_full(:b, 1);
-- a changed limit is the one the next refusal names (limits are cached per backend)
SELECT billing.set_spend_limit(:b, 50000, 'day');
SELECT pg_temp.charge_full(:b, 1);
SELECT billing.set_spend_limit(:b, NULL, 'day');

-- the scope is part of what an idempotency key matches; metadata shows it
SELECT billing.charge(:b, 'lim-img', '{}', regress.images(1), '{}', 'k1') ->> 'scope' AS no_scope;
SELECT pg_temp.charge(:b, 1, 'job', 'k1');
SELECT billing.charge(:b, 'lim-img', '{}', regress.images(1), '{}', 'k2', 'other') ->> 'scope' AS scope;
SELECT billing.charge(:b, 'lim-img', '{}', regress.images(1), '{}', 'k2', 'other') ->> 'scope' AS replayed;
SELECT regress.try(format('SELECT billing.charge(%s, ''lim-img'', ''{}'', %L, ''{}'', NULL, '''')', :b, regress.images(1)));
SELECT regress.try(format('SELECT billing.begin_request(%s, ''lim-img'', ''{}'', NULL, %L)', :b, repeat('s', 257)));

-- periods in billing.timezone: resets_at is the next midnight, Monday, first of the month
SET billing.timezone = 'Asia/Kolkata';
SELECT billing.create_account('lim-c') AS c \gset
SELECT billing.set_spend_limit(:c, 1, 'day'), billing.set_spend_limit(:c, 1, 'week'),
       billing.set_spend_limit(:c, 1, 'month');
SELECT l ->> 'period' AS period,
       to_char((l ->> 'resets_at')::timestamptz AT TIME ZONE 'Asia/Kolkata', 'HH24:MI:SS') AS local_time,
       CASE l ->> 'period'
            WHEN 'day' THEN (l ->> 'resets_at')::timestamptz - clock_timestamp() <= interval '1 day'
            WHEN 'week' THEN extract(isodow FROM (l ->> 'resets_at')::timestamptz AT TIME ZONE 'Asia/Kolkata') = 1
            ELSE extract(day FROM (l ->> 'resets_at')::timestamptz AT TIME ZONE 'Asia/Kolkata') = 1 END AS boundary,
       (l ->> 'resets_at')::timestamptz > clock_timestamp() AS ahead
  FROM jsonb_array_elements(billing.balance(:c) -> 'limits') l;
-- the hint gives the reset in billing.timezone with its offset
SELECT billing._local_time('2026-12-01 18:30:00+00') AS kolkata;
RESET billing.timezone;
SELECT billing._local_time('2026-12-01 18:30:00+00') AS utc;

-- a period that ended: the first request of the next one refills the limit
-- (the slices, and the period whose event was written, are moved back a
-- period as superuser)
UPDATE billing.limit_slices SET period_start = period_start - interval '1 month',
                                period_end = clock_timestamp() - interval '1 microsecond'
 WHERE account_id = :a;
UPDATE billing.spend_limits SET reached_period_start = reached_period_start - interval '1 month'
 WHERE account_id = :a;
SELECT * FROM pg_temp.limits(:a);
SELECT pg_temp.charge(:a, 2, 'key_1');
SELECT * FROM pg_temp.limits(:a);
-- it can be reached again in the new period, and writes its event again
SELECT pg_temp.charge(:a, 8);
SELECT pg_temp.charge(:a, 1);
SELECT count(*) AS reached_events FROM billing.events
 WHERE account_id = :a AND type = 'spend_limit_reached' AND payload ->> 'scope' IS NULL;

-- removing limits: balance() shows none, requests pass
SELECT billing.set_spend_limit(:a, NULL, 'month'), billing.set_spend_limit(:a, NULL, 'day', 'key_1');
SELECT billing.balance(:a) -> 'limits' AS limits;
SELECT pg_temp.charge(:a, 1, 'key_1');

-- scopes of 1 to 256 characters, counted as characters: two of 201
-- two-byte characters that differ only at the end are each held to their
-- own limit (longer than a cached key, they are read every time)
SELECT billing.create_account('lim-mb') AS mb \gset
SELECT billing.add_funds(:mb, 100000000) > 0 AS funded;
SELECT billing.set_spend_limit(:mb, 0, 'day', repeat('é', 200) || 'a');
SELECT split_part(pg_temp.charge_full(:mb, 1, repeat('é', 200) || 'b'), E'\n', 1) AS other_scope,
       split_part(pg_temp.charge_full(:mb, 1, repeat('é', 200) || 'a'), E'\n', 1) AS limited_scope,
       split_part(pg_temp.charge_full(:mb, 1, repeat('é', 200) || 'b'), E'\n', 1) AS other_again;
SELECT * FROM billing.verify();
