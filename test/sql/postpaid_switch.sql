-- Postpaid money around switches of billing type: what balance() calls
-- unbilled, the prepaid credit kept across round trips, and invoice credits
-- in whole minor units (docs/invoices.md). Usage in past months is placed
-- with explicit dates, and every month is closed by its period_start.
SET client_min_messages = warning;
SET TimeZone = 'UTC';
SET billing.timezone = 'UTC';
-- Test only, a controlled clock: postpaid usage of ps-img dated "at"
-- (regress.usage_at, test/sql/setup.sql), and regress.try_detail
CREATE FUNCTION pg_temp.usage_at(acct bigint, micros bigint, at timestamptz,
                                 postpaid boolean DEFAULT true) RETURNS void LANGUAGE sql AS $$
    SELECT regress.usage_at(acct, 'ps-img', micros, at, postpaid) $$;
CREATE FUNCTION pg_temp.try_detail(sql text) RETURNS text LANGUAGE sql AS $$
    SELECT regress.try_detail(sql) $$;
-- the money keys of balance(), and the kept credit
CREATE FUNCTION pg_temp.money(acct bigint) RETURNS TABLE (billing_type text, balance bigint,
    unbilled bigint, unpaid bigint, prepaid_credit bigint, credit_limit bigint, held bigint, available bigint)
LANGUAGE sql AS $$
    SELECT b ->> 'billing_type', (b ->> 'balance_micros')::bigint, (b ->> 'unbilled_micros')::bigint,
           (b ->> 'unpaid_invoices_micros')::bigint, (b ->> 'prepaid_credit_micros')::bigint,
           (b ->> 'credit_limit_micros')::bigint, (b ->> 'held_micros')::bigint,
           (b ->> 'available_micros')::bigint
      FROM billing.balance(acct) b
$$;
CREATE FUNCTION pg_temp.invoices(acct bigint) RETURNS TABLE (period_start date, subtotal bigint,
    credit bigint, total bigint, status text)
LANGUAGE sql AS $$
    SELECT i.period_start, i.subtotal_micros, i.credit_micros, i.total_micros, i.status
      FROM billing.invoices i WHERE i.account_id = acct ORDER BY i.period_start
$$;
SELECT billing.set_model('ps-img', 'image', 'acme', 'Acme Imaging', 'acme-img-v2');
SELECT billing.set_price('ps-img', '[{"type":"output","metric":"image","unit_price_micros":300000}]',
                         effective_from => '2020-01-01') > 0 AS priced;

-- 1. Unbilled usage is usage owed and not yet invoiced, never a prepaid
-- credit: 1.00 of funds, then postpaid with a limit of 5.00.
SELECT billing.create_account('ps-ann') AS ann \gset
SELECT billing.add_funds(:ann, 1000000) > 0 AS funded;
SELECT billing.set_billing_type(:ann, 'postpaid');
SELECT billing.set_credit_limit(:ann, 5000000, 'x');
SELECT * FROM pg_temp.money(:ann);
-- a 0.30 charge: 0.30 is owed, 0.70 of the credit is left;
-- available = limit + credit - unbilled - unpaid - holds
SELECT billing.charge(:ann, 'ps-img', '{"n":1}', '{"images":[{"width":1024,"height":1024}]}')
       ->> 'cost_micros' AS cost_micros;
SELECT * FROM pg_temp.money(:ann);
-- a request in flight holds its estimate against the same amount
SELECT billing.begin_request(:ann, 'ps-img', '{"n":1}') ->> 'request_id' AS rid \gset
SELECT * FROM pg_temp.money(:ann);
SELECT billing.cancel_request(:rid) ->> 'status' AS status;
SELECT * FROM billing.verify(:ann);

-- 2. A round trip of billing types keeps the whole credit: 1.00 of funds,
-- limit 5.00, postpaid, 0.30 of usage in January, prepaid, postpaid again,
-- 0.70 of usage in February.
SELECT billing.create_account('ps-ben') AS ben \gset
SELECT billing.add_funds(:ben, 1000000) > 0 AS funded;
SELECT billing.set_credit_limit(:ben, 5000000, 'x');
SELECT billing.set_billing_type(:ben, 'postpaid');
SELECT pg_temp.usage_at(:ben, 300000, '2026-01-15 12:00+00');
SELECT billing.set_billing_type(:ben, 'prepaid');
-- 0.30 of the credit stays for the January invoice, 0.70 is prepaid balance
SELECT * FROM pg_temp.money(:ben);
SELECT billing.set_billing_type(:ben, 'postpaid');
-- the 0.70 joins the 0.30 still kept: the credit is 1.00 again
SELECT * FROM pg_temp.money(:ben);
SELECT * FROM billing.verify(:ben);
SELECT pg_temp.usage_at(:ben, 700000, '2026-02-15 12:00+00');
SELECT billing.close_period('2026-01-01') >= 1 AS issued;
SELECT billing.close_period('2026-02-01') >= 1 AS issued;
-- 1.00 of funds paid for 1.00 of usage: nothing is owed
SELECT * FROM pg_temp.invoices(:ben);
SELECT * FROM pg_temp.money(:ben);
SELECT * FROM billing.verify(:ben);
-- verify() finds a kept credit that does not agree with the ledger, as the
-- old overwrite left it (test only, rolled back)
BEGIN;
UPDATE billing.accounts SET prepaid_credit_micros = 400000 WHERE account_id = :ben;
SELECT problem FROM billing.verify(:ben);
ROLLBACK;

-- postpaid usage still to invoice is not a prepaid debt: an account that
-- went prepaid owing it may go postpaid again
SELECT billing.create_account('ps-cat', 'postpaid') AS cat \gset
SELECT billing.set_credit_limit(:cat, 1000000, 'x');
SELECT pg_temp.usage_at(:cat, 70000, '2026-04-20 12:00+00');
SELECT billing.set_billing_type(:cat, 'prepaid');
SELECT * FROM pg_temp.money(:cat);
SELECT billing.set_billing_type(:cat, 'postpaid');
SELECT * FROM pg_temp.money(:cat);
-- a prepaid debt is refused: back on prepaid, 0.01 of prepaid usage beyond
-- the funds (an overrun), while April is still to invoice
SELECT billing.set_billing_type(:cat, 'prepaid');
SELECT pg_temp.usage_at(:cat, 10000, '2026-05-10 12:00+00', false);
SELECT * FROM pg_temp.money(:cat);
SELECT regexp_replace(pg_temp.try_detail(format($$SELECT billing.set_billing_type(%s, 'postpaid')$$, :cat)),
                      'account \d+', 'account N') AS refused;
SELECT * FROM pg_temp.money(:cat);
SELECT billing.add_funds(:cat, 30000) > 0 AS funded;
SELECT billing.set_billing_type(:cat, 'postpaid');
-- the 0.02 left of the funds is kept for the invoice of the 0.07 still unbilled
SELECT * FROM pg_temp.money(:cat);
SELECT * FROM billing.verify(:cat);

-- 3. Invoice credits and totals are whole minor units: 1.005001 of funds,
-- postpaid, 2.00 of usage in March.
SELECT billing.create_account('ps-dan') AS dan \gset
SELECT billing.add_funds(:dan, 1005001) > 0 AS funded;
SELECT billing.set_billing_type(:dan, 'postpaid');
SELECT pg_temp.usage_at(:dan, 2000000, '2026-03-10 12:00+00');
SELECT billing.close_period('2026-03-01') >= 1 AS issued;
-- credit 1.00, total 1.00; the 0.005001 left is kept for the next invoice
SELECT * FROM pg_temp.invoices(:dan);
SELECT * FROM pg_temp.money(:dan);
SELECT * FROM billing.verify(:dan);
-- verify() finds a credit and total that are not whole minor units, as the
-- old close left them (test only, rolled back)
BEGIN;
UPDATE billing.invoices SET credit_micros = 1005001, total_micros = 994999 WHERE account_id = :dan;
UPDATE billing.accounts SET prepaid_credit_micros = 0 WHERE account_id = :dan;
SELECT regexp_replace(problem, '^invoice \d+', 'invoice') AS problem FROM billing.verify(:dan);
ROLLBACK;
SELECT billing.mark_invoice_paid(invoice_id, 'card') FROM billing.invoices WHERE account_id = :dan;
-- paid: the ledger holds exactly the credit still kept
SELECT * FROM pg_temp.money(:dan);
SELECT * FROM billing.verify(:dan);

SELECT * FROM billing.verify();
