-- Provider costs and margin (docs/pricing.md, "Provider costs and margin"):
-- cost versions, requests.provider_cost_micros at settlement, margin().
SET client_min_messages = warning;
SET TimeZone = 'UTC';
-- The state a refusal must leave as it was.
CREATE FUNCTION pg_temp.state() RETURNS text LANGUAGE sql AS $$
    SELECT format('%s versions, %s requests, %s entries, %s costed',
                  (SELECT count(*) FROM billing.provider_costs), (SELECT count(*) FROM billing.requests),
                  (SELECT count(*) FROM billing.ledger),
                  (SELECT count(provider_cost_micros) FROM billing.requests)) $$;
CREATE FUNCTION pg_temp.cost_of(rid bigint) RETURNS text LANGUAGE sql AS $$
    SELECT COALESCE(provider_cost_micros::text, 'unknown') FROM billing.requests WHERE request_id = rid $$;
CREATE FUNCTION pg_temp.charge(acct bigint, model text, outputs jsonb, routing jsonb DEFAULT '{}')
RETURNS bigint LANGUAGE sql AS $$
    SELECT (billing.charge(acct, model, '{}', outputs, routing) ->> 'request_id')::bigint $$;

-- An image model at 0.10 an image, run by acme (default) or zeta; a video model.
SELECT regress.image_model('pc-img', 100000);
SELECT billing.set_model('pc-img', 'image', 'zeta', 'Zeta Images', NULL, false);
SELECT billing.set_model('pc-img', 'image', 'beta', 'Beta Images', NULL, false);
SELECT billing.set_model('pc-vid', 'video', 'acme', 'Acme Video');
SELECT billing.set_price('pc-vid', '[{"type":"output","metric":"second","unit_price_micros":50000}]',
                         NULL, now() - interval '1 day') > 0 AS priced;
SELECT billing.create_account('pc-a') AS a \gset
SELECT billing.add_funds(:a, 100000000) > 0 AS funded;

-- 1. Cost versions: acme costs 0.06 an image since yesterday and 0.07 from
-- in an hour; the video only where 1080p; zeta 1 micro an image since
-- 2000; beta has none.
SELECT billing.set_provider_cost('pc-img', 'acme',
           '[{"type":"output","metric":"image","unit_price_micros":60000}]', now() - interval '1 day') > 0 AS costed;
SELECT billing.set_provider_cost('pc-img', 'acme',
           '[{"type":"output","metric":"image","unit_price_micros":70000}]', now() + interval '1 hour') AS scheduled \gset
SELECT billing.set_provider_cost('pc-vid', 'acme',
           '[{"type":"output","metric":"second","unit_price_micros":20000,"conditions":{"resolution":"1080p"}}]',
           now() - interval '1 day') > 0 AS costed;
SELECT model, provider, currency, components -> 0 ->> 'unit_price_micros' AS unit,
       effective_from > now() AS scheduled
  FROM billing.provider_costs WHERE model LIKE 'pc-%' ORDER BY cost_id;
SELECT billing.set_provider_cost('pc-img', 'zeta',
           '[{"type":"output","metric":"image","unit_price_micros":1}]', '2000-01-01') > 0 AS long_ago;

-- Refusals write nothing.
SELECT pg_temp.state() AS before \gset
SELECT regress.try(sql) FROM unnest(ARRAY[
    $$SELECT billing.set_provider_cost(NULL, 'acme', '[{"type":"output","metric":"image","unit_price_micros":1}]')$$,
    $$SELECT billing.set_provider_cost('pc-img', NULL, '[{"type":"output","metric":"image","unit_price_micros":1}]')$$,
    $$SELECT billing.set_provider_cost('pc-img', 'acme', NULL)$$,
    $$SELECT billing.set_provider_cost('pc-img', 'acme', '[{"type":"output","metric":"image","unit_price_micros":1}]', NULL)$$,
    $$SELECT billing.set_provider_cost('pc-img', 'acme', '[{"type":"output","metric":"image","unit_price_micros":1}]', 'infinity')$$,
    $$SELECT billing.set_provider_cost('pc-img', 'acme', '[]')$$,
    $$SELECT billing.set_provider_cost('pc-img', 'acme', '[{"type":"output","metric":"second","unit_price_micros":1}]')$$,
    $$SELECT billing.set_provider_cost('pc-img', 'acme', '[{"type":"output","metric":"image","unit_price_micros":-1}]')$$,
    $$SELECT billing.set_provider_cost('pc-nope', 'acme', '[{"type":"output","metric":"image","unit_price_micros":1}]')$$,
    $$SELECT billing.set_provider_cost('pc-img', 'nobody', '[{"type":"output","metric":"image","unit_price_micros":1}]')$$,
    $$SELECT billing.set_provider_cost('pc-img', '', '[{"type":"output","metric":"image","unit_price_micros":1}]')$$,
    $$SELECT billing.set_provider_cost('pc-img', 'zeta', '[{"type":"output","metric":"image","unit_price_micros":2}]', '2000-01-01')$$,
    $$UPDATE billing.provider_costs SET components = '[]' WHERE model = 'pc-img'$$,
    $$DELETE FROM billing.provider_costs WHERE model = 'pc-vid'$$,
    $$TRUNCATE billing.provider_costs$$]) sql;
SELECT pg_temp.state() = :'before' AS nothing_written;
-- a scheduled version may be withdrawn, and set again
DELETE FROM billing.provider_costs WHERE cost_id = :scheduled;
SELECT billing.set_provider_cost('pc-img', 'acme',
           '[{"type":"output","metric":"image","unit_price_micros":70000}]', now() + interval '1 hour') > 0 AS rescheduled;

-- 2. At settlement. A charge on acme: 2 images at 0.06; on zeta at its
-- version of 2000; on beta, which has no version, unknown; a reported
-- upstream cost wins; a cost of 0 is a known cost.
SELECT pg_temp.charge(:a, 'pc-img', regress.images(2)) AS on_acme \gset
SELECT pg_temp.charge(:a, 'pc-img', regress.images(2), '{"provider":"zeta"}') AS on_zeta \gset
SELECT pg_temp.charge(:a, 'pc-img', regress.images(2), '{"provider":"beta"}') AS on_beta \gset
SELECT pg_temp.charge(:a, 'pc-img', regress.images(1), '{"upstream_cost_micros":5000}') AS reported \gset
SELECT pg_temp.charge(:a, 'pc-img', regress.images(1), '{"upstream_cost_micros":0}') AS reported_zero \gset
SELECT pg_temp.cost_of(:on_acme) AS on_acme, pg_temp.cost_of(:on_zeta) AS on_zeta,
       pg_temp.cost_of(:on_beta) AS on_beta,
       pg_temp.cost_of(:reported) AS reported, pg_temp.cost_of(:reported_zero) AS reported_zero;
-- a bad upstream cost is refused, and nothing settles
SELECT (billing.begin_request(:a, 'pc-vid', '{"duration_seconds":4,"resolution":"1080p"}') ->> 'request_id')::bigint AS open \gset
SELECT pg_temp.state() AS before \gset
SELECT regress.try(format($$SELECT pg_temp.charge(%s, 'pc-img', regress.images(1), %L)$$, :a, r)) AS charge,
       regress.try(format($$SELECT billing.complete_request(%s, '{"duration_seconds":4}', %L)$$, :open, r)) AS complete,
       regress.try(format($$UPDATE billing.requests SET status = 'in_progress', routing = %L
                             WHERE request_id = %s$$, r, :open)) AS in_progress
  FROM unnest(ARRAY['{"upstream_cost_micros":-1}', '{"upstream_cost_micros":1.5}',
                    '{"upstream_cost_micros":"7"}', '{"upstream_cost_micros":null}',
                    '{"upstream_cost_micros":1e30}']) r;
SELECT pg_temp.state() = :'before' AS nothing_settled,
       (SELECT status FROM billing.requests WHERE request_id = :open) AS still;
-- an unfinished request has no provider cost, and none can be set
SELECT regress.try(format('UPDATE billing.requests SET provider_cost_micros = 1 WHERE request_id = %s', :open));
-- outputs that the version prices with no component: unknown, not an error
SELECT (billing.begin_request(:a, 'pc-vid', '{"duration_seconds":2,"resolution":"720p"}') ->> 'request_id')::bigint AS r720 \gset
SELECT (billing.begin_request(:a, 'pc-vid', '{"duration_seconds":2,"resolution":"720p"}') ->> 'request_id')::bigint AS r720b \gset
SELECT billing.complete_request(:r720, '{"duration_seconds":2}', '{}') ->> 'cost_micros' AS charged,
       pg_temp.cost_of(:r720) AS cost;
-- the version in force at the request's start prices it: one that takes
-- effect after it began does not
SELECT billing.set_provider_cost('pc-vid', 'acme',
           '[{"type":"output","metric":"second","unit_price_micros":90000}]', clock_timestamp()) > 0 AS newer;
SELECT billing.complete_request(:open, '{"duration_seconds":4}') ->> 'status' AS completed,
       pg_temp.cost_of(:open) AS at_start;
-- a plain UPDATE settles the same way
UPDATE billing.requests SET status = 'completed', outputs = '{"duration_seconds":2}',
       routing = '{"upstream_cost_micros":1234}' WHERE request_id = :r720b;
SELECT pg_temp.cost_of(:r720b) AS plain_update;
-- failed or cancelled: only a reported cost
SELECT (billing.begin_request(:a, 'pc-img', '{"n":1}') ->> 'request_id')::bigint AS f1 \gset
SELECT (billing.begin_request(:a, 'pc-img', '{"n":1}') ->> 'request_id')::bigint AS f2 \gset
SELECT (billing.begin_request(:a, 'pc-img', '{"n":1}') ->> 'request_id')::bigint AS c1 \gset
SELECT billing.fail_request(:f1, 'upstream', 50000) ->> 'status' AS failed;
UPDATE billing.requests SET status = 'failed', routing = '{"upstream_cost_micros":300}' WHERE request_id = :f2;
SELECT billing.cancel_request(:c1) ->> 'status' AS cancelled;
SELECT pg_temp.cost_of(:f1) AS failed, pg_temp.cost_of(:f2) AS failed_reported, pg_temp.cost_of(:c1) AS cancelled;

-- 3. Never shown to the application: not in metadata, not in an estimate,
-- and billing_app cannot read the column.
SELECT array_agg(k ORDER BY k) AS metadata_keys FROM jsonb_object_keys(billing.response_metadata(:reported)) k;
SELECT billing.estimate('pc-img', '{"n":1}') ? 'provider_cost_micros' AS in_estimate;
SET ROLE billing_app;
SELECT provider_cost_micros FROM billing.requests LIMIT 0;
SELECT count(*) FROM billing.margin(:a, now() - interval '1 hour', now() + interval '1 hour');
RESET ROLE;

-- 4. margin(): what usage() counts, with the costs beside. From the ledger,
-- then from the rollup, the same.
CREATE FUNCTION pg_temp.margin(acct bigint, group_by text[]) RETURNS SETOF text LANGUAGE sql AS $$
    SELECT format('%s %s %s %s: %s requests, revenue %s, refunded %s, cost %s, margin %s, %s uncosted',
                  bucket_start IS NOT NULL, model, provider, scope, requests, revenue_micros,
                  refunded_micros, provider_cost_micros, margin_micros, uncosted_requests)
      FROM billing.margin(acct, now() - interval '1 day', now() + interval '1 day', group_by) $$;
SELECT billing.refund_request(:on_acme, 50000, 'one image was blank') IS NOT NULL AS refunded;
SELECT * FROM pg_temp.margin(:a, '{provider}');
SELECT * FROM pg_temp.margin(:a, '{model}');
SELECT count(*) AS rows_by_day_and_provider
  FROM billing.margin(:a, now() - interval '1 day', now() + interval '1 day');
-- requests and revenue are usage()'s
SELECT (SELECT (sum(requests), sum(revenue_micros), sum(refunded_micros))::text
          FROM billing.margin(:a, '-infinity', 'infinity', '{}'))
     = (SELECT (sum(requests), sum(cost_micros), sum(refunded_micros))::text
          FROM billing.usage(:a, '-infinity', 'infinity', '{}')) AS as_usage;
SELECT array_agg(t ORDER BY t) AS before_rollup FROM pg_temp.margin(:a, '{provider}') t \gset
SELECT billing.rollup_usage() >= 0 AS rolled, billing.rollup_usage() >= 0 AS rolled;
SELECT (SELECT array_agg(t ORDER BY t) FROM pg_temp.margin(:a, '{provider}') t) = :'before_rollup' AS rollup_same;
SELECT sum(provider_cost_sum) AS rollup_cost, sum(uncosted) AS rollup_uncosted
  FROM billing.usage_rollup WHERE account_id = :a;
-- every account (admin; a quiet window: other tests leave sums near a bigint's)
SELECT count(*) AS every_account FROM billing.margin(NULL, '2000-01-01 00:00+00', '2000-01-02 00:00+00');
-- refusals as usage()'s
SELECT regress.try(sql) FROM unnest(ARRAY[
    format($$SELECT * FROM billing.margin(%s, '2020-01-02 00:00+00', '2020-01-01 00:00+00')$$, :a),
    format($$SELECT * FROM billing.margin(%s, NULL, now())$$, :a),
    format($$SELECT * FROM billing.margin(%s, now(), now(), '{week}')$$, :a),
    format($$SELECT * FROM billing.margin(%s, now(), now(), '{day,hour}')$$, :a),
    format($$SELECT * FROM billing.margin(%s, now(), now(), NULL)$$, :a),
    $$SELECT * FROM billing.margin(999999999, now(), now())$$]) sql;
-- read-only (as on a hot standby): margin answers, set_provider_cost refuses
BEGIN READ ONLY;
SELECT count(*) > 0 AS answers FROM billing.margin(:a, now() - interval '1 day', now() + interval '1 day');
SELECT regress.try($$SELECT billing.set_provider_cost('pc-img', 'zeta', '[{"type":"output","metric":"image","unit_price_micros":1}]')$$);
COMMIT;
-- a failed call in a transaction block: the block aborts, the session goes on
BEGIN;
SELECT billing.set_provider_cost('pc-img', 'nobody', '[{"type":"output","metric":"image","unit_price_micros":1}]');
ROLLBACK;
SELECT 'the session goes on' AS after_failure;
SELECT * FROM billing.verify();

-- 5. verify() sees damage: a negative cost, a cost other than the reported
-- one, a cost on an unfinished request, a rollup whose cost sum or uncosted
-- count is off.
SELECT billing.create_account('pc-b') AS b \gset
SELECT billing.add_funds(:b, 10000000) > 0 AS funded;
SELECT pg_temp.charge(:b, 'pc-img', regress.images(1)) AS b1 \gset
SELECT (billing.begin_request(:b, 'pc-img', '{"n":1}') ->> 'request_id')::bigint AS bopen \gset
CREATE FUNCTION pg_temp.damaged(acct bigint, assignment text, rid bigint) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
    ALTER TABLE billing.requests DISABLE TRIGGER requests_transition;
    EXECUTE format('UPDATE billing.requests SET %s WHERE request_id = %s', assignment, rid);
    RETURN QUERY SELECT regexp_replace(problem, '(request|at) [^:(]*', '\1 N', 'g')
                   FROM billing.verify(acct) ORDER BY 1;
END $$;
BEGIN;
SELECT * FROM pg_temp.damaged(:b, 'provider_cost_micros = -1', :b1);
ROLLBACK;
BEGIN;
SELECT * FROM pg_temp.damaged(:b, $$routing = '{"upstream_cost_micros":7}'$$, :b1);
ROLLBACK;
BEGIN;
SELECT * FROM pg_temp.damaged(:b, 'provider_cost_micros = 5', :bopen);
ROLLBACK;
SELECT billing.rollup_usage() >= 0 AS rolled, billing.rollup_usage() >= 0 AS rolled;
BEGIN;
UPDATE billing.usage_rollup SET provider_cost_sum = provider_cost_sum + 1 WHERE account_id = :b;
SELECT regexp_replace(problem, 'at .* UTC', 'at T') AS problem FROM billing.verify(:b);
ROLLBACK;
BEGIN;
UPDATE billing.usage_rollup SET uncosted = uncosted + 1 WHERE account_id = :b;
SELECT regexp_replace(problem, 'at .* UTC', 'at T') AS problem FROM billing.verify(:b);
ROLLBACK;
SELECT * FROM billing.verify();
