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
