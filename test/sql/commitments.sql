-- Minimum commitments (docs/invoices.md, "Minimum commitments"): what a
-- postpaid account pays at least in a month, billed by close_period as a
-- true-up line and one adjustment entry.
SET client_min_messages = warning;
SET TimeZone = 'UTC';
CREATE FUNCTION pg_temp.usage_at(acct bigint, micros bigint, at timestamptz) RETURNS void
LANGUAGE sql AS $$ SELECT regress.usage_at(acct, 'mc-img', micros, at, true) $$;
-- a postpaid adjustment dated "at" (as test/sql/postpaid_refunds.sql)
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
CREATE FUNCTION pg_temp.invoices(acct bigint) RETURNS TABLE(period_start date, lines text, subtotal bigint,
        corrections bigint, true_up bigint, credit bigint, total bigint, status text, true_up_entry bigint)
LANGUAGE sql AS $$
    SELECT i.period_start,
           (SELECT string_agg(format('%s x%s %s', l.model, l.quantity, l.amount_micros), ', ' ORDER BY l.model)
              FROM billing.invoice_lines l WHERE l.invoice_id = i.invoice_id),
           i.subtotal_micros, i.corrections_micros, i.true_up_micros, i.credit_micros, i.total_micros, i.status,
           (SELECT sum(e.amount_micros) FROM billing.ledger e
             WHERE e.invoice_id = i.invoice_id AND e.reference LIKE 'minimum commitment of invoice %')
      FROM billing.invoices i WHERE i.account_id = acct ORDER BY i.period_start $$;
-- regress.try with ids masked (they depend on earlier tests)
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE sql AS $$
    SELECT regexp_replace(regress.try(sql), '(account|invoice) \d+', '\1 N', 'g') $$;
CREATE FUNCTION pg_temp.state() RETURNS text LANGUAGE sql AS $$
    SELECT format('%s commitments, %s invoices, %s entries',
                  (SELECT count(*) FROM billing.minimum_commitments), (SELECT count(*) FROM billing.invoices),
                  (SELECT count(*) FROM billing.ledger)) $$;

SELECT regress.image_model('mc-img', 10000);
SELECT billing.create_account('mc-ann', 'postpaid') AS ann \gset
SELECT billing.create_account('mc-bob', 'postpaid') AS bob \gset
SELECT billing.create_account('mc-pre') AS pre \gset
SELECT billing.set_credit_limit(:ann, 100000000, 'x'), billing.set_credit_limit(:bob, 100000000, 'x');

-- 1. Refusals write nothing.
SELECT pg_temp.state() AS before \gset
SELECT pg_temp.try(sql) FROM unnest(ARRAY[
    $$SELECT billing.set_minimum_commitment(NULL, 1000000, '2022-01-01')$$,
    format($$SELECT billing.set_minimum_commitment(%s, NULL, '2022-01-01')$$, :ann),
    format($$SELECT billing.set_minimum_commitment(%s, 1000000, NULL)$$, :ann),
    format($$SELECT billing.set_minimum_commitment(%s, -10000, '2022-01-01')$$, :ann),
    format($$SELECT billing.set_minimum_commitment(%s, 1000001, '2022-01-01')$$, :ann),
    format($$SELECT billing.set_minimum_commitment(%s, 1000000, '2022-01-02')$$, :ann),
    format($$SELECT billing.set_minimum_commitment(%s, 1000000, '2022-01-01', '2022-02-15')$$, :ann),
    format($$SELECT billing.set_minimum_commitment(%s, 1000000, '2022-01-01', '2022-01-01')$$, :ann),
    format($$SELECT billing.set_minimum_commitment(%s, 1000000, '2022-03-01', '2022-01-01')$$, :ann),
    format($$SELECT billing.set_minimum_commitment(%s, 1000000, 'infinity')$$, :ann),
    format($$SELECT billing.set_minimum_commitment(%s, 1000000, '2022-01-01')$$, :pre),
    $$SELECT billing.set_minimum_commitment(999999999, 1000000, '2022-01-01')$$]) sql;
SELECT pg_temp.state() = :'before' AS nothing_written;

-- 2. ann commits to 1.00 a month from January to March 2022, then to 2.00
-- for March (replacing it there) and to nothing for February. January's
-- usage falls short, February's has no minimum, March has no usage.
SELECT billing.set_minimum_commitment(:ann, 1000000, '2022-01-01', '2022-04-01');
SELECT billing.set_minimum_commitment(:ann, 2000000, '2022-03-01', '2022-04-01');
SELECT billing.set_minimum_commitment(:ann, 0, '2022-02-01', '2022-03-01');
SELECT m, billing._minimum_for(:ann, m) AS minimum
  FROM unnest('{2021-12-01,2022-01-01,2022-02-01,2022-03-01,2022-04-01}'::date[]) m;
SELECT amount_micros, effective_from, effective_until, created_by = session_user AS by_me
  FROM billing.minimum_commitments WHERE account_id = :ann ORDER BY commitment_id;
SELECT pg_temp.usage_at(:ann, 300000, '2022-01-10'), pg_temp.usage_at(:ann, 5000, '2022-01-11'),
       pg_temp.usage_at(:ann, 400000, '2022-02-10');
-- bob: a minimum of 0.50 in January; his usage of 0.20 less a credit of 0.40
-- leaves -0.20, so the true-up is 0.70 and he owes the minimum (the credit
-- beyond his usage is absorbed, not carried)
SELECT billing.set_minimum_commitment(:bob, 500000, '2022-01-01', '2022-02-01');
SELECT pg_temp.usage_at(:bob, 200000, '2022-01-05'), pg_temp.adjust_at(:bob, 400000, '2022-01-20');
-- carl's commitment for January was removed again: no usage, no invoice
SELECT billing.create_account('mc-carl', 'postpaid') AS carl \gset
SELECT billing.set_minimum_commitment(:carl, 1000000, '2022-01-01', '2022-02-01'),
       billing.set_minimum_commitment(:carl, 0, '2022-01-01', '2022-02-01');
SELECT billing.close_period('2022-01-01') AS issued, billing.close_period('2022-02-01') AS issued,
       billing.close_period('2022-03-01') AS issued, billing.close_period('2022-01-01') AS again;
SELECT * FROM pg_temp.invoices(:ann);
SELECT * FROM pg_temp.invoices(:bob);
SELECT count(*) AS carl_invoices FROM billing.invoices WHERE account_id = :carl;
SELECT e.type, e.payload ->> 'period_start' AS period, e.payload -> 'true_up_micros' AS true_up
  FROM billing.events e WHERE e.account_id IN (:ann, :bob) AND e.type LIKE 'invoice_%'
 ORDER BY e.account_id, e.event_id;
SELECT * FROM billing.verify(:ann);
SELECT * FROM billing.verify(:bob);
SELECT billing.mark_invoice_paid(invoice_id) FROM billing.invoices
 WHERE account_id = :ann AND period_start = '2022-03-01';
SELECT e.payload -> 'true_up_micros' AS paid_true_up FROM billing.events e
 WHERE e.account_id = :ann AND e.type = 'invoice_paid';
SELECT (billing.balance(:ann) ->> 'balance_micros')::bigint AS ann_balance;

-- 3. A month with a non-void invoice takes no commitment; a switch to
-- prepaid waits until no minimum covers this month or a later one.
SELECT pg_temp.state() AS before \gset
SELECT pg_temp.try(format($$SELECT billing.set_minimum_commitment(%s, 3000000, '2022-02-01')$$, :ann));
SELECT pg_temp.try(format($$SELECT billing.set_minimum_commitment(%s, 3000000, '2021-06-01', '2022-02-01')$$, :bob));
SELECT pg_temp.state() = :'before' AS nothing_written;
SELECT date_trunc('month', now() + interval '2 months')::date AS later \gset
SELECT billing.set_minimum_commitment(:ann, 1000000, :'later');
SELECT pg_temp.try(format($$SELECT billing.set_billing_type(%s, 'prepaid')$$, :ann));
SELECT billing.set_minimum_commitment(:ann, 0, :'later');
SELECT billing.set_billing_type(:ann, 'prepaid');
SELECT billing_type FROM billing.accounts WHERE account_id = :ann;

-- 4. Read-only (as on a hot standby): refused; a failed call in a block
-- aborts it, and the session goes on.
BEGIN READ ONLY;
SELECT pg_temp.try(format($$SELECT billing.set_minimum_commitment(%s, 1000000, '2030-01-01')$$, :bob));
COMMIT;
BEGIN;
SELECT billing.set_minimum_commitment(:bob, -1, '2030-01-01');
ROLLBACK;
SELECT 'the session goes on' AS after_failure;

-- 5. verify() sees a true-up that is not the shortfall, a line or an entry
-- that does not match it.
CREATE FUNCTION pg_temp.problems(acct bigint) RETURNS SETOF text LANGUAGE sql AS $$
    SELECT regexp_replace(problem, 'invoice \d+', 'invoice N', 'g') FROM billing.verify(acct) ORDER BY 1 $$;
BEGIN;
UPDATE billing.invoices SET true_up_micros = 0 WHERE account_id = :bob;
SELECT * FROM pg_temp.problems(:bob);
ROLLBACK;
BEGIN;
UPDATE billing.invoice_lines SET amount_micros = 600000, usage_micros = 600000
 WHERE account_id = :bob AND model = '(minimum commitment)';
SELECT * FROM pg_temp.problems(:bob);
ROLLBACK;
BEGIN;
INSERT INTO billing.minimum_commitments (account_id, amount_micros, effective_from)
VALUES (:bob, 900000, '2022-01-01');
SELECT * FROM pg_temp.problems(:bob);
ROLLBACK;
SELECT * FROM billing.verify();
