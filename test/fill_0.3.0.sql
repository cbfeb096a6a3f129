-- The rows that release 0.3.0 added, through its API, for test/dump.sh (run
-- after test/fill.sql in the same session, whose pg_temp.redate_usage it
-- uses; test/fill.sql writes through 0.2.0's API alone, for
-- test/upgrade.sh). Accounts by external id:
--   fill3-book: prepaid on the price book 'fill3-gold', charged on a route
--               at the book's price and on a route at a discount of the
--               list price, which has a provider cost; auto top-up to a
--               target with a monthly cap, the top-up confirmed and partly
--               charged back, funds charged back, a grant voided
--   fill3-post: postpaid with billing details, an overdue policy and a
--               minimum commitment; April 2025 closed (its usage re-dated
--               there), its invoice voided and issued again, a credit note
--               on the reissue, and the account flagged overdue
-- Ends with verify() clean; test/dump.sh checks that every kind of row is there.
SET client_min_messages = warning;
SELECT billing.set_model('fill3-img', 'image', 'acme', 'Acme Imaging', NULL, true, 'Acme Image XL');
SELECT billing.set_model('fill3-img', 'image', 'blue', 'Blue Imaging', 'blue-img', false);
SELECT billing.set_price('fill3-img', '[{"type":"output","metric":"image","unit_price_micros":50000}]',
                         NULL, now() - interval '1 day');
SELECT billing.create_price_book('fill3-gold', 'Gold customers');
SELECT billing.set_price('fill3-img', '[{"type":"output","metric":"image","unit_price_micros":45000}]',
                         'blue', now() - interval '1 day', 'fill3-gold');
SELECT billing.set_discount('fill3-gold', 900000, 'fill3-img', 'acme', now() - interval '1 hour');
SELECT billing.set_provider_cost('fill3-img', 'acme', '[{"type":"output","metric":"image","unit_price_micros":20000}]',
                                 now() - interval '1 day');

SELECT billing.create_account('fill3-book') AS book \gset
SELECT billing.assign_price_book(:book, 'fill3-gold');
SELECT billing.add_funds(:book, 10000000, 'fill3-pay-1', 'card') AS funds \gset
SELECT billing.configure_auto_topup(:book, 9950000, 1000000, true, 12000000, 50000000);
-- 2 x 0.05 x 90%, then 0.045: below the threshold, a top-up to the target
-- is requested
SELECT billing.charge(:book, 'fill3-img', '{"n":2}', '{"images":[{},{}]}', '{}', 'fill3-c-1');
SELECT billing.charge(:book, 'fill3-img', '{"n":1}', '{"images":[{}]}', '{"provider":"blue"}', 'fill3-c-2');
SELECT billing.complete_topup(topup_id, true, 'fill3-psp-1') FROM billing.topups WHERE account_id = :book;
SELECT billing.reverse_topup(topup_id, 100000, 'chargeback', false, 'fill3-cb-1')
  FROM billing.topups WHERE account_id = :book;
SELECT billing.reverse_funds(:funds, 500000, 'chargeback', 'fill3-cb-2');
SELECT billing.grant_credits(:book, 300000, now() + interval '30 days', 'promotional', 'fill3-grant-1') AS grant_id \gset
SELECT billing.void_grant(:grant_id, NULL, 'granted by mistake', 'fill3-void-grant-1');

SELECT billing.create_account('fill3-post', 'postpaid') AS post \gset
SELECT billing.set_credit_limit(:post, 100000000, 'enterprise');
SELECT billing.set_billing_details(:post, '{"legal_name":"Fill Three GmbH","address":{"country":"DE"},"tax_id":"DE999999999"}');
SELECT billing.set_overdue_policy(:post, 10);
SELECT billing.set_minimum_commitment(:post, 5000000, '2025-04-01', '2025-05-01');
SELECT billing.charge(:post, 'fill3-img', '{"n":3}', '{"images":[{},{},{}]}');
SELECT pg_temp.redate_usage(:post, '2025-04-10 12:00+00');
SELECT billing.close_period('2025-04-01');
SELECT billing.void_invoice(invoice_id, 'wrong address', 'fill3-void-1') ->> 'status'
  FROM billing.invoices WHERE account_id = :post;
SELECT billing.close_period('2025-04-01');
SELECT billing.issue_credit_note(invoice_id, 10000, 'late delivery', 'credit', 'fill3-cn-1') ->> 'amount_due_micros'
  FROM billing.invoices WHERE account_id = :post AND status = 'open';
SELECT billing.mark_overdue();
SELECT billing.rollup_usage();
DO $$
BEGIN
    IF EXISTS (SELECT FROM billing.verify()) THEN
        RAISE EXCEPTION 'verify() finds problems in the filled database';
    END IF;
END $$;
