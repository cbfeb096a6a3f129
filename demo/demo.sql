-- A day of billing for an AI media API, on a throwaway cluster.
\pset pager off
\set VERBOSITY default
\echo '== install and price two models'
CREATE EXTENSION billing;
SELECT billing.set_model('flux-pro', 'image', 'acme', 'Acme Imaging', 'flux-pro-1.1');
SELECT billing.set_price('flux-pro', '[{"type":"output","metric":"megapixel","unit_price_micros":60000}]') AS price_id;
SELECT billing.set_model('veo-3', 'video', 'vendo', 'Vendo Video', 'veo-3.0');
SELECT billing.set_price('veo-3', '[
  {"type":"output","metric":"second","unit_price_micros":30000,"conditions":{"resolution":"720p","audio":false}},
  {"type":"output","metric":"second","unit_price_micros":50000,"conditions":{"resolution":"1080p"}}]') AS price_id;
SELECT model, media, provider, components FROM billing.catalog ORDER BY model;
\echo '== what acme bills us upstream for flux-pro (admin; never shown to customers)'
SELECT billing.set_provider_cost('flux-pro', 'acme',
       '[{"type":"output","metric":"megapixel","unit_price_micros":35000}]') AS cost_id;

\echo '== a prepaid customer with 1.00 USD'
SELECT billing.create_account('cus_demo') AS acct \gset
SELECT billing.add_funds(:acct, 1000000, 'stripe:pi_1', 'card payment') AS entry;
SELECT jsonb_pretty(billing.balance(:acct)) AS balance;

\echo '== dry run: what would two 1024x1536 images cost? (writes nothing)'
SELECT jsonb_pretty(billing.estimate('flux-pro', '{"n":2,"size":"1024x1536"}')) AS estimate;

\echo '== a synchronous image request, charged at once'
SELECT jsonb_pretty(billing.charge(:acct, 'flux-pro', '{"n":2,"size":"1024x1536"}',
       '{"images":[{"width":1024,"height":1536},{"width":1024,"height":1536}]}',
       '{"upstream_id":"img_7f3a"}', 'req-001')) AS metadata;

\echo '== an async video job: begin holds the estimate, metadata shows cost_estimate'
SELECT billing.begin_request(:acct, 'veo-3', '{"duration_seconds":8,"resolution":"1080p"}', 'job-42') AS job \gset
SELECT jsonb_pretty(:'job'::jsonb) AS begun;
SELECT (:'job'::jsonb ->> 'request_id')::bigint AS job_id \gset
SELECT billing.balance(:acct) ->> 'held_micros' AS held, billing.balance(:acct) -> 'available' AS available;

\echo '== the job finishes (7.6 s bills as 8 s): the metadata flips to cost'
SELECT jsonb_pretty(billing.complete_request(:job_id, '{"duration_seconds":7.6,"resolution":"1080p"}',
                                             '{"upstream_id":"vid_99"}')) AS metadata;

\echo '== the next video needs more than is left: HTTP 402'
SELECT billing.begin_request(:acct, 'veo-3', '{"duration_seconds":8,"resolution":"1080p"}');

\echo '== a promotional grant of 0.50 USD, valid 30 days: it is used up first'
SELECT billing.grant_credits(:acct, 500000, now() + interval '30 days', 'promotional',
                             'welcome-credit', 'new customer offer') AS grant_id;
SELECT jsonb_pretty(billing.balance(:acct) -> 'credits') AS credits;
SELECT billing.charge(:acct, 'flux-pro', '{"n":1,"size":"1024x1024"}',
       '{"images":[{"width":1024,"height":1024}]}', '{}', 'req-002') -> 'cost' AS cost;
SELECT jsonb_pretty(billing.balance(:acct) -> 'credits') AS credits_after_the_charge;

\echo '== the first image came back broken (its key replays the charge: same request, nothing moves); refund half, then the rest'
SELECT (billing.charge(:acct, 'flux-pro', '{"n":2,"size":"1024x1536"}',
        '{"images":[{"width":1024,"height":1536},{"width":1024,"height":1536}]}',
        '{"upstream_id":"img_7f3a"}', 'req-001') ->> 'request_id')::bigint AS img_id \gset
SELECT jsonb_pretty(billing.refund_request(:img_id, 120000, 'one image was blank', 'refund-1')) AS refund;
SELECT jsonb_pretty(billing.refund_request(:img_id, NULL, 'both images were blank', 'refund-2')) AS refund;
SELECT billing.refund_request(:img_id, NULL, 'a third time');
SELECT jsonb_pretty(billing.response_metadata(:img_id)) AS metadata;

\echo '== the margin of the day (admin): revenue, refunds, what the providers cost, and requests with no known cost'
SELECT model, provider, requests, revenue_micros, refunded_micros, provider_cost_micros, margin_micros,
       uncosted_requests
  FROM billing.margin(:acct, now() - interval '1 day', now() + interval '1 day', '{model,provider}');

\echo '== auto top-up to a target: below 1.50 USD reload to 3.00 (at least 1.00), at most 5.00 a month: 3.00 - 1.04 = 1.96 at once'
SELECT billing.balance(:acct) -> 'available' AS available;
SELECT billing.configure_auto_topup(:acct, 1500000, 1000000, true, 3000000, 5000000);
SELECT topup_id, amount_micros, status, cap_micros FROM billing.topups WHERE account_id = :acct;
SELECT topup_id AS topup FROM billing.topups WHERE account_id = :acct \gset
SELECT billing.complete_topup(:topup, true, 'stripe:pi_2') ->> 'status' AS paid;
SELECT b -> 'available' AS available, b -> 'auto_topup_month_micros' AS month, b -> 'auto_topup_month_cap_micros' AS cap
  FROM billing.balance(:acct) b;

\echo '== a chargeback: the card holder disputes that top-up; the money is taken back (it would be even below zero) and auto top-up turns off'
SELECT jsonb_pretty(billing.reverse_topup(:topup, NULL, 'chargeback', true, 'dispute-1')) AS reversal;
SELECT type, payload FROM billing.events WHERE account_id = :acct AND type IN ('auto_topup_disabled', 'topup_reversed') ORDER BY event_id;

\echo '== a postpaid customer whose January invoice is unpaid past its due date'
SELECT billing.create_account('cus_late', 'postpaid') AS late \gset
SELECT billing.set_credit_limit(:late, 50000000, 'net 30');
SELECT billing.set_billing_details(:late, '{"legal_name":"Late Studio Ltd","address":{"city":"Leeds","country":"GB"}}');
SELECT billing.set_model('flux-pro', 'image', 'acme', 'Acme Imaging', 'flux-pro-1.1', true, 'FLUX Pro images');
-- January 2025's usage of 12.50 USD, dated as its settlements were (a demo
-- cannot wait for a month to end: the superuser writes what they wrote)
WITH r AS (INSERT INTO billing.requests (account_id, model, provider, status, params, outputs,
                                         cost_estimate_micros, cost_micros, currency, postpaid,
                                         created_at, completed_at)
           VALUES (:late, 'flux-pro', 'acme', 'completed', '{}', '{}', 12500000, 12500000, 'USD', true,
                   '2025-01-20', '2025-01-20') RETURNING account_id, request_id)
INSERT INTO billing.ledger (account_id, kind, amount_micros, postpaid, request_id, created_at)
SELECT account_id, 'usage', -12500000, true, request_id, '2025-01-20' FROM r;
SELECT billing._adjust_available(:late, -12500000);
-- the seller on invoices, and the prefixes of document numbers (settings)
SET billing.seller_details = '{"legal_name":"Pixel API Inc.","address":{"city":"Austin","region":"TX","country":"US"},"email":"billing@pixelapi.example"}';
SET billing.invoice_number_prefix = 'INV-';
SET billing.credit_note_number_prefix = 'CN-';
SELECT billing.close_period('2025-01-01') AS invoices_issued;
SELECT number, status, due_date, total_micros, amount_due_micros FROM billing.list_invoices(:late);
\echo '== three days of grace after the due date, then mark_overdue() (hourly from pg_cron) flags it'
SELECT billing.set_overdue_policy(:late, 3);
SELECT billing.mark_overdue() AS flagged;
SELECT billing.balance(:late) ->> 'overdue_since' AS overdue_since;
\echo '== new work of an overdue account is refused before anything else: HTTP 402 payment_overdue'
SELECT billing.charge(:late, 'flux-pro', '{"n":1,"size":"1024x1024"}', '{"images":[{"width":1024,"height":1024}]}');
\echo '== a credit note for a blurry batch lowers what is due; the payment reinstates the account at once'
SELECT invoice_id AS late_inv FROM billing.invoices WHERE account_id = :late \gset
SELECT jsonb_pretty(billing.issue_credit_note(:late_inv, 2500000, 'a batch of blurry images')) AS credit_note;
SELECT billing.mark_invoice_paid(:late_inv, 'wire-2025-03-20');
SELECT billing.balance(:late) ->> 'overdue_since' AS overdue_since;
SELECT billing.charge(:late, 'flux-pro', '{"n":1,"size":"1024x1024"}', '{"images":[{"width":1024,"height":1024}]}') -> 'cost' AS cost;
SELECT jsonb_pretty(billing.invoice_document(:late_inv) - 'period' - 'corrections') AS invoice;
SELECT type, payload ->> 'invoice_id' AS invoice_id FROM billing.events WHERE account_id = :late ORDER BY event_id;

\echo '== the ledger, and verify() (no rows: every invariant holds)'
SELECT entry_id, kind, amount_micros, request_id, grant_id, reference, created_by FROM billing.ledger ORDER BY entry_id;
SELECT jsonb_pretty(billing.balance(:acct)) AS balance;
SELECT * FROM billing.verify();

\echo '== a second customer signs a contract: 20 % off everything, and its own flux-pro price'
SELECT billing.create_price_book('studio-2026', 'Studio contract, 2026');
SELECT billing.set_discount('studio-2026', 800000) AS discount_id;
SELECT billing.set_price('flux-pro', '[{"type":"output","metric":"megapixel","unit_price_micros":45000}]',
                         'acme', now(), 'studio-2026') AS price_id;
SELECT billing.create_account('cus_studio') AS studio \gset
SELECT billing.add_funds(:studio, 5000000, 'stripe:pi_2', 'card payment') AS entry;
SELECT billing.assign_price_book(:studio, 'studio-2026');
SELECT model, provider, price_book, discount_id, multiplier_ppm, components FROM billing.account_catalog(:studio);
\echo '== its video at 80 % of the list (the list: 8 s x 0.05 = 0.40), its images at the book price'
SELECT jsonb_pretty(billing.estimate('veo-3', '{"duration_seconds":8,"resolution":"1080p"}', :studio)) AS estimate;
SELECT billing.charge(:studio, 'flux-pro', '{"n":1,"size":"1024x1024"}',
       '{"images":[{"width":1024,"height":1024}]}') -> 'cost' AS contract_cost,
       billing.estimate('flux-pro', '{"n":1,"size":"1024x1024"}') -> 'total_cost_micros' AS list_micros;
SELECT request_id, model, price_book, price_id, discount_id, cost_micros FROM billing.requests
 WHERE account_id = :studio;
SELECT * FROM billing.verify();
