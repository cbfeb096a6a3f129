-- The parts of 0.3.0 together: a void gives back what its invoice billed of
-- each of them (a minimum commitment's true-up, a postpaid reversal) and the
-- month is issued again whole; a charge under a price book on a route with
-- a provider cost records both; an overdue account on a book is refused
-- before its book is looked at. verify() holds after each step.
SET client_min_messages = warning;
SET TimeZone = 'UTC';
SELECT regress.image_model('ip-img', 100000);
SELECT date_trunc('month', now()) - interval '3 months' AS m0 \gset
CREATE FUNCTION pg_temp.invoices(acct bigint) RETURNS TABLE(n bigint, status text, lines text,
        subtotal bigint, corrections bigint, true_up bigint, total bigint, reversals_billed bigint)
LANGUAGE sql AS $$
    SELECT row_number() OVER (ORDER BY i.invoice_number), i.status,
           (SELECT string_agg(format('%s %s', l.model, l.amount_micros), ', ' ORDER BY l.model)
              FROM billing.invoice_lines l WHERE l.invoice_id = i.invoice_id),
           i.subtotal_micros, i.corrections_micros, i.true_up_micros, i.total_micros,
           (SELECT count(*) FROM billing.reversals v WHERE v.invoice_id = i.invoice_id)
      FROM billing.invoices i WHERE i.account_id = acct ORDER BY i.invoice_number $$;

-- 1. A month with a minimum commitment and a postpaid reversal, voided and
-- issued again. The account was prepaid (funds of 7 USD), is postpaid now;
-- the reversal of 2 USD of those funds is a postpaid debit, dated into the
-- month (superuser, past the append-only trigger; billing dates it now).
SELECT billing.create_account('ip-ann') AS ann \gset
SELECT billing.add_funds(:ann, 7000000) AS funds \gset
SELECT billing.set_billing_type(:ann, 'postpaid');
SELECT billing.set_credit_limit(:ann, 100000000, 'regress');
SELECT billing.set_minimum_commitment(:ann, 10000000, :'m0'::date);
SELECT regress.usage_at(:ann, 'ip-img', 3000000, :'m0'::timestamptz + interval '3 days', true) > 0 AS used;
SELECT billing.reverse_funds(:funds, 2000000, 'chargeback') ->> 'amount_micros' AS reversed;
BEGIN;
SET LOCAL session_replication_role = replica;
UPDATE billing.ledger SET created_at = :'m0'::timestamptz + interval '5 days'
 WHERE account_id = :ann AND kind = 'reversal';
COMMIT;
SELECT billing.close_period(:'m0'::date) AS issued;
-- usage 3, the reversal a debit of 2 (corrections -2): 10 - (3 + 2) = 5 of true-up
SELECT * FROM pg_temp.invoices(:ann);
SELECT count(*) AS problems FROM billing.verify(:ann);
SELECT invoice_id AS inv FROM billing.invoices WHERE account_id = :ann \gset
SELECT billing.void_invoice(:inv, 'wrong customer details') ->> 'status' AS voided;
-- the rounding and the true-up given back in one entry; the reversal unbilled
SELECT kind, amount_micros, regexp_replace(reference, '\d+$', 'N') AS reference FROM billing.ledger
 WHERE account_id = :ann AND invoice_id = :inv ORDER BY entry_id;
SELECT invoice_id IS NULL AS reversal_unbilled FROM billing.reversals WHERE account_id = :ann;
SELECT count(*) AS problems FROM billing.verify(:ann);
-- issued again under the next number, as before: the same lines, the
-- reversal and the true-up
SELECT billing.close_period(:'m0'::date) AS issued;
SELECT * FROM pg_temp.invoices(:ann);
SELECT count(*) AS problems FROM billing.verify(:ann);

-- 2. A charge on a price book (10 % off) on a route with a provider cost:
-- the price is the book's, the provider cost the version's, the margin both.
SELECT billing.create_price_book('ip-book');
SELECT billing.set_discount('ip-book', 900000) > 0 AS discounted;
SELECT billing.set_provider_cost('ip-img', 'acme',
    '[{"type":"output","metric":"image","unit_price_micros":60000}]', now() - interval '1 hour') > 0 AS costed;
SELECT billing.create_account('ip-bob') AS bob \gset
SELECT billing.add_funds(:bob, 5000000) > 0 AS funded;
SELECT billing.assign_price_book(:bob, 'ip-book');
SELECT billing.charge(:bob, 'ip-img', '{"n":2}', regress.images(2)) ->> 'cost_micros' AS cost;
SELECT price_book, discount_id IS NOT NULL AS discounted, cost_micros, provider_cost_micros
  FROM billing.requests WHERE account_id = :bob;
SELECT requests, revenue_micros, provider_cost_micros, margin_micros, uncosted_requests
  FROM billing.margin(:bob, now() - interval '1 day', now() + interval '1 day', '{provider}');
SELECT count(*) AS problems FROM billing.verify(:bob);

-- 3. Overdue on a book: PB402 payment overdue, whatever the book would charge.
SELECT billing.create_account('ip-cat', 'postpaid') AS cat \gset
SELECT billing.set_credit_limit(:cat, 100000000, 'regress');
SELECT billing.assign_price_book(:cat, 'ip-book');
SELECT regress.usage_at(:cat, 'ip-img', 4000000, :'m0'::timestamptz + interval '3 days', true) > 0 AS used;
SELECT billing.close_period(:'m0'::date) AS issued;
SELECT billing.set_overdue_policy(:cat, 0);
SELECT billing.mark_overdue() >= 1 AS flagged;
SELECT regexp_replace(regress.try_detail(format($$SELECT billing.charge(%s, 'ip-img', '{"n":1}', %L)$$,
                                                :cat, regress.images(1))),
                      'Invoice \d+ (.*) was due on \S+', 'Invoice N \1 was due on D') AS refused;
SELECT count(*) AS problems FROM billing.verify(:cat);
SELECT count(*) AS problems FROM billing.verify();
-- a DBA's session in another time zone sees the same flag as sound
SET billing.timezone = 'Pacific/Kiritimati';
SELECT count(*) AS problems FROM billing.verify(:cat);
SET billing.timezone = 'Pacific/Pago_Pago';
SELECT count(*) AS problems FROM billing.verify(:cat);
RESET billing.timezone;
-- paid, the account is reinstated (the tests after this one see no overdue
-- account of its making, whatever their billing.timezone)
SELECT billing.mark_invoice_paid(invoice_id) FROM billing.invoices WHERE account_id = :cat;
SELECT overdue_since IS NULL AS reinstated FROM billing.accounts WHERE account_id = :cat;
SELECT count(*) AS problems FROM billing.verify();
