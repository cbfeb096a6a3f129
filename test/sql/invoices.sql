-- Postpaid: credit limits and their audit, suggested limits, switching the
-- billing type, monthly invoices (time zones, rounding, credit), payment.
SET client_min_messages = warning;
SET TimeZone = 'UTC';
-- regress.try_detail and regress.usage_at (test/sql/setup.sql), postpaid usage
-- unless told
CREATE FUNCTION pg_temp.try_detail(sql text) RETURNS text LANGUAGE sql AS $$
    SELECT regress.try_detail(sql) $$;
CREATE FUNCTION pg_temp.usage_at(acct bigint, model text, micros bigint, at timestamptz,
                                 postpaid boolean DEFAULT true) RETURNS void LANGUAGE sql AS $$
    SELECT regress.usage_at(acct, model, micros, at, postpaid) $$;
CREATE FUNCTION pg_temp.avail(acct bigint) RETURNS bigint LANGUAGE sql AS $$
    SELECT (billing.balance(acct) ->> 'available_micros')::bigint
$$;
CREATE FUNCTION pg_temp.bal(acct bigint) RETURNS bigint LANGUAGE sql AS $$
    SELECT (billing.balance(acct) ->> 'balance_micros')::bigint
$$;

SELECT billing.set_model('inv-img', 'image', 'acme', 'Acme Imaging', 'acme-img-v2');
SELECT billing.set_price('inv-img', '[{"type":"output","metric":"image","unit_price_micros":40000}]') > 0 AS priced;
SELECT billing.set_model('inv-vid', 'video', 'acme', 'Acme Video', 'acme-vid-v1');

-- 1. Credit limits: audited, part of a postpaid account's available amount.
SELECT billing.create_account('inv-dana', 'postpaid') AS dana \gset
SELECT pg_temp.avail(:dana) AS available;
SELECT billing.set_credit_limit(:dana, 100000, 'onboarding');
SELECT pg_temp.avail(:dana) AS available;
SELECT billing.set_credit_limit(:dana, 120000, 'first month went well');
SELECT billing.set_credit_limit(:dana, 120000, 'no change, no audit row');
SELECT pg_temp.avail(:dana) AS available;
SELECT old_limit_micros, new_limit_micros, reason, changed_by = session_user AS by_me,
       changed_at <= clock_timestamp() AS dated
  FROM billing.credit_limit_audit WHERE account_id = :dana ORDER BY audit_id;
-- refusals change nothing
SELECT regress.try(format($$SELECT billing.set_credit_limit(%s, -1, 'oops')$$, :dana));
SELECT regress.try(format($$SELECT billing.set_credit_limit(%s, NULL, 'oops')$$, :dana));
SELECT regress.try(format($$SELECT billing.set_credit_limit(%s, 5, '  ')$$, :dana));
SELECT regress.try(format($$SELECT billing.set_credit_limit(%s, 5, NULL)$$, :dana));
SELECT regress.try($$SELECT billing.set_credit_limit(NULL, 5, 'x')$$);
SELECT regress.try($$SELECT billing.set_credit_limit(999999999, 5, 'x')$$);
SELECT credit_limit_micros, (SELECT count(*) FROM billing.credit_limit_audit a WHERE a.account_id = :dana) AS audits
  FROM billing.accounts WHERE account_id = :dana;

-- postpaid admission: limit minus usage and holds; then the 402
SELECT billing.charge(:dana, 'inv-img', '{"n":2}', '{"images":[{"width":1024,"height":1024},{"width":1024,"height":1024}]}')
       ->> 'cost_micros' AS cost_micros;
SELECT pg_temp.avail(:dana) AS available, pg_temp.bal(:dana) AS balance;
SELECT pg_temp.try_detail(format($$SELECT billing.charge(%s, 'inv-img', '{"n":2}', '{"images":[{"width":1024,"height":1024},{"width":1024,"height":1024}]}')$$, :dana));
SELECT pg_temp.avail(:dana) AS available, count(*) AS requests
  FROM billing.requests WHERE account_id = :dana;
-- lowering the limit below what is used leaves nothing available
SELECT billing.set_credit_limit(:dana, 50000, 'risk review');
SELECT pg_temp.avail(:dana) AS available;
SELECT pg_temp.try_detail(format($$SELECT billing.charge(%s, 'inv-img', '{"n":1}', '{"images":[{"width":1024,"height":1024}]}')$$, :dana));
-- a prepaid account's limit is recorded, its available amount untouched
SELECT billing.create_account('inv-erin') AS erin \gset
SELECT billing.add_funds(:erin, 70000) > 0 AS funded;
SELECT billing.set_credit_limit(:erin, 900000, 'ready for postpaid');
SELECT pg_temp.avail(:erin) AS available, credit_limit_micros FROM billing.accounts WHERE account_id = :erin;

-- 2. Switching the billing type.
SELECT regress.try(format($$SELECT billing.set_billing_type(%s, 'credit')$$, :erin));
SELECT regress.try(format($$SELECT billing.set_billing_type(%s, NULL)$$, :erin));
SELECT regress.try($$SELECT billing.set_billing_type(999999999, 'postpaid')$$);
SELECT billing.set_billing_type(:erin, 'prepaid');   -- already: nothing happens
-- prepaid -> postpaid: the balance becomes a credit line, the limit is added
SELECT billing.set_billing_type(:erin, 'postpaid');
SELECT billing_type, prepaid_credit_micros FROM billing.accounts WHERE account_id = :erin;
SELECT pg_temp.avail(:erin) AS available, pg_temp.bal(:erin) AS balance;
SELECT regexp_replace(regress.try(format($$SELECT billing.add_funds(%s, 1000)$$, :erin)), 'account \d+', 'account N') AS refused;
-- a negative prepaid balance cannot become postpaid: it would never be invoiced
SELECT billing.create_account('inv-faye') AS faye \gset
SELECT pg_temp.usage_at(:faye, 'inv-img', 30000, '2025-01-10 12:00+00', false);
SELECT regexp_replace(pg_temp.try_detail(format($$SELECT billing.set_billing_type(%s, 'postpaid')$$, :faye)), 'account \d+', 'account N') AS refused;
SELECT billing_type FROM billing.accounts WHERE account_id = :faye;
SELECT billing.add_funds(:faye, 60000) > 0 AS funded;
SELECT billing.set_billing_type(:faye, 'postpaid');
SELECT billing_type, prepaid_credit_micros, pg_temp.avail(:faye) AS available
  FROM billing.accounts WHERE account_id = :faye;
SELECT * FROM billing.verify();
SELECT * FROM billing._verify_invoices();

-- 3. Invoices: calendar months in billing.timezone, usage by completion time.
SET billing.timezone = 'America/New_York';
SELECT billing.create_account('inv-gus', 'postpaid') AS gus \gset
SELECT billing.set_credit_limit(:gus, 500000000, 'enterprise');
-- 2024-12-31 23:59:59 in New York: December
SELECT pg_temp.usage_at(:gus, 'inv-img', 12345, '2025-01-01 04:59:59+00');
-- January: images 150.025 (-> 150.03, half-up), one video 49.994999 (-> 49.99)
SELECT pg_temp.usage_at(:gus, 'inv-img', 100000000, '2025-01-01 05:00:00+00');
SELECT pg_temp.usage_at(:gus, 'inv-img', 50020000, '2025-01-15 12:00:00+00');
SELECT pg_temp.usage_at(:gus, 'inv-img', 5000, '2025-01-20 12:00:00+00');
SELECT pg_temp.usage_at(:gus, 'inv-vid', 49994999, '2025-02-01 04:59:59.999999+00');
-- 2025-02-01 00:00 in New York: February
SELECT pg_temp.usage_at(:gus, 'inv-vid', 1000000, '2025-02-01 05:00:00+00');
-- yen have no minor unit: 1.5 JPY -> 2, 1.234567 JPY -> 1
SELECT billing.create_account('inv-hana', 'postpaid', 'JPY') AS hana \gset
SELECT billing.set_credit_limit(:hana, 100000000, 'yen account');
SELECT pg_temp.usage_at(:hana, 'inv-img', 1500000, '2025-01-05 00:00+00');
SELECT pg_temp.usage_at(:hana, 'inv-vid', 1234567, '2025-01-06 00:00+00');
-- a postpaid account without usage in January gets no invoice
SELECT billing.create_account('inv-ivy', 'postpaid') AS ivy \gset
SELECT pg_temp.usage_at(:ivy, 'inv-img', 20000, '2025-02-02 00:00+00');
-- faye: 0.03 of prepaid credit, January usage of 0.01 and February of 0.05
SELECT pg_temp.usage_at(:faye, 'inv-img', 10000, '2025-01-15 00:00+00');
SELECT pg_temp.usage_at(:faye, 'inv-img', 50000, '2025-02-15 00:00+00');
-- postpaid -> prepaid with January usage still to invoice: it is owed
-- (the balance is negative) and stays postpaid usage, invoiced at the close
SELECT billing.create_account('inv-jo', 'postpaid') AS jo \gset
SELECT billing.set_credit_limit(:jo, 100000, 'small');
SELECT pg_temp.usage_at(:jo, 'inv-img', 70000, '2025-01-20 00:00+00');
SELECT pg_temp.avail(:jo) AS available, pg_temp.bal(:jo) AS balance;
SELECT billing.set_billing_type(:jo, 'prepaid');
SELECT pg_temp.avail(:jo) AS available, pg_temp.bal(:jo) AS balance;
SELECT billing.add_funds(:jo, 100000) > 0 AS funded;
SELECT pg_temp.avail(:jo) AS available;
-- round trip: prepaid 0.10 -> postpaid (credit 0.10), 0.04 of January usage,
-- -> prepaid: 0.04 of the credit stays for the January invoice, 0.06 is balance
SELECT billing.create_account('inv-kim') AS kim \gset
SELECT billing.add_funds(:kim, 100000) > 0 AS funded;
SELECT billing.set_billing_type(:kim, 'postpaid');
SELECT pg_temp.usage_at(:kim, 'inv-img', 40000, '2025-01-25 00:00+00');
SELECT billing.set_billing_type(:kim, 'prepaid');
SELECT prepaid_credit_micros, pg_temp.avail(:kim) AS available, pg_temp.bal(:kim) AS balance
  FROM billing.accounts WHERE account_id = :kim;
SELECT * FROM billing.verify();

-- refusals: not the first of a month, unfinished months, nonsense
SELECT regress.try($$SELECT billing.close_period('2025-01-15')$$);
SELECT regress.try($$SELECT billing.close_period('infinity')$$);
-- (the month of today in billing.timezone, whatever the date)
SELECT regress.try(format('SELECT billing.close_period(%L)', m))
       = format('22023: the month beginning %s has not ended', m) AS refused
  FROM (SELECT to_char(now() AT TIME ZONE current_setting('billing.timezone'), 'YYYY-MM-01') AS m) t;
SELECT pg_temp.try_detail($$SELECT billing.close_period('2999-01-01')$$);
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT regress.try($$SELECT billing.close_period('2025-01-01')$$);
ROLLBACK;
SELECT count(*) AS invoices FROM billing.invoices WHERE account_id >= :dana;

-- this test's invoices (a close issues those of other tests' accounts too),
-- numbered from 1 in the order of their invoice numbers
CREATE TEMP VIEW inv AS
SELECT i.*, a.external_id, rank() OVER (ORDER BY i.invoice_number) AS number
  FROM billing.invoices i JOIN billing.accounts a USING (account_id)
 WHERE a.external_id LIKE 'inv-%';
-- close_period, returning how many of this test's invoices it issued
CREATE FUNCTION pg_temp.close_period(m date) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    before bigint := (SELECT count(*) FROM inv);
BEGIN
    PERFORM billing.close_period(m);
    RETURN (SELECT count(*) FROM inv) - before;
END $$;
SELECT pg_temp.close_period('2024-12-01') AS issued;
SELECT pg_temp.close_period('2025-01-01') AS issued;
SELECT billing.close_period('2025-01-01') AS issued_again;
SET billing.invoice_due_days = 15;
SELECT pg_temp.close_period('2025-02-01') AS issued;
SELECT billing.close_period('2025-02-01') AS issued_again;
RESET billing.invoice_due_days;
SELECT external_id, number, period_start, period_end, currency,
       subtotal_micros, credit_micros, total_micros, status, due_date, paid_at IS NOT NULL AS paid
  FROM inv ORDER BY number;
SELECT i.number, l.model, l.quantity, l.usage_micros, l.amount_micros
  FROM billing.invoice_lines l JOIN inv i USING (invoice_id)
 ORDER BY i.number, l.model;
-- the rounding is in the ledger, so that ledger and invoices agree
SELECT i.number, l.kind, l.amount_micros,
       replace(l.reference, 'invoice ' || i.invoice_number, 'invoice ' || i.number) AS reference
  FROM billing.ledger l JOIN inv i USING (invoice_id)
 ORDER BY l.entry_id;
SELECT external_id, prepaid_credit_micros FROM billing.accounts
 WHERE account_id IN (:faye, :kim) ORDER BY account_id;
-- unpaid invoices still count against the credit limit
SELECT pg_temp.avail(:gus) AS available, pg_temp.bal(:gus) AS balance,
       billing.balance(:gus) -> 'unpaid_invoices_micros' AS unpaid;
SELECT * FROM billing.verify();
SELECT * FROM billing._verify_invoices();

-- 4. Payment: once, whatever the number of calls.
SELECT invoice_id AS gus_jan FROM billing.invoices WHERE account_id = :gus AND period_start = '2025-01-01' \gset
SELECT invoice_id AS gus_dec FROM billing.invoices WHERE account_id = :gus AND period_start = '2024-12-01' \gset
SELECT invoice_id AS gus_feb FROM billing.invoices WHERE account_id = :gus AND period_start = '2025-02-01' \gset
SELECT billing.mark_invoice_paid(:gus_jan, 'wire-2025-001');
SELECT billing.mark_invoice_paid(:gus_jan, 'wire-2025-001-again');
SELECT status, payment_reference, paid_at IS NOT NULL AS paid FROM billing.invoices WHERE invoice_id = :gus_jan;
SELECT kind, amount_micros, reference FROM billing.ledger
 WHERE account_id = :gus AND kind = 'invoice_payment' ORDER BY entry_id;
SELECT pg_temp.avail(:gus) AS available, pg_temp.bal(:gus) AS balance;
SELECT regress.try($$SELECT billing.mark_invoice_paid(999999999)$$);
SELECT regress.try($$SELECT billing.mark_invoice_paid(NULL)$$);
-- a fully credited invoice is paid at issue; paying it again moves nothing
SELECT billing.mark_invoice_paid(invoice_id) FROM billing.invoices
 WHERE account_id = :kim AND period_start = '2025-01-01';
SELECT count(*) AS kim_payments FROM billing.ledger WHERE account_id = :kim AND kind = 'invoice_payment';
-- jo pays the January invoice of postpaid days: the prepaid funds are whole again
SELECT billing.mark_invoice_paid(invoice_id, 'card') FROM billing.invoices WHERE account_id = :jo;
SELECT pg_temp.avail(:jo) AS available, pg_temp.bal(:jo) AS balance;
SELECT * FROM billing.verify();
SELECT * FROM billing._verify_invoices();

-- 5. Suggested limits.
-- Test only: known payment dates, and an account created 29 months before
-- today in billing.timezone, so that its age does not move with the date.
CREATE FUNCTION pg_temp.months_ago(months integer, plus interval DEFAULT '0') RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT ((now() AT TIME ZONE current_setting('billing.timezone')) - months * interval '1 month' + plus)
           AT TIME ZONE current_setting('billing.timezone')
$$;
UPDATE billing.accounts SET created_at = pg_temp.months_ago(29) WHERE account_id = :gus;
UPDATE billing.invoices SET paid_at = due_date + time '12:00' WHERE invoice_id = :gus_jan;
-- the December and February invoices are open and overdue: the floor
SELECT jsonb_pretty(billing.suggest_credit_limit(:gus) - 'account_id');
SELECT billing.mark_invoice_paid(:gus_dec);
SELECT billing.mark_invoice_paid(:gus_feb);
UPDATE billing.invoices SET paid_at = due_date + 10 + time '12:00' WHERE invoice_id = :gus_dec;
UPDATE billing.invoices SET paid_at = due_date + time '12:00' WHERE invoice_id = :gus_feb;
-- two of three paid on time: 2 x 67.01 x 66% x 100% -> 88
SELECT jsonb_pretty(billing.suggest_credit_limit(:gus) - 'account_id');
SET billing.credit_limit_cap_micros = 50000000;
SELECT billing.suggest_credit_limit(:gus) -> 'suggested_limit';
RESET billing.credit_limit_cap_micros;
-- no invoices yet, a new account: the floor
SELECT jsonb_pretty(billing.suggest_credit_limit(:dana) - 'account_id');
SELECT regress.try($$SELECT billing.suggest_credit_limit(999999999)$$);
-- the age is whole months in billing.timezone: 50% + 10% a month, up to 100%
-- (one transaction, so that now() cannot pass midnight in between)
CREATE FUNCTION pg_temp.suggest_if_created(acct bigint, created timestamptz) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE billing.accounts a SET created_at = created WHERE a.account_id = acct;
    RETURN billing.suggest_credit_limit(acct);
END $$;
BEGIN;
SELECT m.label, s -> 'basis' -> 'account_age_months' AS months, s -> 'basis' -> 'age_percent' AS age_percent,
       s -> 'suggested_limit_micros' AS suggested
  FROM (VALUES (1, 'a day short of 3 months', pg_temp.months_ago(3, '1 day')), (2, '3 months', pg_temp.months_ago(3)),
               (3, '5 months', pg_temp.months_ago(5))) m(n, label, created),
       LATERAL pg_temp.suggest_if_created(:gus, m.created) s
 ORDER BY m.n;
ROLLBACK;

SELECT * FROM billing.verify();
SELECT * FROM billing._verify_invoices();
-- _verify_invoices finds a tampered invoice (test only, rolled back)
BEGIN;
UPDATE billing.invoices SET total_micros = total_micros + 1 WHERE invoice_id = :gus_feb;
UPDATE billing.invoice_lines SET amount_micros = amount_micros + 1 WHERE invoice_id = :gus_jan AND model = 'inv-vid';
SELECT a.external_id, regexp_replace(v.problem, '^invoice \d+', 'invoice') AS problem
  FROM billing._verify_invoices() v JOIN billing.accounts a USING (account_id) ORDER BY 1, 2;
ROLLBACK;
