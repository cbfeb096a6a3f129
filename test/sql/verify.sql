-- billing.verify() sees damage that only a superuser can make behind the
-- functions' back. Each kind is made inside a transaction that is rolled
-- back; ids in the problems are masked (they depend on earlier tests).
SET client_min_messages = warning;
SET TimeZone = 'UTC';
CREATE FUNCTION pg_temp.problems(acct bigint) RETURNS SETOF text LANGUAGE sql AS $$
    SELECT regexp_replace(problem, '(entry|request|invoice|top-up) \d+', '\1 N', 'g')
      FROM billing.verify(acct) ORDER BY 1 $$;
-- The problems of acct once its ledger has a usage entry of 40000 that
-- names request, balanced by funds. Call it in a transaction that is rolled
-- back.
CREATE FUNCTION pg_temp.usage_damaged(acct bigint, request bigint)
RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO billing.ledger (account_id, kind, amount_micros, request_id)
    VALUES (acct, 'usage', -40000, request), (acct, 'funds', 40000, NULL);
    RETURN QUERY SELECT pg_temp.problems(acct);
END $$;
-- The problems of acct once request's row is changed by "SET assignment"
-- (the transition trigger disabled, or it would refuse). Call it in a
-- transaction that is rolled back.
CREATE FUNCTION pg_temp.request_damaged(acct bigint, request bigint, assignment text)
RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
    ALTER TABLE billing.requests DISABLE TRIGGER requests_transition;
    EXECUTE format('UPDATE billing.requests SET %s WHERE request_id = %s', assignment, request);
    RETURN QUERY SELECT pg_temp.problems(acct);
END $$;
-- Test only, a controlled clock: postpaid usage dated "at"
-- (regress.usage_at, test/sql/setup.sql)
CREATE FUNCTION pg_temp.usage_at(acct bigint, model text, micros bigint, at timestamptz)
RETURNS void LANGUAGE sql AS $$
    SELECT regress.usage_at(acct, model, micros, at, true) $$;

SELECT billing.set_model('vf-img', 'image', 'acme', 'Acme', NULL);
SELECT billing.set_price('vf-img', '[{"type":"output","metric":"image","unit_price_micros":40000}]') > 0 AS priced;
SELECT billing.set_model('vf-vid', 'video', 'acme', 'Acme', NULL);
SELECT billing.create_account('vf-pat') AS pat \gset
SELECT billing.add_funds(:pat, 1000000) > 0 AS funded;
SELECT (billing.charge(:pat, 'vf-img', '{}', '{"images":[{"width":1,"height":1}]}') ->> 'request_id')::bigint AS charged \gset
SELECT (billing.begin_request(:pat, 'vf-img', '{}') ->> 'request_id')::bigint AS open \gset
SELECT * FROM pg_temp.problems(:pat);

-- 1. A usage entry whose request_id names no request, balanced by funds.
BEGIN;
SELECT * FROM pg_temp.usage_damaged(:pat, (SELECT max(request_id) + 1000 FROM billing.requests));
ROLLBACK;
-- ... or a request of another account
SELECT billing.create_account('vf-quinn') AS quinn \gset
BEGIN;
SELECT * FROM pg_temp.usage_damaged(:quinn, :charged);
ROLLBACK;

-- 2. A request whose status is none of the five.
BEGIN;
SELECT * FROM pg_temp.request_damaged(:pat, :charged, $$status = 'lost'$$);
ROLLBACK;

-- 3. An invoice line whose quantity no longer matches the requests it
-- bills, or whose usage moved to another line.
SELECT billing.create_account('vf-rita', 'postpaid') AS rita \gset
SELECT billing.set_credit_limit(:rita, 10000000, 'test');
SELECT pg_temp.usage_at(:rita, 'vf-img', 40000, '2023-05-03 10:00+00'),
       pg_temp.usage_at(:rita, 'vf-img', 40000, '2023-05-04 10:00+00'),
       pg_temp.usage_at(:rita, 'vf-vid', 500000, '2023-05-05 10:00+00');
SELECT billing.close_period('2023-05-01') AS issued;
SELECT model, quantity, usage_micros FROM billing.invoice_lines
 WHERE account_id = :rita ORDER BY model;
SELECT * FROM pg_temp.problems(:rita);
BEGIN;
UPDATE billing.invoice_lines SET quantity = quantity + 1
 WHERE account_id = :rita AND model = 'vf-img';
SELECT * FROM pg_temp.problems(:rita);
ROLLBACK;
BEGIN;
UPDATE billing.invoice_lines SET quantity = 3 WHERE account_id = :rita AND model = 'vf-img';
DELETE FROM billing.invoice_lines WHERE account_id = :rita AND model = 'vf-vid';
UPDATE billing.invoice_lines SET usage_micros = 580000, amount_micros = 580000
 WHERE account_id = :rita AND model = 'vf-img';
SELECT * FROM pg_temp.problems(:rita);
ROLLBACK;

-- 4. Other damage verify() sees: a ledger entry of an unknown kind or with
-- the wrong sign (balanced), a hold on a finished request, a cost that is
-- not its usage, usage of an unfinished request, a ledger entry naming no
-- top-up, a request in another currency than its account's, slices of no
-- account, a fast-path budget above its slice's amount.
BEGIN;
INSERT INTO billing.ledger (account_id, kind, amount_micros)
VALUES (:pat, 'gift', 5), (:pat, 'usage', 7), (:pat, 'funds', -12);
SELECT * FROM pg_temp.problems(:pat);
ROLLBACK;
BEGIN;
SELECT * FROM pg_temp.request_damaged(:pat, :charged, $$hold_micros = 1$$);
ROLLBACK;
BEGIN;
SELECT * FROM pg_temp.request_damaged(:pat, :charged, $$cost_micros = 30000$$);
ROLLBACK;
BEGIN;
SELECT * FROM pg_temp.usage_damaged(:pat, :open);
ROLLBACK;
BEGIN;
INSERT INTO billing.ledger (account_id, kind, amount_micros, topup_id)
VALUES (:pat, 'adjustment', 1, (SELECT COALESCE(max(topup_id), 0) + 1000 FROM billing.topups)),
       (:pat, 'adjustment', -1, NULL);
SELECT * FROM pg_temp.problems(:pat);
ROLLBACK;
BEGIN;
SELECT * FROM pg_temp.request_damaged(:pat, :charged, $$currency = 'EUR'$$);
ROLLBACK;
BEGIN;
INSERT INTO billing.account_slices (account_id, slice, available_micros)
VALUES ((SELECT max(account_id) + 1000 FROM billing.accounts), 0, 0);
SELECT count(*) AS orphan_slices FROM billing.verify() WHERE problem ~ 'slice rows of an account that does not exist';
ROLLBACK;
BEGIN;
UPDATE billing.account_slices SET fast_micros = available_micros + 1
 WHERE account_id = :pat AND slice = 1;
SELECT * FROM pg_temp.problems(:pat);
ROLLBACK;

SELECT billing.cancel_request(:open) ->> 'status' AS cancelled;
SELECT * FROM billing.verify();
