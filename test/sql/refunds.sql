-- Refunds of requests and manual corrections (docs/refunds.md): full and
-- partial refunds, idempotency with keys of their own, every refusal leaving
-- the database as it was, the metadata's refunded keys, created_by.
SET client_min_messages = warning;
DROP ROLE IF EXISTS rf_dba, rf_backend;
-- regress.try_detail (test/sql/setup.sql) with ids masked, so that the output
-- does not depend on the tests that ran before
CREATE FUNCTION pg_temp.try_detail(sql text) RETURNS text LANGUAGE sql AS $$
    SELECT regexp_replace(regress.try_detail(sql), '(request|entry|Refund) \d+', '\1 N', 'g') $$;
CREATE FUNCTION pg_temp.no_ids(j jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT j - ARRAY['refund_id', 'request_id', 'account_id']
$$;
-- what a refusal must leave as it was: money and row counts
CREATE FUNCTION pg_temp.state(acct bigint) RETURNS text LANGUAGE sql AS $$
    SELECT format('balance %s available %s entries %s refunds %s adjustments %s',
                  billing.balance(acct) ->> 'balance_micros', billing.balance(acct) ->> 'available_micros',
                  (SELECT count(*) FROM billing.ledger l WHERE l.account_id = acct),
                  (SELECT count(*) FROM billing.refunds f WHERE f.account_id = acct),
                  (SELECT count(*) FROM billing.adjustments d WHERE d.account_id = acct))
$$;

SELECT billing.set_model('rf-img', 'image', 'acme', 'Acme Imaging', 'acme-img-v2');
SELECT billing.set_price('rf-img', '[{"type":"output","metric":"image","unit_price_micros":40000}]') > 0 AS priced;

SELECT billing.create_account('rf-ann') AS ann \gset
SELECT billing.add_funds(:ann, 1000000, 'fund-1') > 0 AS funded;
-- two images at 0.04: 0.08
SELECT (billing.charge(:ann, 'rf-img', '{"n":2}',
        '{"images":[{"width":512,"height":512},{"width":512,"height":512}]}', '{}', 'order-1')
        ->> 'request_id')::bigint AS r1 \gset
SELECT billing.response_metadata(:r1) ?| ARRAY['refunded', 'refunded_micros'] AS shows_refunded;
SELECT pg_temp.state(:ann) AS before_refusals \gset
SELECT :'before_refusals' AS state;

--
-- Refusals: each leaves the account as it was
--
SELECT pg_temp.try_detail('SELECT billing.refund_request(NULL)') AS null_request;
SELECT pg_temp.try_detail('SELECT billing.refund_request(-5)') AS unknown_request;
SELECT pg_temp.try_detail(format('SELECT billing.refund_request(%s, 0)', :r1)) AS zero;
SELECT pg_temp.try_detail(format('SELECT billing.refund_request(%s, -1)', :r1)) AS negative;
SELECT pg_temp.try_detail(format('SELECT billing.refund_request(%s, 80001)', :r1)) AS more_than_charged;
SELECT pg_temp.try_detail(format($$SELECT billing.refund_request(%s, 1, NULL, '')$$, :r1)) AS empty_key;
SELECT pg_temp.try_detail(format($$SELECT billing.refund_request(%s, 1, NULL, repeat('k', 257))$$, :r1)) AS long_key;
-- requests charged nothing: PB409 whatever the amount
SELECT (billing.begin_request(:ann, 'rf-img', '{"n":1}') ->> 'request_id')::bigint AS open_req \gset
SELECT pg_temp.try_detail(format('SELECT billing.refund_request(%s)', :open_req)) AS unfinished;
SELECT pg_temp.try_detail(format('SELECT billing.refund_request(%s, 0)', :open_req)) AS unfinished_zero;
SELECT billing.cancel_request(:open_req) ->> 'cost' AS cancelled_cost;
SELECT pg_temp.try_detail(format('SELECT billing.refund_request(%s, 10)', :open_req)) AS cancelled;
SELECT pg_temp.try_detail(format('SELECT billing.refund_request(%s, -10)', :open_req)) AS cancelled_negative;
SELECT (billing.begin_request(:ann, 'rf-img', '{"n":1}') ->> 'request_id')::bigint AS failed_req \gset
SELECT billing.fail_request(:failed_req, 'provider error') ->> 'cost' AS failed_cost;
SELECT pg_temp.try_detail(format('SELECT billing.refund_request(%s)', :failed_req)) AS failed_uncharged;
SELECT pg_temp.state(:ann) = :'before_refusals' AS unchanged;

--
-- A partial refund, then the rest
--
SELECT billing.refund_request(:r1, 30000, 'image 2 came back broken', 'refund-1') AS partial \gset
SELECT pg_temp.no_ids(:'partial') AS partial,
       (:'partial'::jsonb ->> 'request_id')::bigint = :r1 AS of_r1,
       (:'partial'::jsonb ->> 'account_id')::bigint = :ann AS of_ann;
SELECT pg_temp.state(:ann) AS state;
SELECT billing.response_metadata(:r1) - 'request_id' AS metadata;
-- the ledger entry: > 0, linked to the request, with the reason
SELECT kind, amount_micros, request_id = :r1 AS linked, postpaid, reference
  FROM billing.ledger WHERE account_id = :ann AND kind = 'refund';

-- idempotent replays: the first refund, no money moved
SELECT billing.refund_request(:r1, 30000, 'image 2 came back broken', 'refund-1') AS replay \gset
SELECT :'replay'::jsonb = :'partial'::jsonb AS same_json,
       (:'replay'::jsonb ->> 'refund_id')::bigint =
       (SELECT refund_id FROM billing.refunds WHERE account_id = :ann AND idempotency_key = 'refund-1') AS same_refund;
SELECT pg_temp.state(:ann) AS after_replay \gset
SELECT :'after_replay' AS state;
-- the same key with other arguments: PB409
SELECT pg_temp.try_detail(format($$SELECT billing.refund_request(%s, 30000, 'other reason', 'refund-1')$$, :r1))
       AS other_reason;
SELECT pg_temp.try_detail(format($$SELECT billing.refund_request(%s, 20000, 'image 2 came back broken', 'refund-1')$$, :r1))
       AS other_amount;
SELECT pg_temp.try_detail(format($$SELECT billing.refund_request(%s, NULL, 'image 2 came back broken', 'refund-1')$$, :r1))
       AS all_instead;
SELECT pg_temp.state(:ann) = :'after_replay' AS unchanged;

-- keys of their own: a request key and an add_funds key are free for refunds
SELECT billing.refund_request(:r1, 10000, NULL, 'order-1') ->> 'refunded_micros' AS request_key_free;
SELECT billing.refund_request(:r1, 10000, NULL, 'fund-1') ->> 'refunded_micros' AS funds_key_free;
-- ... and a refund key is free for them
SELECT billing.add_funds(:ann, 5000, 'refund-1') > 0 AS refund_key_free_for_funds;

-- NULL: all that is left (0.03)
SELECT pg_temp.no_ids(billing.refund_request(:r1, NULL, 'all of it')) AS rest;
SELECT billing.response_metadata(:r1) - 'request_id' AS fully_refunded;
SELECT pg_temp.state(:ann) AS after_full \gset
SELECT :'after_full' AS state;
-- nothing left: PB409 whatever the amount
SELECT pg_temp.try_detail(format('SELECT billing.refund_request(%s)', :r1)) AS nothing_left;
SELECT pg_temp.try_detail(format('SELECT billing.refund_request(%s, 1)', :r1)) AS nothing_left_one;
SELECT pg_temp.try_detail(format('SELECT billing.refund_request(%s, 0)', :r1)) AS nothing_left_zero;
SELECT pg_temp.state(:ann) = :'after_full' AS unchanged;

-- a failed request with a partial charge gives back that charge
SELECT (billing.begin_request(:ann, 'rf-img', '{"n":1}') ->> 'request_id')::bigint AS part_req \gset
SELECT billing.fail_request(:part_req, 'half rendered', 15000) ->> 'cost' AS partial_charge;
SELECT pg_temp.try_detail(format('SELECT billing.refund_request(%s, 15001)', :part_req)) AS over_partial;
SELECT billing.refund_request(:part_req) ->> 'amount' AS refunded_partial_charge;
SELECT billing.response_metadata(:part_req) ->> 'refunded' AS metadata_refunded;

--
-- Postpaid: the refund reduces what is owed
--
SELECT billing.create_account('rf-bob', 'postpaid') AS bob \gset
SELECT billing.set_credit_limit(:bob, 1000000, 'regress');
SELECT (billing.charge(:bob, 'rf-img', '{"n":1}', '{"images":[{"width":512,"height":512}]}')
        ->> 'request_id')::bigint AS r2 \gset
SELECT billing.balance(:bob) ->> 'unbilled_micros' AS owed, billing.balance(:bob) ->> 'available_micros' AS available;
SELECT billing.refund_request(:r2, 25000) ->> 'refunded_micros' AS refunded;
SELECT billing.balance(:bob) ->> 'unbilled_micros' AS owed, billing.balance(:bob) ->> 'available_micros' AS available;
SELECT postpaid FROM billing.ledger WHERE account_id = :bob AND kind = 'refund';

--
-- adjust_balance: signed corrections with a reason
--
SELECT pg_temp.state(:ann) AS before_adjust \gset
SELECT billing.adjust_balance(:ann, 500000, 'goodwill: outage of the 3rd') AS credit_entry \gset
SELECT kind, amount_micros, reference FROM billing.ledger WHERE account_id = :ann AND entry_id = :credit_entry;
SELECT billing.adjust_balance(:ann, -200000, 'duplicate refund taken back') > :credit_entry AS debited;
SELECT pg_temp.state(:ann) AS after_adjust \gset
SELECT :'after_adjust' AS state;
SELECT pg_temp.try_detail(format($$SELECT billing.adjust_balance(%s, NULL, 'x')$$, :ann)) AS null_amount;
SELECT pg_temp.try_detail($$SELECT billing.adjust_balance(NULL, 1, 'x')$$) AS null_account;
SELECT pg_temp.try_detail($$SELECT billing.adjust_balance(-5, 1, 'x')$$) AS unknown_account;
SELECT pg_temp.try_detail(format($$SELECT billing.adjust_balance(%s, 0, 'x')$$, :ann)) AS zero;
SELECT pg_temp.try_detail(format($$SELECT billing.adjust_balance(%s, 1, NULL)$$, :ann)) AS no_reason;
SELECT pg_temp.try_detail(format($$SELECT billing.adjust_balance(%s, 1, '')$$, :ann)) AS empty_reason;
SELECT pg_temp.try_detail(format($$SELECT billing.adjust_balance(%s, 1, '  ')$$, :ann)) AS blank_reason;
SELECT pg_temp.try_detail(format($$SELECT billing.adjust_balance(%s, 1, 'x', '')$$, :ann)) AS empty_key;
SELECT pg_temp.try_detail(format($$SELECT billing.adjust_balance(%s, -9223372036854775808, 'x')$$, :ann)) AS min_int;
-- a debit not covered by the available amount: the 402
SELECT pg_temp.try_detail(format($$SELECT billing.adjust_balance(%s, -99000000, 'too much')$$, :ann)) AS not_covered;
SELECT pg_temp.try_detail(format($$SELECT billing.adjust_balance(%s, -2000000, 'too much')$$, :bob)) AS not_covered_postpaid;
SELECT pg_temp.state(:ann) = :'after_adjust' AS unchanged;
-- idempotency, keys of their own
SELECT billing.adjust_balance(:ann, 70000, 'promo', 'adj-1') AS adj1 \gset
SELECT billing.adjust_balance(:ann, 70000, 'promo', 'adj-1') = :adj1 AS same_entry;
SELECT pg_temp.try_detail(format($$SELECT billing.adjust_balance(%s, 70001, 'promo', 'adj-1')$$, :ann)) AS other_amount;
SELECT pg_temp.try_detail(format($$SELECT billing.adjust_balance(%s, 70000, 'other', 'adj-1')$$, :ann)) AS other_reason;
SELECT billing.adjust_balance(:ann, 1, 'keys of their own', 'fund-1') > 0 AS funds_key_free;
SELECT billing.adjust_balance(:ann, 1, 'keys of their own', 'refund-1') > 0 AS refund_key_free;
SELECT count(*) AS adjustments, sum(amount_micros) AS total FROM billing.adjustments WHERE account_id = :ann;
-- a postpaid credit reduces what is owed
SELECT billing.adjust_balance(:bob, 5000, 'goodwill') > 0 AS credited;
SELECT billing.balance(:bob) ->> 'unbilled_micros' AS owed;

--
-- created_by: the login role of the session, through the admin tier
--
CREATE ROLE rf_dba LOGIN;
GRANT billing_admin TO rf_dba;
CREATE ROLE rf_backend LOGIN;
GRANT billing_app TO rf_backend;
SET SESSION AUTHORIZATION rf_dba;
SELECT billing.adjust_balance(:ann, 500000000, 'who gave this account 500 USD') AS dba_entry \gset
SELECT billing.refund_request(:r2, NULL, 'by the dba') ->> 'refunded_micros' AS dba_refund;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION rf_backend;
-- the application tier may not refund or adjust
SELECT billing.refund_request(:r1);
SELECT billing.adjust_balance(:ann, 1, 'x');
SELECT billing.charge(:ann, 'rf-img', '{"n":1}', '{"images":[{"width":512,"height":512}]}') ->> 'cost' AS app_charge;
RESET SESSION AUTHORIZATION;
SELECT kind, amount_micros, created_by FROM billing.ledger
 WHERE account_id IN (:ann, :bob) AND created_by IN ('rf_dba', 'rf_backend') ORDER BY entry_id;
SELECT count(*) AS others_by_superuser FROM billing.ledger
 WHERE account_id IN (:ann, :bob) AND created_by NOT IN ('rf_dba', 'rf_backend') AND created_by <> current_user;

SELECT * FROM billing.verify();
DROP ROLE rf_dba, rf_backend;
