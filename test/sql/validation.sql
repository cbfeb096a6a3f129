-- Low-balance validation: the threshold follows recent spend; above it the
-- available amount is spread over slices (fast path), below it kept in one.
SET client_min_messages = warning;
-- how the available amount is laid out (slice 0's share only when that
-- does not depend on which slice this backend happens to start at)
CREATE FUNCTION pg_temp.slices(a bigint) RETURNS text LANGUAGE sql AS $$
    SELECT n || ' non-zero, total ' || total ||
           CASE WHEN n <= 1 OR n = all_slices THEN ', slice 0 = ' || zero ELSE '' END
      FROM (SELECT count(*) FILTER (WHERE available_micros <> 0) AS n, count(*) AS all_slices,
                   sum(available_micros) AS total,
                   max(available_micros) FILTER (WHERE slice = 0) AS zero
              FROM billing.account_slices WHERE account_id = a) s $$;

SELECT billing.set_model('va-img', 'image', 'acme', 'Acme', NULL);

SELECT billing.set_price('va-img', '[{"type":"output","metric":"image","unit_price_micros":100000}]') > 0 AS priced;
SELECT billing.create_account('va-frank') AS frank \gset
-- settings (defined once the library is loaded): defaults, reserved prefix
SHOW billing.low_balance_floor_micros;
SHOW billing.low_balance_factor;
SHOW billing.low_balance_window;
SHOW billing.balance_slices;
SELECT regress.try('SET billing.no_such_setting = 1');

-- no spend yet: the threshold is the floor (1 USD)
SELECT billing.add_funds(:frank, 3200000) > 0 AS funded;
SELECT billing.balance(:frank) ->> 'low_balance_threshold_micros' AS threshold,
       billing.balance(:frank) ->> 'validation' AS validation;
-- above the threshold the fast path's budget is spread over the 16 slices,
-- the rest kept in slice 0
SELECT pg_temp.slices(:frank);
SELECT billing.charge(:frank, 'va-img', '{}', '{"images":[{"width":1,"height":1}]}') ->> 'cost' AS cost;

-- spend raises the threshold: 2 x 0.1 spent -> still the floor; 6 more -> 2 x 0.7 = 1.4
SELECT count(billing.charge(:frank, 'va-img', '{}', '{"images":[{"width":1,"height":1}]}')) AS charged
  FROM generate_series(1, 6);
SELECT billing.balance(:frank) ->> 'low_balance_threshold_micros' AS threshold,
       billing.balance(:frank) ->> 'available_micros' AS available,
       billing.balance(:frank) ->> 'validation' AS validation;
-- a heavier spender switches sooner: with factor 5 the same account is below
SET billing.low_balance_factor = 5;
SELECT billing.balance(:frank) ->> 'low_balance_threshold_micros' AS threshold,
       billing.balance(:frank) ->> 'validation' AS validation;
-- no slice's budget (0.1 at most) covers 0.3: the exact validation of that request
-- finds the account below its threshold and keeps the rest in slice 0
SELECT pg_temp.slices(:frank);
SELECT billing.charge(:frank, 'va-img', '{"n":3}',
       '{"images":[{"width":1,"height":1},{"width":1,"height":1},{"width":1,"height":1}]}') ->> 'cost' AS cost;
SELECT pg_temp.slices(:frank);
RESET billing.low_balance_factor;

-- exact to the micro: spend it down to zero, then one micro short is refused
SELECT billing.balance(:frank) ->> 'available_micros' AS available;
SELECT count(billing.charge(:frank, 'va-img', '{}', '{"images":[{"width":1,"height":1}]}')) AS charged
  FROM generate_series(1, 22);
SELECT billing.balance(:frank) ->> 'available_micros' AS zero;
SELECT regress.try(format($$SELECT billing.charge(%s, 'va-img', '{}', '{"images":[{"width":1,"height":1}]}')$$, :frank));
SELECT billing.add_funds(:frank, 99999) > 0 AS funded;
SELECT regress.try(format($$SELECT billing.charge(%s, 'va-img', '{}', '{"images":[{"width":1,"height":1}]}')$$, :frank));
SELECT billing.add_funds(:frank, 1) > 0 AS funded;
SELECT regress.try(format($$SELECT billing.charge(%s, 'va-img', '{}', '{"images":[{"width":1,"height":1}]}')$$, :frank));
SELECT billing.balance(:frank) - 'low_balance_threshold_micros' - 'account_id' AS balance;

-- holds count against the available amount in both modes
SELECT billing.add_funds(:frank, 250000) > 0 AS funded;
SELECT billing.begin_request(:frank, 'va-img', '{"n":2}') ->> 'status' AS held_two;
SELECT regress.try(format($$SELECT billing.begin_request(%s, 'va-img', '{"n":1}')$$, :frank));
SELECT billing.charge(:frank, 'va-img', '{}', '{"images":[]}') ->> 'cost' AS free_output;
SELECT billing.balance(:frank) ->> 'held_micros' AS held, billing.balance(:frank) ->> 'available_micros' AS available;

-- a debt sits in slice 0 only, and a credit pays it first
SELECT billing.create_account('va-gina') AS gina \gset
SELECT billing.add_funds(:gina, 5000000) > 0 AS funded;
SELECT (billing.begin_request(:gina, 'va-img', '{"n":1}') ->> 'request_id')::bigint AS g1 \gset
SELECT billing.complete_request(:g1, ('{"images":[' || rtrim(repeat('{"width":1,"height":1},', 60), ',') || ']}')::jsonb) ->> 'cost' AS overrun;
SELECT billing.balance(:gina) ->> 'available_micros' AS debt, pg_temp.slices(:gina);
SELECT billing.add_funds(:gina, 500000) > 0 AS funded;
SELECT billing.balance(:gina) ->> 'available_micros' AS still_debt, pg_temp.slices(:gina);

-- a busy account: the spend is extrapolated from its latest 1,000 usage
-- entries (test-only rows: 20,000 entries of 100 micros, one every 10 ms;
-- the latest 1,000 span 10 s, so 300 s extrapolate to 3 USD, x2 = 6 USD,
-- a little less for the time the test itself takes)
SELECT billing.create_account('va-busy') AS busy \gset
SELECT billing.add_funds(:busy, 100000000) > 0 AS funded;
INSERT INTO billing.ledger (account_id, kind, amount_micros, created_at)
SELECT :busy, 'usage', -100, clock_timestamp() - g * interval '10 milliseconds'
  FROM generate_series(1, 20000) g;
SELECT billing._adjust_available(:busy, -2000000);
SELECT (billing.balance(:busy) ->> 'low_balance_threshold_micros')::bigint
       BETWEEN 5700000 AND 6000000 AS extrapolated;

SELECT * FROM billing.verify();
