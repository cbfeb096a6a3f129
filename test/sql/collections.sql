-- Postpaid collections (docs/invoices.md): void invoices and their
-- reissue, credit notes, the overdue gate, billing details, list_invoices
-- and invoice_document. Every month invoiced here is in 2025, so due dates
-- are long past whatever the clock says.
SET client_min_messages = warning;
SET TimeZone = 'UTC';
CREATE FUNCTION pg_temp.usage_at(acct bigint, model text, micros bigint, at timestamptz) RETURNS void
LANGUAGE sql AS $$ SELECT regress.usage_at(acct, model, micros, at, true) $$;
-- a postpaid adjustment posted at "at" (as adjust_balance posts one then)
CREATE FUNCTION pg_temp.adjustment_at(acct bigint, micros bigint, at timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    e bigint;
BEGIN
    INSERT INTO billing.ledger (account_id, kind, amount_micros, postpaid, reference, created_at)
    VALUES (acct, 'adjustment', micros, true, 'goodwill', at) RETURNING entry_id INTO e;
    INSERT INTO billing.adjustments (account_id, entry_id, amount_micros, reason, created_at)
    VALUES (acct, e, micros, 'goodwill', at);
    PERFORM billing._adjust_available(acct, micros);
END $$;
CREATE FUNCTION pg_temp.pos(acct bigint) RETURNS text LANGUAGE sql AS $$
    SELECT format('balance %s, unbilled %s, unpaid %s, kept %s, available %s',
                  b ->> 'balance_micros', b ->> 'unbilled_micros', b ->> 'unpaid_invoices_micros',
                  b ->> 'prepaid_credit_micros', b ->> 'available_micros')
      FROM billing.balance(acct) b $$;
-- errcode, message, detail and hint of a failed call
CREATE FUNCTION pg_temp.try_all(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    d text;
    h text;
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    RETURN SQLSTATE || ': ' || SQLERRM || ' / ' || d || ' / ' || h;
END $$;
-- what nothing may change
CREATE FUNCTION pg_temp.state() RETURNS text LANGUAGE sql AS $$
    SELECT format('%s entries, %s events, %s notes, %s invoices, %s',
                  (SELECT count(*) FROM billing.ledger), (SELECT count(*) FROM billing.events),
                  (SELECT count(*) FROM billing.credit_notes), (SELECT count(*) FROM billing.invoices),
                  (SELECT string_agg(format('%s/%s/%s/%s', a.prepaid_credit_micros, a.overdue_since,
                                            a.overdue_grace_days, a.billing_details), ',' ORDER BY a.account_id)
                     FROM billing.accounts a)) $$;
-- a document without what changes from run to run (ids, clock times)
CREATE FUNCTION pg_temp.doc(d jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT d - 'invoice_id' - 'account_id' - 'number' - 'invoice_number' - 'issued_at' - 'paid_at' - 'voided_at'
           || jsonb_build_object(
                'corrections', (SELECT COALESCE(jsonb_agg(c - 'entry_id' - 'created_at'), '[]')
                                  FROM jsonb_array_elements(d -> 'corrections') c),
                'credit_notes', (SELECT COALESCE(jsonb_agg(c - 'credit_note_id' - 'number' - 'credit_note_number'
                                                     - 'issued_at'), '[]')
                                   FROM jsonb_array_elements(d -> 'credit_notes') c),
                'payments', (SELECT COALESCE(jsonb_agg(c - 'entry_id' - 'paid_at'), '[]')
                               FROM jsonb_array_elements(d -> 'payments') c)) $$;
CREATE FUNCTION pg_temp.note(n jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT n - 'credit_note_id' - 'number' - 'credit_note_number' - 'invoice_id' - 'invoice_number'
             - 'account_id' - 'issued_at' $$;

-- 1. The catalog's display names, the seller, the buyer.
SELECT billing.set_model('col-img', 'image', 'acme', 'Acme', NULL, true, 'Acme Image XL');
SELECT billing.set_model('col-vid', 'video', 'acme', 'Acme');
SELECT billing.set_price('col-img', '[{"type":"output","metric":"image","unit_price_micros":1000}]',
                         NULL, now() - interval '1 day') > 0 AS priced;
SELECT billing.set_model('col-img', 'image', 'acme', 'Acme');     -- NULL keeps it
SELECT regress.try($$SELECT billing.set_model('col-img', 'image', 'acme', 'Acme', NULL, true, '  ')$$);
SELECT regress.try(format($$SELECT billing.set_model('col-img', 'image', 'acme', 'Acme', NULL, true, %L)$$,
                          repeat('x', 257)));
SELECT model, display_name FROM billing.models WHERE model LIKE 'col-%' ORDER BY 1;
SET billing.seller_details = '{"legal_name":"Pixel Forge Ltd","address":{"line1":"1 Quay St","city":"Dublin","country":"IE"},"tax_id":"IE1234567T","email":"billing@pixelforge.example"}';
SELECT regress.try($$SET billing.seller_details = '{"address":{"country":"IE"}}'$$);
SELECT regress.try($$SET billing.seller_details = 'not json'$$);
SELECT current_setting('billing.seller_details')::jsonb ->> 'legal_name' AS seller;
SELECT billing.create_account('col-ann', 'postpaid') AS ann \gset
SELECT billing.set_credit_limit(:ann, 100000000, 'onboarding');
SELECT billing.set_billing_details(:ann, '{"legal_name":"Ann Studio GmbH","address":{"line1":"Hauptstr. 5","line2":null,"city":"Berlin","postal_code":"10115","country":"DE"},"tax_id":"DE123456789","email":"ap@ann.example"}');
-- bad details change nothing
SELECT pg_temp.state() AS before \gset
SELECT d, pg_temp.try_all(format('SELECT billing.set_billing_details(%s, %L)', :ann, d)) AS refused
  FROM unnest(ARRAY['{"address":{"country":"DE"}}', '[1]', '{"legal_name":""}', '{"legal_name":1}',
                    '{"legal_name":"A","address":{"country":"de"}}', '{"legal_name":"A","address":"Berlin"}',
                    '{"legal_name":"A","email":"a@b@c"}', '{"legal_name":"A","email":"ab"}',
                    '{"legal_name":"A","vat":"x"}', '{"legal_name":"A","address":{"zip":"1"}}']) d;
SELECT pg_temp.try_all(format('SELECT billing.set_billing_details(%s, %L)', :ann,
                              jsonb_build_object('legal_name', repeat('x', 257))));
SELECT regress.try($$SELECT billing.set_billing_details(NULL, '{"legal_name":"A"}')$$);
SELECT regress.try($$SELECT billing.set_billing_details(999999999, '{"legal_name":"A"}')$$);
SELECT pg_temp.state() = :'before' AS nothing_changed;

-- 2. An invoice with its seller, buyer and descriptions.
SELECT pg_temp.usage_at(:ann, 'col-img', 12345678, '2025-01-10 12:00+00');
SELECT pg_temp.usage_at(:ann, 'col-vid', 3000001, '2025-01-20 12:00+00');
SELECT pg_temp.usage_at(:ann, 'col-img', 1000000, '2025-02-20 12:00+00');
SELECT billing.close_period('2025-01-01') >= 1 AS issued;
SELECT invoice_id AS ann_jan, invoice_number AS ann_jan_no FROM billing.invoices
 WHERE account_id = :ann AND period_start = '2025-01-01' \gset
SELECT jsonb_pretty(pg_temp.doc(billing.invoice_document(:ann_jan)));
SELECT pg_temp.pos(:ann);
SELECT * FROM billing.verify(:ann);

-- 3. Credit notes on an open invoice: the amount due falls.
SELECT pg_temp.state() AS before \gset
SELECT n, regexp_replace(regress.try(format('SELECT billing.issue_credit_note(%s)', a)), 'invoice \d+', 'invoice N') AS refused
  FROM unnest(ARRAY[
    format('NULL, 10000, %L', 'x'), format('%s, NULL, %L', :ann_jan, 'x'), format('%s, 0, %L', :ann_jan, 'x'),
    format('%s, -10000, %L', :ann_jan, 'x'), format('%s, 5000, %L', :ann_jan, 'x'),
    format('%s, 10000, NULL', :ann_jan), format('%s, 10000, %L', :ann_jan, ' '),
    format('%s, 10000, %L', :ann_jan, repeat('r', 1025)),
    format('%s, 10000, %L, %L', :ann_jan, 'x', 'cash'), format('%s, 10000, %L, NULL', :ann_jan, 'x'),
    format('%s, 10000, %L, %L', :ann_jan, 'x', 'refund'),
    format('%s, 10000, %L, %L, %L', :ann_jan, 'x', 'credit', ''),
    format('%s, 10000, %L, %L, %L', :ann_jan, 'x', 'credit', repeat('k', 257)),
    format('%s, 15360000, %L', :ann_jan, 'x'), format('999999999, 10000, %L', 'x')]) WITH ORDINALITY AS t(a, n);
SELECT pg_temp.state() = :'before' AS nothing_changed;
SELECT jsonb_pretty(pg_temp.note(billing.issue_credit_note(:ann_jan, 2000000, 'late delivery', 'credit', 'cn-1')));
SELECT pg_temp.state() AS before \gset
SELECT pg_temp.note(billing.issue_credit_note(:ann_jan, 2000000, 'late delivery', 'credit', 'cn-1')) ->> 'amount_due_micros' AS replayed;
SELECT regexp_replace(regress.try(format($$SELECT billing.issue_credit_note(%s, 1000000, 'late delivery', 'credit', 'cn-1')$$, :ann_jan)), '\d+\.', 'N.') AS key_reused;
SELECT pg_temp.state() = :'before' AS nothing_changed;
SELECT kind, amount_micros, invoice_id = :ann_jan AS of_invoice FROM billing.ledger
 WHERE account_id = :ann AND kind = 'credit_note';
SELECT pg_temp.pos(:ann);
SELECT number ~ '^\d+$' AS plain, status, total_micros, amount_due_micros FROM billing.list_invoices(:ann);

-- 4. Overdue: off by default; an account's grace of 0 days makes it overdue
-- the day after its due date.
SELECT billing.mark_overdue() AS changed, overdue_since FROM billing.accounts WHERE account_id = :ann;
SELECT regress.try(format('SELECT billing.set_overdue_policy(%s, 366)', :ann)),
       regress.try(format('SELECT billing.set_overdue_policy(%s, -2)', :ann)),
       regress.try('SELECT billing.set_overdue_policy(NULL, 3)'),
       regress.try('SELECT billing.set_overdue_policy(999999999, 3)');
-- a request admitted before the flag settles after it
SELECT billing.begin_request(:ann, 'col-img', '{}') ->> 'request_id' AS open_req \gset
SELECT billing.set_overdue_policy(:ann, 0);
SELECT billing.mark_overdue() AS changed;
SELECT billing.mark_overdue() AS again;
SELECT overdue_since, overdue_grace_days, billing.balance(:ann) ->> 'overdue_since' AS in_balance
  FROM billing.accounts WHERE account_id = :ann;
SELECT type, payload - 'invoice_id' - 'invoice_number' AS payload FROM billing.events
 WHERE account_id = :ann AND type = 'invoice_overdue';
-- new work is refused before any other 402: nothing is available either
SELECT billing.set_credit_limit(:ann, 0, 'frozen while overdue');
SELECT (billing.balance(:ann) ->> 'available_micros')::bigint < 0 AS nothing_available;
SELECT regexp_replace(pg_temp.try_all(format($$SELECT billing.charge(%s, 'col-img', '{"n":1}', '{"images":[{"width":1,"height":1}]}')$$, :ann)),
                      'Invoice \d+', 'Invoice N') AS refused;
SELECT regexp_replace(pg_temp.try_all(format($$SELECT billing.begin_request(%s, 'col-img', '{}')$$, :ann)),
                      'Invoice \d+', 'Invoice N') AS refused;
SELECT billing.complete_request(:open_req, '{"images":[{"width":1,"height":1}]}') ->> 'status' AS settled;
SELECT regress.try(format('SELECT billing.set_credit_limit(%s, 200000000, %L)', :ann, 'raise'));
-- paying clears it at once; the payment is what was due
SELECT billing.mark_invoice_paid(:ann_jan, 'wire-1');
SELECT overdue_since FROM billing.accounts WHERE account_id = :ann;
SELECT type, payload - 'overdue_since' - 'invoice_id' AS payload, payload ->> 'invoice_id' = :'ann_jan' AS names_it
  FROM billing.events WHERE account_id = :ann AND type = 'account_reinstated';
SELECT kind, amount_micros FROM billing.ledger WHERE account_id = :ann AND kind = 'invoice_payment';
SELECT billing.charge(:ann, 'col-img', '{}', '{"images":[{"width":1,"height":1}]}') ->> 'status' AS admitted;

-- 5. Notes on a paid invoice: credit is kept for the next invoices, refund
-- posts nothing; a paid invoice is not voided.
SELECT pg_temp.pos(:ann);
SELECT pg_temp.note(billing.issue_credit_note(:ann_jan, 1000000, 'goodwill')) ->> 'settlement' AS settlement;
SELECT pg_temp.note(billing.issue_credit_note(:ann_jan, 500000, 'paid back by wire', 'refund')) ->> 'settlement' AS settlement;
SELECT pg_temp.pos(:ann);
SELECT regexp_replace(pg_temp.try_all(format($$SELECT billing.void_invoice(%s, 'mistake')$$, :ann_jan)), '(invoice|account) \d+', '\1 N', 'g') AS refused;
SELECT regexp_replace(regress.try(format($$SELECT billing.issue_credit_note(%s, 20000000, 'too much')$$, :ann_jan)), '(invoice|account) \d+', '\1 N', 'g') AS refused;
SELECT jsonb_pretty(pg_temp.doc(billing.invoice_document(:ann_jan)) - 'lines' - 'seller' - 'buyer' - 'period');
SELECT * FROM billing.verify(:ann);

-- 6. Void and reissue: the month is unbilled again, the rounding, kept
-- credit and corrections go back; close_period issues it again.
SELECT billing.create_account('col-bob') AS bob \gset
SELECT billing.add_funds(:bob, 1000000) > 0 AS funded;
SELECT billing.set_billing_type(:bob, 'postpaid');
SELECT billing.set_credit_limit(:bob, 50000000, 'small');
SELECT pg_temp.usage_at(:bob, 'col-img', 5555555, '2025-01-05 00:00+00');
SELECT pg_temp.adjustment_at(:bob, 123456, '2025-01-25 00:00+00');
SELECT billing.close_period('2025-01-01') AS issued;
SELECT invoice_id AS bob_jan, invoice_number AS bob_jan_no FROM billing.invoices
 WHERE account_id = :bob AND period_start = '2025-01-01' \gset
SELECT subtotal_micros, corrections_micros, credit_micros, total_micros, status FROM billing.invoices
 WHERE invoice_id = :bob_jan;
SELECT pg_temp.pos(:bob);
SELECT pg_temp.note(billing.issue_credit_note(:bob_jan, 330000, 'partial outage')) ->> 'amount_due_micros' AS due;
SELECT billing.set_overdue_policy(:bob, 5);
SELECT billing.mark_overdue() AS changed;
SELECT overdue_since IS NOT NULL AS overdue FROM billing.accounts WHERE account_id = :bob;
SELECT pg_temp.state() AS before \gset
SELECT n, regexp_replace(regress.try(format('SELECT billing.void_invoice(%s)', a)), 'invoice \d+', 'invoice N') AS refused
  FROM unnest(ARRAY[format('NULL, %L', 'x'), format('%s, NULL', :bob_jan), format('%s, %L', :bob_jan, ''),
                    format('%s, %L', :bob_jan, repeat('r', 1025)), format('%s, %L, %L', :bob_jan, 'x', ''),
                    format('999999999, %L', 'x')]) WITH ORDINALITY AS t(a, n);
SELECT pg_temp.state() = :'before' AS nothing_changed;
SELECT jsonb_pretty(pg_temp.doc(billing.void_invoice(:bob_jan, 'wrong customer address', 'void-1')) - 'lines' - 'seller' - 'buyer' - 'period');
SELECT pg_temp.pos(:bob);
SELECT kind, amount_micros, reference = format('void of invoice %s', :bob_jan_no) AS void_ref
  FROM billing.ledger WHERE account_id = :bob AND kind = 'adjustment' AND invoice_id = :bob_jan ORDER BY entry_id;
SELECT count(*) AS still_credited FROM billing.adjustments WHERE account_id = :bob AND invoice_id IS NOT NULL;
SELECT overdue_since FROM billing.accounts WHERE account_id = :bob;
SELECT type, payload ->> 'status' AS status, payload ->> 'void_reason' AS reason FROM billing.events
 WHERE account_id = :bob AND type IN ('invoice_voided', 'account_reinstated') ORDER BY event_id;
-- again: its document, nothing written; the key with other arguments: PB409
SELECT pg_temp.state() AS before \gset
SELECT billing.void_invoice(:bob_jan, 'another reason') ->> 'status' AS again,
       billing.void_invoice(:bob_jan, 'wrong customer address', 'void-1') ->> 'void_reason' AS replayed;
SELECT regexp_replace(regress.try(format($$SELECT billing.void_invoice(%s, 'other', 'void-1')$$, :bob_jan)), '(invoice|account) \d+', '\1 N', 'g') AS key_reused;
SELECT regexp_replace(regress.try(format($$SELECT billing.issue_credit_note(%s, 10000, 'x')$$, :bob_jan)), '(invoice|account) \d+', '\1 N', 'g') AS refused;
SELECT pg_temp.state() = :'before' AS nothing_changed;
SELECT * FROM billing.verify(:bob);
-- the reissue: next number, the same lines, the corrections and credit again
SELECT billing.set_billing_details(:bob, '{"legal_name":"Bob Films LLC","address":{"country":"US"}}');
SELECT billing.close_period('2025-01-01') AS reissued;
SELECT invoice_number - :bob_jan_no > 0 AS later_number, status, subtotal_micros, corrections_micros,
       credit_micros, total_micros, buyer ->> 'legal_name' AS buyer
  FROM billing.invoices WHERE account_id = :bob ORDER BY invoice_id;
SELECT billing.close_period('2025-01-01') AS again;
SELECT pg_temp.pos(:bob);
SELECT status, total_micros, amount_due_micros FROM billing.list_invoices(:bob);
SELECT * FROM billing.verify();

-- 7. A note that leaves nothing due pays the invoice at once.
SELECT invoice_id AS bob_re, total_micros AS bob_re_total FROM billing.invoices
 WHERE account_id = :bob AND status = 'open' \gset
SELECT pg_temp.note(billing.issue_credit_note(:bob_re, :bob_re_total, 'waived')) ->> 'amount_due_micros' AS due;
SELECT status, paid_at IS NOT NULL AS paid FROM billing.invoices WHERE invoice_id = :bob_re;
SELECT count(*) AS payments FROM billing.ledger WHERE invoice_id = :bob_re AND kind = 'invoice_payment';
SELECT type FROM billing.events WHERE account_id = :bob AND payload ->> 'invoice_id' = :'bob_re' ORDER BY event_id;
SELECT regexp_replace(regress.try(format($$SELECT billing.issue_credit_note(%s, 10000, 'more')$$, :bob_re)), '(invoice|account) \d+', '\1 N', 'g') AS nothing_left;
SELECT * FROM billing.verify();

-- 8. mark_overdue() clears a flag that no invoice holds up any more.
SELECT billing.create_account('col-cy', 'postpaid') AS cy \gset
SELECT billing.set_credit_limit(:cy, 50000000, 'small');
SELECT pg_temp.usage_at(:cy, 'col-img', 2000000, '2025-03-05 00:00+00');
SELECT billing.close_period('2025-03-01') >= 1 AS issued;
SET billing.overdue_grace_days = 10;
SELECT billing.mark_overdue() >= 1 AS changed;
SELECT overdue_since FROM billing.accounts WHERE account_id = :cy;
SELECT billing.set_overdue_policy(:cy, -1);
SELECT billing.mark_overdue() >= 1 AS changed;
SELECT overdue_since FROM billing.accounts WHERE account_id = :cy;
SELECT payload FROM billing.events WHERE account_id = :cy AND type = 'account_reinstated';
-- off again: the accounts of other tests that it flagged are cleared
RESET billing.overdue_grace_days;
SELECT billing.mark_overdue() >= 0 AS cleared;
SELECT count(*) AS flagged FROM billing.accounts WHERE overdue_since IS NOT NULL;

-- 9. Numbers with prefixes; list_invoices and invoice_document refusals.
SET billing.invoice_number_prefix = 'INV-';
SET billing.credit_note_number_prefix = 'CN-';
SELECT number ~ '^INV-\d+$' AS prefixed, status FROM billing.list_invoices(:bob);
SELECT billing.invoice_document(:bob_re) ->> 'number' ~ '^INV-\d+$' AS prefixed,
       billing.invoice_document(:bob_re) -> 'credit_notes' -> 0 ->> 'number' ~ '^CN-\d+$' AS note_prefixed;
SELECT regress.try($$SET billing.invoice_number_prefix = 'a-very-long-prefix-that-goes-past-32'$$);
RESET billing.invoice_number_prefix;
RESET billing.credit_note_number_prefix;
SELECT regress.try('SELECT * FROM billing.list_invoices(NULL)'),
       regress.try('SELECT * FROM billing.list_invoices(999999999)'),
       regress.try('SELECT billing.invoice_document(NULL)'),
       regress.try('SELECT billing.invoice_document(999999999)');

-- 10. Read-only (a hot standby): the readers answer, the writers refuse
-- with 25006 and the session goes on.
BEGIN READ ONLY;
SELECT count(*) > 0 AS listed FROM billing.list_invoices(:bob);
SELECT billing.invoice_document(:bob_jan) ->> 'status' AS document;
SELECT regress.try(format($$SELECT billing.void_invoice(%s, 'x')$$, :ann_jan)),
       regress.try(format($$SELECT billing.issue_credit_note(%s, 10000, 'x')$$, :ann_jan)),
       regress.try('SELECT billing.mark_overdue()'),
       regress.try(format('SELECT billing.set_overdue_policy(%s, 1)', :ann)),
       regress.try(format($$SELECT billing.set_billing_details(%s, NULL)$$, :ann));
ROLLBACK;
-- a failed call inside a block aborts it until the rollback
\set VERBOSITY terse
BEGIN;
SELECT billing.void_invoice(NULL, 'no invoice');
SELECT 1 AS aborted;
ROLLBACK;
\set VERBOSITY default
SELECT 1 AS goes_on;

-- 11. Disabled accounts: their invoices are still listed and rendered;
-- their details and policy are not set.
UPDATE billing.accounts SET active = false WHERE account_id = :cy;
SELECT count(*) AS listed FROM billing.list_invoices(:cy);
SELECT invoice_id AS cy_inv FROM billing.invoices WHERE account_id = :cy \gset
SELECT billing.issue_credit_note(:cy_inv, 10000, 'credited while disabled') ->> 'amount_due_micros' AS due;
SELECT billing.invoice_document(:cy_inv) ->> 'amount_due_micros' AS rendered;
SELECT regexp_replace(regress.try(format('SELECT billing.set_overdue_policy(%s, 1)', :cy)), 'account \d+', 'account N'),
       regexp_replace(regress.try(format('SELECT billing.set_billing_details(%s, NULL)', :cy)), 'account \d+', 'account N');
UPDATE billing.accounts SET active = true WHERE account_id = :cy;
SELECT billing.set_billing_details(:ann, NULL);
SELECT billing_details FROM billing.accounts WHERE account_id = :ann;

-- 12. verify() sees damage to every new invariant.
-- runs sql, returns what verify() finds, and undoes it
-- (of one account, but for the numbers, which verify() checks across all)
CREATE FUNCTION pg_temp.damaged(sql text, acct bigint DEFAULT NULL) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    found text[] := '{}';
BEGIN
    BEGIN
        EXECUTE sql;
        found := ARRAY(SELECT regexp_replace(v.problem, '\d+', 'N', 'g') FROM billing.verify(acct) v ORDER BY 1);
        RAISE EXCEPTION 'undo';
    EXCEPTION WHEN raise_exception THEN
        NULL;
    END;
    RETURN QUERY SELECT unnest(found);
END $$;
SELECT pg_temp.damaged(format('UPDATE billing.credit_notes SET amount_micros = amount_micros + 1 WHERE invoice_id = %s AND settlement = %L', :ann_jan, 'refund'), :ann);
SELECT pg_temp.damaged(format('UPDATE billing.credit_notes SET credit_note_number = credit_note_number + 100 WHERE invoice_id = %s', :bob_re));
SELECT pg_temp.damaged(format('UPDATE billing.credit_notes SET entry_id = NULL WHERE invoice_id = %s', :bob_re), :bob);
SELECT pg_temp.damaged(format('UPDATE billing.credit_notes SET amount_micros = 99990000 WHERE invoice_id = %s', :bob_re), :bob);
SELECT pg_temp.damaged(format('UPDATE billing.invoices SET voided_at = NULL WHERE invoice_id = %s', :bob_jan), :bob);
SELECT pg_temp.damaged(format('UPDATE billing.adjustments SET invoice_id = %s WHERE account_id = %s', :bob_jan, :bob), :bob);
SELECT pg_temp.damaged(format('UPDATE billing.accounts SET overdue_since = %L WHERE account_id = %s', '2025-06-01 00:00+00', :bob), :bob);
SELECT pg_temp.damaged(format('INSERT INTO billing.ledger (account_id, kind, amount_micros, invoice_id) VALUES (%s, %L, 1, %s)',
                              :bob, 'adjustment', :bob_jan), :bob);
SELECT pg_temp.damaged(format('DROP INDEX billing.invoices_one_per_month; UPDATE billing.invoices SET status = %L WHERE invoice_id = %s', 'paid', :bob_jan), :bob);
SELECT pg_temp.damaged(format('UPDATE billing.invoices SET status = %L, paid_at = NULL WHERE invoice_id = %s', 'open', :ann_jan), :ann);
SELECT * FROM billing.verify();
