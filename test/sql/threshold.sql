-- The low-balance threshold: once a debit leaves the account below it, the
-- money is in slice 0 with no fast-path budget, and every later request
-- validates on the exact amount; a huge spend saturates the threshold.
SET client_min_messages = warning;
-- slice 0, and how many other slices hold money or a fast-path budget
CREATE FUNCTION pg_temp.layout(a bigint) RETURNS text LANGUAGE sql AS $$
    SELECT 'slice 0 = ' || max(available_micros) FILTER (WHERE slice = 0)
           || ', ' || count(*) FILTER (WHERE slice <> 0 AND available_micros <> 0) || ' others hold money'
      FROM billing.account_slices WHERE account_id = a $$;
CREATE FUNCTION pg_temp.budgets(a bigint) RETURNS text LANGUAGE sql AS $$
    SELECT count(*) FILTER (WHERE fast_micros > 0) || ' budgets, ' || sum(fast_micros) || ' in all'
      FROM billing.account_slices WHERE account_id = a $$;
-- per_request must mean what happens: no money outside slice 0 (these
-- steps credit nothing) that a request could take past the exact validation
CREATE TEMP TABLE steps (step text, available bigint, threshold bigint, validation text,
                         spread bigint);
CREATE FUNCTION pg_temp.step(a bigint, step text) RETURNS void LANGUAGE sql AS $$
    INSERT INTO steps
    SELECT step, (b ->> 'available_micros')::bigint, (b ->> 'low_balance_threshold_micros')::bigint,
           b ->> 'validation',
           (SELECT count(*) FROM billing.account_slices s
             WHERE s.account_id = a AND s.slice <> 0 AND s.available_micros <> 0)
      FROM billing.balance(a) b $$;
CREATE FUNCTION pg_temp.charge(a bigint) RETURNS text LANGUAGE sql AS $$
    SELECT billing.charge(a, 'th-img', '{}', '{"images":[{"width":1,"height":1}]}') ->> 'cost' $$;
-- n charges, each followed by a step
CREATE FUNCTION pg_temp.charges(a bigint, n integer) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. n LOOP
        PERFORM pg_temp.charge(a);
        PERFORM pg_temp.step(a, 'charge ' || i);
    END LOOP;
END $$;

SELECT billing.set_model('th-img', 'image', 'acme', 'Acme', NULL);
SELECT billing.set_price('th-img', '[{"type":"output","metric":"image","unit_price_micros":40000}]') > 0 AS priced;

-- 1. 2.00 of funds, then 31 charges of 0.04: the account crosses its
-- threshold (2 x spend) with the 17th; from then on every charge finds the
-- money in slice 0, and the next one leaves it there.
SELECT billing.create_account('th-ann') AS ann \gset
SELECT billing.add_funds(:ann, 2000000) > 0 AS funded;
SELECT pg_temp.charges(:ann, 31);
SELECT count(*) FILTER (WHERE validation = 'per_request') AS per_request,
       count(*) FILTER (WHERE validation = 'per_request' AND spread > 0) AS per_request_spread,
       count(*) FILTER (WHERE validation = 'fast_path' AND available < threshold) AS fast_below
  FROM steps;
SELECT b ->> 'available_micros' AS available, b ->> 'low_balance_threshold_micros' AS threshold,
       b ->> 'validation' AS validation
  FROM billing.balance(:ann) b;
SELECT pg_temp.layout(:ann);
SELECT pg_temp.budgets(:ann);
SELECT pg_temp.charge(:ann) AS cost;
SELECT pg_temp.layout(:ann);

-- 2. Far above the threshold the fast path takes the charges: 100.00 gives
-- 16 budgets of a third of the 99.00 above the 1.00 floor (the threshold
-- rises by 2 x each charge), and 31 charges of one backend come out of its
-- own slice's budget, without an exact validation that would lay out the
-- slices again.
SELECT billing.create_account('th-bea') AS bea \gset
SELECT billing.add_funds(:bea, 100000000) > 0 AS funded;
SELECT pg_temp.budgets(:bea);
SELECT pg_temp.charges(:bea, 31);
SELECT pg_temp.budgets(:bea),
       (SELECT count(DISTINCT fast_micros) FROM billing.account_slices WHERE account_id = :bea) AS budget_sizes;

-- 3. Holds are debits too, and their settlement is spend: 2.40 of funds,
-- 25 holds of 0.04 (the threshold stays at the 1.00 floor, nothing is
-- spent yet), then all 25 complete at their estimate: the spend of 1.00
-- lifts the threshold to 2.00 above the 1.40 left, without any debit. The
-- budgets were sized for that: once the 0.40 above the threshold is no
-- more than 2 x the 1.00 held, there is none, and validation says so.
TRUNCATE steps;
SELECT billing.create_account('th-cat') AS cat \gset
SELECT billing.add_funds(:cat, 2400000) > 0 AS funded;
CREATE TEMP TABLE held AS
SELECT (billing.begin_request(:cat, 'th-img', '{}') ->> 'request_id')::bigint AS request_id
  FROM generate_series(1, 25);
SELECT pg_temp.step(:cat, 'held');
SELECT count(billing.complete_request(request_id, '{"images":[{"width":1,"height":1}]}'))
       AS completed FROM held;
SELECT pg_temp.step(:cat, 'completed');
SELECT step, available, threshold, validation, spread FROM steps;
SELECT pg_temp.budgets(:cat);
SELECT pg_temp.charge(:cat) AS cost;
SELECT pg_temp.layout(:cat);

-- 4. A huge spend (test-only rows: 2^62 spent in the window, balanced by
-- funds) doubles past the bigint range: the threshold saturates, and
-- balance, add_funds and charge go on, per request.
SELECT billing.create_account('th-dan') AS dan \gset
SELECT billing.add_funds(:dan, 1000000) > 0 AS funded;
INSERT INTO billing.ledger (account_id, kind, amount_micros)
VALUES (:dan, 'funds', 4611686018427387904), (:dan, 'usage', -4611686018427387904);
SELECT b ->> 'low_balance_threshold_micros' AS threshold, b ->> 'validation' AS validation
  FROM billing.balance(:dan) b;
SELECT billing.add_funds(:dan, 1000000) > 0 AS funded;
SELECT pg_temp.charge(:dan) AS cost;
-- spend beyond the bigint range itself (2 x 2^62)
INSERT INTO billing.ledger (account_id, kind, amount_micros)
VALUES (:dan, 'funds', 4611686018427387904), (:dan, 'usage', -4611686018427387904);
SELECT b ->> 'low_balance_threshold_micros' AS threshold, b ->> 'validation' AS validation,
       b ->> 'available_micros' AS available
  FROM billing.balance(:dan) b;
SELECT pg_temp.charge(:dan) AS cost;
SELECT pg_temp.layout(:dan);

SELECT * FROM billing.verify();
