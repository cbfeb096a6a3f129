-- A database with a day of billing in it, through the API, for the tests
-- that move one whole: dump and restore (test/dump.sh), the upgrade from
-- an earlier release (test/upgrade.sh), a standby and its promotion
-- (test/t/004_standby.pl). What needs the API of 0.2.0 is left out of a
-- database at 0.1.0 (:api_020). Accounts by external id:
--   fill-pre:  prepaid; funds, keyed charges, an auto top-up confirmed,
--              settled and open requests ('fill-queued', 'fill-running');
--              since 0.2.0 a grant, a spend limit, balance alerts (one
--              fired), a refund and an adjustment
--   fill-post: postpaid with a credit limit, an invoice for March 2025
--              (its usage re-dated there past the triggers, so nothing
--              depends on today's date), an open request ('fill-post-open')
-- Ends with verify() clean; since 0.2.0 the rollup run and events written.
SET client_min_messages = warning;
SELECT extversion <> '0.1.0' AS api_020 FROM pg_catalog.pg_extension WHERE extname = 'billing' \gset
SELECT billing.set_model('fill-img', 'image', 'acme', 'Acme Imaging', 'acme-img-v2');
SELECT billing.set_model('fill-img', 'image', 'blue', 'Blue Imaging', 'blue-img', false);
SELECT billing.set_price('fill-img', '[{"type":"output","metric":"image","unit_price_micros":40000}]',
                         NULL, now() - interval '1 day');
SELECT billing.set_price('fill-img', '[{"type":"output","metric":"image","unit_price_micros":30000}]',
                         'blue', now() - interval '1 day');
SELECT billing.set_model('fill-vid', 'video', 'vendo', 'Vendo Video');
SELECT billing.set_price('fill-vid', '[{"type":"output","metric":"second","unit_price_micros":50000}]',
                         NULL, now() - interval '1 day');

SELECT billing.create_account('fill-pre') AS pre \gset
SELECT billing.add_funds(:pre, 3000000, 'fill-pay-1', 'card');
SELECT billing.configure_auto_topup(:pre, 3150000, 5000000);
\if :api_020
SELECT billing.set_balance_alerts(:pre, '{2950000, 100000}');
SELECT billing.set_spend_limit(:pre, 20000000, 'month');
SELECT billing.set_spend_limit(:pre, 5000000, 'day', 'key-1');
SELECT billing.grant_credits(:pre, 200000, now() + interval '30 days', 'promotional', 'fill-grant-1', 'welcome');
\endif
SELECT billing.charge(:pre, 'fill-img', '{"n":2}', '{"images":[{},{}]}', '{}', 'fill-c-1');
\if :api_020
SELECT billing.charge(:pre, 'fill-img', '{"n":1}', '{"images":[{}]}', '{"provider":"blue"}', 'fill-c-2', 'key-1');
SELECT billing.refund_request(r.request_id, 10000, 'blurry', 'fill-refund-1')
  FROM billing.requests r WHERE r.idempotency_key = 'fill-c-1';
SELECT billing.adjust_balance(:pre, -5000, 'correction', 'fill-adjust-1');
\else
SELECT billing.charge(:pre, 'fill-img', '{"n":1}', '{"images":[{}]}', '{"provider":"blue"}', 'fill-c-2');
\endif
SELECT billing.begin_request(:pre, 'fill-vid', '{"duration_seconds":4}') ->> 'request_id' AS r \gset
SELECT billing.complete_request(:r, '{"duration_seconds":3.5}', '{"upstream_id":"u-1"}');
SELECT billing.begin_request(:pre, 'fill-vid', '{"duration_seconds":4}') ->> 'request_id' AS r \gset
SELECT billing.fail_request(:r, 'upstream timeout', 10000);
SELECT billing.begin_request(:pre, 'fill-vid', '{"duration_seconds":2}') ->> 'request_id' AS r \gset
SELECT billing.cancel_request(:r);
SELECT billing.begin_request(:pre, 'fill-vid', '{"duration_seconds":6}', 'fill-queued');
SELECT billing.begin_request(:pre, 'fill-vid', '{"duration_seconds":8}', 'fill-running') ->> 'request_id' AS r \gset
UPDATE billing.requests SET status = 'in_progress', routing = '{"upstream_id":"u-2"}' WHERE request_id = :r;
-- below the threshold: a top-up was requested; the provider confirms it
SELECT billing.complete_topup(topup_id, true, 'psp-1') FROM billing.topups WHERE account_id = :pre;

SELECT billing.create_account('fill-post') AS post \gset
SELECT billing.add_funds(:post, 100000);
SELECT billing.set_billing_type(:post, 'postpaid');
SELECT billing.set_credit_limit(:post, 10000000, 'onboarding');
SELECT billing.charge(:post, 'fill-img', '{"n":3}', '{"images":[{},{},{}]}');
SELECT billing.begin_request(:post, 'fill-vid', '{"duration_seconds":3}') ->> 'request_id' AS r \gset
SELECT billing.complete_request(:r, '{"duration_seconds":2.2}');
-- Test only: an account's requests and usage entries re-dated to "at", past
-- the triggers, so that a month long past can be closed (test/fill_0.3.0.sql
-- uses it too, in the same session)
CREATE FUNCTION pg_temp.redate_usage(acct bigint, at timestamptz) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_catalog.set_config('session_replication_role', 'replica', true);
    UPDATE billing.ledger SET created_at = at WHERE account_id = acct AND kind = 'usage';
    UPDATE billing.requests SET created_at = at - interval '1 minute', completed_at = at WHERE account_id = acct;
    PERFORM pg_catalog.set_config('session_replication_role', 'origin', true);
END $$;
SELECT pg_temp.redate_usage(:post, '2025-03-14 12:00+00');
SELECT billing.close_period('2025-03-01');
SELECT billing.charge(:post, 'fill-img', '{"n":1}', '{"images":[{}]}');
SELECT billing.begin_request(:post, 'fill-img', '{"n":2}', 'fill-post-open');
\if :api_020
SELECT billing.rollup_usage();
DO $$
BEGIN
    IF (SELECT count(*) FROM billing.refunds) <> 1
       OR (SELECT count(*) FROM billing.grants) <> 1
       OR (SELECT count(*) FROM billing.events) < 4 THEN
        RAISE EXCEPTION 'the filled database is not as planned';
    END IF;
END $$;
\endif
DO $$
BEGIN
    IF (SELECT count(*) FROM billing.topups WHERE status = 'succeeded') <> 1
       OR (SELECT count(*) FROM billing.invoices) <> 1
       OR (SELECT count(*) FROM billing.requests WHERE status IN ('queued', 'in_progress')) <> 3
       OR EXISTS (SELECT FROM billing.verify()) THEN
        RAISE EXCEPTION 'the filled database is not as planned';
    END IF;
END $$;
