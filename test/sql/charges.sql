-- One-shot charges (the synchronous image path), idempotency, the 402.
SET client_min_messages = warning;

SELECT billing.set_model('ch-img', 'image', 'acme', 'Acme Imaging', 'acme-img-v2');
SELECT billing.set_price('ch-img', '[{"type":"output","metric":"image","unit_price_micros":40000}]') > 0 AS priced;
-- a second provider, cheaper, not the default
SELECT billing.set_model('ch-img', 'image', 'blue', 'Blue Cloud', 'blue-img-1', false);
SELECT billing.set_price('ch-img', '[{"type":"output","metric":"image","unit_price_micros":30000}]', 'blue') > 0 AS priced;

SELECT billing.create_account('ch-carol') AS carol \gset
SELECT billing.add_funds(:carol, 100000) > 0 AS funded;

-- two images at 0.04: 0.08, charged from 0.10
SELECT billing.charge(:carol, 'ch-img', '{"n":2,"size":"1024x1024"}',
                      '{"images":[{"width":1024,"height":1024},{"width":1024,"height":1024}]}',
                      '{"upstream_id":"img_abc"}') - 'request_id' AS metadata;
SELECT billing.balance(:carol) -> 'available' AS available;

-- the 402: 0.04 needed, 0.02 available; nothing is written
SELECT count(*) AS requests_before FROM billing.requests WHERE account_id = :carol;
SELECT billing.charge(:carol, 'ch-img', '{"n":1}', '{"images":[{"width":1024,"height":1024}]}');
SELECT count(*) AS requests_after FROM billing.requests WHERE account_id = :carol;
SELECT billing.balance(:carol) ->> 'available_micros' AS unchanged;

-- the provider that executed prices it: 0.03 at blue
SELECT billing.add_funds(:carol, 1000000) > 0 AS funded;
SELECT billing.charge(:carol, 'ch-img', '{"n":1}', '{"images":[{"width":1024,"height":1024}]}',
                      '{"provider":"blue","upstream_id":"b-1"}') - 'request_id' AS routed;

-- idempotency: the same key charges once and returns the same metadata
SELECT billing.charge(:carol, 'ch-img', '{"n":1}', '{"images":[{"width":512,"height":512}]}',
                      '{}', 'order-1') AS first \gset
SELECT billing.charge(:carol, 'ch-img', '{"n":1}', '{"images":[{"width":512,"height":512}]}',
                      '{}', 'order-1') = :'first'::jsonb AS same_result;
SELECT count(*) AS one_request FROM billing.requests WHERE account_id = :carol AND idempotency_key = 'order-1';
SELECT regress.try(format($$SELECT billing.charge(%s, 'ch-img', '{"n":2}',
    '{"images":[{"width":512,"height":512},{"width":512,"height":512}]}', '{}', 'order-1')$$, :carol));

-- refusals; none writes anything
SELECT count(*) AS entries_before FROM billing.ledger WHERE account_id = :carol;
SELECT regress.try(format($$SELECT billing.charge(%s, 'no-such-model', '{}', '{"images":[]}')$$, :carol));
SELECT regress.try($$SELECT billing.charge(999999, 'ch-img', '{}', '{"images":[{"width":1,"height":1}]}')$$);
SELECT regress.try(format($$SELECT billing.charge(%s, 'ch-img', '{}', '[1,2]')$$, :carol));
SELECT regress.try(format($$SELECT billing.charge(%s, 'ch-img', '"x"', '{}')$$, :carol));
SELECT regress.try(format($$SELECT billing.charge(%s, 'ch-img', '{}', '{"images":[{"width":1,"height":1}]}', '[]')$$, :carol));
SELECT regress.try(format($$SELECT billing.charge(%s, 'ch-img', '{}', '{"images":[{"width":1,"height":1}]}', '{"provider":"nobody"}')$$, :carol));
SELECT regress.try(format($$SELECT billing.charge(%s, 'ch-img', NULL, '{}')$$, :carol));
SELECT regress.try(format($$SELECT billing.charge(%s, NULL, '{}', '{}')$$, :carol));
SELECT regress.try(format($$SELECT billing.charge(%s, 'ch-img', '{"n":-1}', '{"images":"many"}')$$, :carol));
SELECT regress.try(format($$SELECT billing.charge(%s, 'ch-img', '{}', '{"images":[{"width":1,"height":1}]}', '{}', '')$$, :carol));
SELECT count(*) AS entries_after FROM billing.ledger WHERE account_id = :carol;

-- an account in another currency than the catalog
SELECT billing.create_account('ch-eur', 'prepaid', 'EUR') AS eur \gset
SELECT billing.add_funds(:eur, 1000000) > 0 AS funded;
SELECT regexp_replace(regress.try(format($$SELECT billing.charge(%s, 'ch-img', '{}', '{"images":[{"width":1,"height":1}]}')$$, :eur)),
                      'account \d+', 'account N') AS try;

-- the 402 hint follows the account: auto top-up on, or postpaid
SELECT billing.create_account('ch-poor') AS poor \gset
\set VERBOSITY default
SELECT billing.charge(:poor, 'ch-img', '{}', '{"images":[{"width":1,"height":1}]}');
UPDATE billing.accounts SET auto_topup_enabled = true WHERE account_id = :poor;
SELECT billing.charge(:poor, 'ch-img', '{}', '{"images":[{"width":1,"height":1}]}');
SELECT billing.create_account('ch-post', 'postpaid') AS post \gset
SELECT billing.charge(:post, 'ch-img', '{}', '{"images":[{"width":1,"height":1}]}');

SELECT kind, amount_micros, request_id IS NOT NULL AS has_request
  FROM billing.ledger WHERE account_id = :carol ORDER BY entry_id;
SELECT billing.balance(:carol) - 'low_balance_threshold_micros' - 'validation' - 'account_id' AS balance;
SELECT * FROM billing.verify();
