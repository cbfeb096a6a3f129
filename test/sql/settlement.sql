-- Settlement of work in flight: a model disabled, a route removed, a price
-- backdated or edited after admission; empty providers; NULLs and retried
-- UPDATEs on the plain-UPDATE path. Every refusal changes nothing.
SET client_min_messages = warning;

-- money of an account: balance, holds, available (kept across \c below)
CREATE FUNCTION regress.st_money(a bigint) RETURNS text LANGUAGE sql AS $$
    SELECT format('balance=%s held=%s available=%s', b ->> 'balance_micros',
                  b ->> 'held_micros', b ->> 'available_micros')
      FROM billing.balance(a) b $$;
-- a request's row as text, to show an UPDATE left it as it was
CREATE FUNCTION regress.st_row(id bigint) RETURNS text LANGUAGE sql AS $$
    SELECT r::text FROM billing.requests r WHERE r.request_id = id $$;
-- a refusal, without the request ids that depend on the tests run before
CREATE FUNCTION regress.st_try(sql text) RETURNS text LANGUAGE sql AS $$
    SELECT regexp_replace(regress.try(sql), 'request \d+', 'request N') $$;
CREATE FUNCTION regress.st_usage(id bigint) RETURNS text LANGUAGE sql AS $$
    SELECT count(*) || ' entries, ' || COALESCE(sum(amount_micros), 0) || ' micros'
      FROM billing.ledger WHERE request_id = id $$;

SELECT billing.set_model('st-img', 'image', 'alpha', 'Alpha');
SELECT billing.set_model('st-img', 'image', 'beta', 'Beta', NULL, false);
SELECT billing.set_model('st-img', 'image', 'gamma', 'Gamma', NULL, false);
SELECT billing.set_price('st-img', '[{"type":"output","metric":"image","unit_price_micros":40000}]',
                         NULL, '2020-01-01') AS price_all \gset
SELECT billing.set_price('st-img', '[{"type":"output","metric":"image","unit_price_micros":30000}]',
                         'beta', '2020-01-01') > 0 AS beta_priced;
SELECT billing.create_account('st-erin') AS erin \gset
SELECT billing.add_funds(:erin, 2000000) > 0 AS funded;

-- 4. A disabled model still settles the work it admitted, at its start price.
SELECT (billing.begin_request(:erin, 'st-img', '{"n":2}') ->> 'request_id')::bigint AS d1 \gset
SELECT (billing.begin_request(:erin, 'st-img', '{"n":1}') ->> 'request_id')::bigint AS d2 \gset
SELECT (billing.begin_request(:erin, 'st-img', '{"n":3}') ->> 'request_id')::bigint AS d3 \gset
SELECT (billing.begin_request(:erin, 'st-img', '{"n":1}') ->> 'request_id')::bigint AS d4 \gset
SELECT (billing.begin_request(:erin, 'st-img', '{"n":2}') ->> 'request_id')::bigint AS d5 \gset
SELECT regress.st_money(:erin) AS before_disable;
UPDATE billing.models SET active = false WHERE model = 'st-img';
-- new admissions are refused: begin, charge, and the dry run of one
SELECT regress.try(format($$SELECT billing.begin_request(%s, 'st-img', '{"n":1}')$$, :erin));
SELECT regress.try(format($$SELECT billing.charge(%s, 'st-img', '{"n":1}', '{"n":1}')$$, :erin));
SELECT regress.try($$SELECT billing.estimate('st-img', '{"n":1}')$$);
SELECT regress.try($$SELECT billing.effective_cost('st-img', '{"n":1}')$$);
SELECT regress.st_money(:erin) AS after_refusals;
SELECT count(*) FILTER (WHERE model = 'st-img') AS in_catalog FROM billing.catalog;
-- work in flight settles: complete_request, the plain UPDATE, another
-- provider named in routing (its own price), fail with a partial charge, cancel
SELECT billing.complete_request(:d1, '{"n":2}') ->> 'cost_micros' AS completed;
UPDATE billing.requests SET status = 'completed', outputs = '{"n":1}' WHERE request_id = :d2;
SELECT billing.response_metadata(:d2) ->> 'cost_micros' AS updated;
SELECT billing.complete_request(:d3, '{"n":3}', '{"provider":"beta"}') - 'request_id' AS via_beta;
SELECT billing.fail_request(:d4, 'upstream error', 10000) ->> 'cost_micros' AS failed;
SELECT billing.cancel_request(:d5) ->> 'cost_micros' AS cancelled;
SELECT request_id - :d1 AS n, status, cost_micros, hold_micros, regress.st_usage(request_id)
  FROM billing.requests WHERE request_id BETWEEN :d1 AND :d5 ORDER BY request_id;
-- 2000000 - 80000 - 40000 - 90000 - 10000
SELECT regress.st_money(:erin) AS after_settling;
UPDATE billing.models SET active = true WHERE model = 'st-img';

-- 4. A removed route: the admitted provider still settles at its start
-- price; a provider named in routing must still serve the model.
SELECT (billing.begin_request(:erin, 'st-img', '{"n":1}') ->> 'request_id')::bigint AS e1 \gset
SELECT (billing.begin_request(:erin, 'st-img', '{"n":1}') ->> 'request_id')::bigint AS e2 \gset
SELECT (billing.begin_request(:erin, 'st-img', '{"n":1}') ->> 'request_id')::bigint AS e3 \gset
SELECT billing.set_model('st-img', 'image', 'gamma', 'Gamma');
DELETE FROM billing.model_providers WHERE model = 'st-img' AND provider = 'alpha';
SELECT regress.st_money(:erin) AS before_removed_route;
SELECT regress.try(format($$SELECT billing.complete_request(%s, '{"n":1}', '{"provider":"nobody"}')$$, :e1));
SELECT regress.try(format($$UPDATE billing.requests SET status = 'completed', outputs = '{"n":1}',
                              routing = '{"provider":"nobody"}' WHERE request_id = %s$$, :e1));
SELECT regress.st_money(:erin) AS after_refusals, status FROM billing.requests WHERE request_id = :e1;
SELECT billing.complete_request(:e1, '{"n":1}') - 'request_id' AS admitted_route_gone;
SELECT billing.complete_request(:e2, '{"n":1}', '{"provider":"alpha"}') ->> 'cost_micros' AS named_admitted;
SELECT billing.complete_request(:e3, '{"n":1}', '{"provider":"gamma"}') ->> 'cost_micros' AS via_gamma;
-- 1780000 - 3 x 40000
SELECT regress.st_money(:erin) AS after_removed_route;

-- 4. A price set after admission, even backdated, does not reprice work in
-- flight; price versions cannot be edited or withdrawn once in force.
SELECT (billing.begin_request(:erin, 'st-img', '{"n":2}') ->> 'request_id')::bigint AS p1 \gset
SELECT price_id = :price_all AS priced_by_first_version FROM billing.requests WHERE request_id = :p1;
SELECT billing.set_price('st-img', '[{"type":"output","metric":"image","unit_price_micros":60000}]',
                         NULL, '2021-01-01') > 0 AS backdated;
SELECT billing.estimate('st-img', '{"n":2}') ->> 'total_cost_micros' AS new_admissions_pay;
SELECT billing.set_price('st-img', '[{"type":"output","metric":"image","unit_price_micros":70000}]',
                         NULL, '2999-01-01') AS scheduled \gset
-- (inside a transaction rolled back, so that a refusal that failed to
-- refuse could not spoil what follows)
BEGIN;
SELECT regress.try(format($$UPDATE billing.prices SET components = '[{"type":"output","metric":"image","unit_price_micros":1}]'
                             WHERE price_id = %s$$, :price_all));
SELECT regress.try(format('DELETE FROM billing.prices WHERE price_id = %s', :price_all));
SELECT regress.try('TRUNCATE billing.prices');
SELECT regress.try(format('DELETE FROM billing.prices WHERE price_id = %s', :scheduled));
SELECT count(*) AS versions, count(*) FILTER (WHERE components @> '[{"unit_price_micros":1}]') AS edited
  FROM billing.prices WHERE model = 'st-img';
ROLLBACK;
SELECT billing.complete_request(:p1, '{"n":2}') ->> 'cost_micros' AS price_of_its_start;
-- 1660000 - 80000
SELECT regress.st_money(:erin) AS after_backdated;

-- 7. An empty provider is invalid input (22023), whatever is cached; an
-- absent or null provider is the default one.
\c
SET client_min_messages = warning;
SELECT regress.try($$SELECT billing.effective_cost('st-img', '{}', '')$$) AS fresh_session;
SELECT billing.effective_cost('st-img', '{}') ->> 'provider' AS default_provider;
SELECT regress.try($$SELECT billing.effective_cost('st-img', '{}', '')$$) AS after_default_cached;
SELECT billing.effective_cost('st-img', '{}', 'beta') ->> 'total_cost_micros' AS beta;
SELECT regress.st_money(:erin) AS before_empty;
SELECT regress.try(format($$SELECT billing.charge(%s, 'st-img', '{}', '{}', '{"provider":""}')$$, :erin));
SELECT (billing.begin_request(:erin, 'st-img', '{"n":1}') ->> 'request_id')::bigint AS m1 \gset
SELECT regress.try(format($$SELECT billing.complete_request(%s, '{"n":1}', '{"provider":""}')$$, :m1));
SELECT regress.try(format($$UPDATE billing.requests SET status = 'completed', outputs = '{"n":1}',
                              routing = '{"provider":""}' WHERE request_id = %s$$, :m1));
SELECT regress.try(format($$UPDATE billing.requests SET status = 'in_progress',
                              routing = '{"provider":""}' WHERE request_id = %s$$, :m1));
SELECT status, routing FROM billing.requests WHERE request_id = :m1;
SELECT regress.st_money(:erin) AS after_refusals;
SELECT billing.charge(:erin, 'st-img', '{}', '{}', '{"provider":null}') ->> 'provider' AS null_is_default;
SELECT billing.complete_request(:m1, '{"n":1}', '{"provider":null}') ->> 'cost_micros' AS null_is_admitted;
-- 1580000 - 60000 (the charge) - 60000 (m1, admitted after the backdated price)
SELECT regress.st_money(:erin) AS after_empty;

-- 8. NULLs in the columns a backend may set are 22023 from the trigger.
SELECT (billing.begin_request(:erin, 'st-img', '{"n":1}') ->> 'request_id')::bigint AS z1 \gset
SELECT regress.st_row(:z1) AS z1_row \gset
SELECT regress.try(format('UPDATE billing.requests SET routing = NULL WHERE request_id = %s', :z1));
SELECT regress.try(format($$UPDATE billing.requests SET status = 'in_progress', routing = NULL WHERE request_id = %s$$, :z1));
SELECT regress.try(format($$UPDATE billing.requests SET status = 'completed', outputs = '{"n":1}', routing = NULL
                             WHERE request_id = %s$$, :z1));
SELECT regress.try(format($$UPDATE billing.requests SET status = 'completed', outputs = NULL WHERE request_id = %s$$, :z1));
SELECT regress.try(format('UPDATE billing.requests SET status = NULL WHERE request_id = %s', :z1));
SELECT regress.try(format($$UPDATE billing.requests SET routing = '[]' WHERE request_id = %s$$, :z1));
SELECT regress.st_row(:z1) = :'z1_row' AS unchanged, regress.st_money(:erin) AS after_refusals;
-- outputs may be NULL while the request runs
UPDATE billing.requests SET status = 'in_progress', outputs = NULL WHERE request_id = :z1;
SELECT billing.cancel_request(:z1) ->> 'cost_micros' AS cancelled;
SELECT regress.try(format('UPDATE billing.requests SET routing = NULL WHERE request_id = %s', :z1));

-- 9. A retried plain UPDATE replays: no error, no money, the row unchanged;
-- a different one is refused.
SELECT (billing.begin_request(:erin, 'st-img', '{"n":2}') ->> 'request_id')::bigint AS y1 \gset
UPDATE billing.requests SET status = 'completed', outputs = '{"n":2}',
       routing = '{"provider":"beta","upstream_id":"up-1"}' WHERE request_id = :y1;
SELECT regress.st_row(:y1) AS y1_row \gset
SELECT regress.st_money(:erin) AS after_first;
UPDATE billing.requests SET status = 'completed', outputs = '{"n":2}',
       routing = '{"provider":"beta","upstream_id":"up-1"}' WHERE request_id = :y1;
UPDATE billing.requests SET status = 'completed', outputs = '{ "n" : 2 }' WHERE request_id = :y1;
SELECT regress.st_row(:y1) = :'y1_row' AS unchanged, regress.st_usage(:y1), regress.st_money(:erin) AS after_replays;
SELECT regress.st_try(format($$UPDATE billing.requests SET status = 'completed', outputs = '{"n":3}' WHERE request_id = %s$$, :y1));
SELECT regress.st_try(format($$UPDATE billing.requests SET status = 'completed', outputs = '{"n":2}',
                              routing = '{"provider":"gamma"}' WHERE request_id = %s$$, :y1));
SELECT regress.st_try(format($$UPDATE billing.requests SET status = 'failed' WHERE request_id = %s$$, :y1));
SELECT regress.st_row(:y1) = :'y1_row' AS unchanged, regress.st_usage(:y1);
-- complete_request's replay and the plain UPDATE's agree
SELECT billing.complete_request(:y1, '{"n":2}') ->> 'cost_micros' AS replayed;
-- failed and cancelled replay the same way
SELECT (billing.begin_request(:erin, 'st-img', '{"n":1}') ->> 'request_id')::bigint AS y2 \gset
SELECT (billing.begin_request(:erin, 'st-img', '{"n":1}') ->> 'request_id')::bigint AS y3 \gset
UPDATE billing.requests SET status = 'failed', cost_micros = 5000 WHERE request_id = :y2;
UPDATE billing.requests SET status = 'cancelled' WHERE request_id = :y3;
SELECT regress.st_row(:y2) AS y2_row, regress.st_row(:y3) AS y3_row \gset
UPDATE billing.requests SET status = 'failed', cost_micros = 5000 WHERE request_id = :y2;
UPDATE billing.requests SET status = 'cancelled' WHERE request_id = :y3;
SELECT regress.st_try(format($$UPDATE billing.requests SET status = 'failed', cost_micros = 6000 WHERE request_id = %s$$, :y2));
SELECT regress.st_try(format($$UPDATE billing.requests SET status = 'completed', outputs = '{"n":1}' WHERE request_id = %s$$, :y3));
SELECT regress.st_row(:y2) = :'y2_row' AS y2_unchanged, regress.st_row(:y3) = :'y3_row' AS y3_unchanged,
       regress.st_usage(:y2) AS y2_usage, regress.st_usage(:y3) AS y3_usage;
-- 1460000 - 60000 (y1, via beta) - 5000 (y2)
SELECT regress.st_money(:erin) AS at_end;
SELECT sum(amount_micros) AS ledger_sum FROM billing.ledger WHERE account_id = :erin;
SELECT * FROM billing.verify();
