-- Postpaid refunds and adjustments on invoices (docs/invoices.md, "Refunds
-- and corrections on invoices"): credited on the invoice of their month,
-- rounded half-up with the rounding in the ledger, a month without usage
-- passing them to the next invoice, credits beyond the usage carried, the
-- mark (not the date) deciding after out-of-order closes, and switches of
-- billing type with corrections not yet credited. Explicit dates only.
SET client_min_messages = warning;
SET TimeZone = 'UTC';
SET billing.timezone = 'UTC';
-- Test only, a controlled clock: usage of ppr-img dated "at", postpaid when
-- the account is (regress.usage_at, test/sql/setup.sql); returns the request.
CREATE FUNCTION pg_temp.usage_at(acct bigint, micros bigint, at timestamptz) RETURNS bigint
LANGUAGE sql AS $$
    SELECT regress.usage_at(acct, 'ppr-img', micros, at) $$;
-- what billing.refund_request posts, dated "at": the entry is postpaid when
-- the usage it refunds is
CREATE FUNCTION pg_temp.refund_at(rid bigint, micros bigint, at timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    acct bigint := (SELECT r.account_id FROM billing.requests r WHERE r.request_id = rid);
    eid bigint;
BEGIN
    INSERT INTO billing.ledger (account_id, kind, amount_micros, postpaid, request_id, reference, created_at)
    VALUES (acct, 'refund', micros,
            (SELECT l.postpaid FROM billing.ledger l
              WHERE l.account_id = acct AND l.request_id = rid AND l.kind = 'usage'),
            rid, 'regress', at)
    RETURNING entry_id INTO eid;
    PERFORM billing._adjust_available(acct, micros);
    INSERT INTO billing.refunds (account_id, request_id, amount_micros, requested_micros, reason,
                                 entry_id, created_at)
    VALUES (acct, rid, micros, micros, 'regress', eid, at);
END $$;
CREATE FUNCTION pg_temp.money(acct bigint) RETURNS TABLE (billing_type text, balance bigint,
    unbilled bigint, unpaid bigint, prepaid_credit bigint, available bigint)
LANGUAGE sql AS $$
    SELECT b ->> 'billing_type', (b ->> 'balance_micros')::bigint, (b ->> 'unbilled_micros')::bigint,
           (b ->> 'unpaid_invoices_micros')::bigint, (b ->> 'prepaid_credit_micros')::bigint,
           (b ->> 'available_micros')::bigint
      FROM billing.balance(acct) b
$$;
CREATE FUNCTION pg_temp.invoices(acct bigint) RETURNS TABLE (period_start date, subtotal bigint,
    corrections bigint, credit bigint, total bigint, status text, rounding bigint, refunds text)
LANGUAGE sql AS $$
    SELECT i.period_start, i.subtotal_micros, i.corrections_micros, i.credit_micros, i.total_micros,
           i.status,
           (SELECT sum(l.amount_micros) FROM billing.ledger l
             WHERE l.account_id = acct AND l.invoice_id = i.invoice_id AND l.kind = 'adjustment'),
           (SELECT string_agg(f.amount_micros::text, ',' ORDER BY f.refund_id) FROM billing.refunds f
             WHERE f.account_id = acct AND f.invoice_id = i.invoice_id)
      FROM billing.invoices i WHERE i.account_id = acct ORDER BY i.period_start
$$;
SELECT billing.set_model('ppr-img', 'image', 'acme', 'Acme Imaging', 'acme-img-v2');

-- 1. A refund credited on the invoice of its month, rounded half-up:
-- 0.50 of January usage, 0.125 of it refunded in January. The invoice
-- credits 0.13; the 0.005 of rounding is an adjustment of the invoice.
SELECT billing.create_account('ppr-ann', 'postpaid') AS ann \gset
SELECT billing.set_credit_limit(:ann, 10000000, 'x');
SELECT pg_temp.usage_at(:ann, 500000, '2021-01-10') AS jan_req \gset
SELECT pg_temp.refund_at(:jan_req, 125000, '2021-01-20');
SELECT * FROM pg_temp.money(:ann);
SELECT billing.close_period('2021-01-01') AS issued;
SELECT * FROM pg_temp.invoices(:ann);
SELECT * FROM pg_temp.money(:ann);
SELECT * FROM billing.verify(:ann);

-- 2. A month with a refund and no usage issues no invoice: February's 0.10
-- stays uncredited (unbilled below 0), for the next invoice.
SELECT pg_temp.refund_at(:jan_req, 100000, '2021-02-05');
SELECT billing.close_period('2021-02-01') AS issued;
SELECT * FROM pg_temp.money(:ann);
SELECT count(*) AS uncredited FROM billing.refunds WHERE account_id = :ann AND invoice_id IS NULL;
SELECT * FROM billing.verify(:ann);

-- 3. Credits beyond the usage: March has 0.05 of usage and credits
-- February's 0.10. Total 0, paid at issue; 0.05 is carried in the kept
-- credit and April's invoice of 0.20 deducts it.
SELECT pg_temp.usage_at(:ann, 50000, '2021-03-03') AS mar_req \gset
SELECT billing.close_period('2021-03-01') AS issued;
SELECT * FROM pg_temp.invoices(:ann) WHERE period_start = '2021-03-01';
SELECT * FROM pg_temp.money(:ann);
SELECT * FROM billing.verify(:ann);
SELECT pg_temp.usage_at(:ann, 200000, '2021-04-14') AS apr_req \gset
-- at the very end of the period: not on April's invoice
SELECT pg_temp.refund_at(:apr_req, 20000, '2021-05-01 00:00');
SELECT billing.close_period('2021-04-01') AS issued;
SELECT * FROM pg_temp.invoices(:ann);
SELECT * FROM pg_temp.money(:ann);
SELECT * FROM billing.verify(:ann);
-- paying the open invoices settles the account but for May's refund
SELECT billing.mark_invoice_paid(invoice_id) FROM billing.invoices
 WHERE account_id = :ann AND status = 'open' ORDER BY invoice_id;
SELECT * FROM pg_temp.money(:ann);
SELECT * FROM billing.verify(:ann);

-- 4. Out-of-order closes: June's refund, July closed first. July's invoice
-- credits it (it was posted before July ended and no invoice had); June's,
-- issued later, does not credit it again.
SELECT billing.create_account('ppr-ola', 'postpaid') AS ola \gset
SELECT billing.set_credit_limit(:ola, 10000000, 'x');
SELECT pg_temp.usage_at(:ola, 300000, '2021-06-10') AS jun_req \gset
SELECT pg_temp.refund_at(:jun_req, 100000, '2021-06-11');
SELECT pg_temp.usage_at(:ola, 200000, '2021-07-10') IS NOT NULL AS july_usage;
SELECT billing.close_period('2021-07-01') AS issued;
SELECT billing.close_period('2021-06-01') AS issued;
SELECT * FROM pg_temp.invoices(:ola);
SELECT * FROM billing.verify(:ola);

-- 5. A switch to prepaid with a refund not yet credited: the invoice to
-- come credits it, and the kept credit stays only for what that invoice
-- leaves to pay. 1.00 of funds, postpaid, 0.30 of January usage, 0.10 of it
-- refunded, prepaid: 0.20 of credit stays kept for January.
SELECT billing.create_account('ppr-ben') AS ben \gset
SELECT billing.add_funds(:ben, 1000000) > 0 AS funded;
SELECT billing.set_billing_type(:ben, 'postpaid');
SELECT pg_temp.usage_at(:ben, 300000, '2021-01-10') AS ben_req \gset
SELECT pg_temp.refund_at(:ben_req, 100000, '2021-01-12');
SELECT billing.set_billing_type(:ben, 'prepaid');
SELECT * FROM pg_temp.money(:ben);
SELECT billing.close_period('2021-01-01') AS issued;
SELECT * FROM pg_temp.invoices(:ben);
SELECT * FROM pg_temp.money(:ben);
-- A refund of that postpaid usage while prepaid is prepaid balance at once
-- and stays uncredited; going postpaid again does not keep it as credit
-- too: the next invoice credits it, once.
SELECT pg_temp.refund_at(:ben_req, 50000, '2021-02-02');
SELECT * FROM pg_temp.money(:ben);
SELECT billing.set_billing_type(:ben, 'postpaid');
SELECT * FROM pg_temp.money(:ben);
SELECT * FROM billing.verify(:ben);
SELECT pg_temp.usage_at(:ben, 300000, '2021-03-05') IS NOT NULL AS march_usage;
SELECT billing.close_period('2021-03-01') AS issued;
SELECT * FROM pg_temp.invoices(:ben);
SELECT * FROM pg_temp.money(:ben);
SELECT * FROM billing.verify(:ben);

-- 6. A switch to prepaid while the corrections exceed the usage to invoice:
-- nothing stays kept, and the invoice's excess is not carried (it is plain
-- prepaid balance already); postpaid again, the kept credit is the balance.
SELECT billing.create_account('ppr-cy', 'postpaid') AS cy \gset
SELECT billing.set_credit_limit(:cy, 10000000, 'x');
SELECT pg_temp.usage_at(:cy, 300000, '2021-01-10') AS cy_req \gset
SELECT billing.close_period('2021-01-01') AS issued;
SELECT billing.mark_invoice_paid(invoice_id) FROM billing.invoices WHERE account_id = :cy;
SELECT pg_temp.refund_at(:cy_req, 300000, '2021-02-03');
SELECT pg_temp.usage_at(:cy, 100000, '2021-02-04') IS NOT NULL AS february_usage;
SELECT * FROM pg_temp.money(:cy);
SELECT billing.set_billing_type(:cy, 'prepaid');
SELECT billing.close_period('2021-02-01') AS issued;
SELECT * FROM pg_temp.invoices(:cy);
SELECT * FROM pg_temp.money(:cy);
SELECT billing.set_billing_type(:cy, 'postpaid');
SELECT * FROM pg_temp.money(:cy);
SELECT * FROM billing.verify(:cy);

-- 7. An adjustment made while postpaid is a correction like a refund: a
-- debit of 0.015 and a credit of 0.004 in August (dated as
-- billing.adjust_balance posts them) net to a debit of 0.011, billed as
-- -0.01 of corrections (half-up, like its opposite), the 0.001 in the
-- rounding adjustment. One made today is for a later invoice.
CREATE FUNCTION pg_temp.adjust_at(acct bigint, micros bigint, at timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    eid bigint;
BEGIN
    INSERT INTO billing.ledger (account_id, kind, amount_micros, postpaid, reference, created_at)
    VALUES (acct, 'adjustment', micros, true, 'regress', at)
    RETURNING entry_id INTO eid;
    PERFORM billing._adjust_available(acct, micros);
    INSERT INTO billing.adjustments (account_id, entry_id, amount_micros, reason, created_at)
    VALUES (acct, eid, micros, 'regress', at);
END $$;
SELECT billing.create_account('ppr-dee', 'postpaid') AS dee \gset
SELECT billing.set_credit_limit(:dee, 10000000, 'x');
SELECT pg_temp.usage_at(:dee, 100000, '2021-08-02') IS NOT NULL AS august_usage;
SELECT pg_temp.adjust_at(:dee, -15000, '2021-08-20');
SELECT pg_temp.adjust_at(:dee, 4000, '2021-08-21');
SELECT billing.adjust_balance(:dee, 20000, 'goodwill') > 0 AS credited_today;
SELECT * FROM pg_temp.money(:dee);
SELECT billing.close_period('2021-08-01') AS issued;
SELECT * FROM pg_temp.invoices(:dee);
SELECT amount_micros, invoice_id IS NOT NULL AS credited FROM billing.adjustments
 WHERE account_id = :dee ORDER BY entry_id;
SELECT * FROM pg_temp.money(:dee);
SELECT * FROM billing.verify(:dee);

-- 8. A refund of prepaid usage on an account that went postpaid since is
-- prepaid money back: it joins the kept credit, and the next invoice deducts
-- it (billing.refund_request itself).
SELECT billing.create_account('ppr-eve') AS eve \gset
SELECT billing.add_funds(:eve, 1000000) > 0 AS funded;
SELECT billing.set_price('ppr-img', '[{"type":"output","metric":"image","unit_price_micros":40000}]') > 0 AS priced;
SELECT (billing.charge(:eve, 'ppr-img', '{"n":1}', '{"images":[{"width":512,"height":512}]}')
        ->> 'request_id')::bigint AS eve_req \gset
SELECT billing.set_billing_type(:eve, 'postpaid');
SELECT * FROM pg_temp.money(:eve);
SELECT billing.refund_request(:eve_req, 40000, 'broken') ->> 'refunded_micros' AS refunded;
SELECT postpaid FROM billing.ledger WHERE account_id = :eve AND kind = 'refund';
SELECT * FROM pg_temp.money(:eve);
SELECT * FROM billing.verify(:eve);

-- verify() notices a refund credited twice, or on no invoice of its account
BEGIN;
UPDATE billing.refunds SET invoice_id = (SELECT max(invoice_id) FROM billing.invoices WHERE account_id = :ola)
 WHERE account_id = :ann AND invoice_id IS NULL;
UPDATE billing.refunds SET invoice_id = NULL WHERE account_id = :ola;
SELECT a.external_id, regexp_replace(v.problem, '(invoice|entry|id) \d+', '\1 N', 'g') AS problem
  FROM billing.verify() v JOIN billing.accounts a USING (account_id) ORDER BY 1, 2;
ROLLBACK;

SELECT * FROM billing.verify();
