-- The API of billing through the coordinator of a Citus cluster
-- (test/citus.sh, after test/citus/catalog.sql). Every check raises when it
-- fails, and psql stops there.
SET client_min_messages = error;	-- Citus warns that pg_temp functions stay local
CREATE FUNCTION pg_temp.ok(cond boolean, what text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF cond IS NOT TRUE THEN
        RAISE EXCEPTION 'check failed: %', what;
    END IF;
END $$;
-- the SQLSTATE of a statement, or ok
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END $$;
SET client_min_messages = warning;

-- accounts, funds; external ids unique across the cluster
SELECT billing.create_account('api-ann') AS ann \gset
SELECT billing.create_account('api-bob', 'postpaid') AS bob \gset
SELECT pg_temp.ok(pg_temp.try($$SELECT billing.create_account('api-ann')$$) = '23505', 'external id taken');
SELECT billing.add_funds(:ann, 5000000, 'fund-1') AS e1 \gset
SELECT pg_temp.ok(billing.add_funds(:ann, 5000000, 'fund-1') = :e1, 'add_funds replayed');
SELECT pg_temp.ok(pg_temp.try(format($$SELECT billing.add_funds(%s, 1)$$, :bob)) = 'PB409', 'postpaid add_funds');
SELECT pg_temp.ok(pg_temp.try('SELECT billing.add_funds(999999999, 1)') = 'PB404', 'unknown account');

-- charge, 402
SELECT billing.charge(:ann, 'ct-img', '{}', '{"images":[{"width":1024,"height":1024}]}') ->> 'cost_micros' AS cost \gset
SELECT pg_temp.ok(:cost = 40000, 'charge cost');
SELECT billing.create_account('api-poor') AS poor \gset
SELECT pg_temp.ok(pg_temp.try(format($$SELECT billing.charge(%s, 'ct-img', '{}', '{"images":[{}]}')$$, :poor)) = 'PB402', '402');

-- collections (docs/invoices.md): an invoice of January 2025 (usage dated then, as
-- the superuser writes it), a note, a void and its reissue, the overdue
-- flag across accounts and the refusal it makes, the document
SELECT billing.create_account('api-late', 'postpaid') AS late \gset
SELECT billing.set_credit_limit(:late, 50000000, 'late') IS NOT NULL;
SELECT billing.set_billing_details(:late, '{"legal_name":"Late Ltd","address":{"country":"FR"}}') IS NOT NULL;
INSERT INTO billing.requests (account_id, model, provider, status, params, outputs, cost_estimate_micros,
                              cost_micros, currency, postpaid, created_at, completed_at)
VALUES (:late, 'ct-img', 'acme', 'completed', '{}', '{}', 1234567, 1234567, 'USD', true, '2025-01-15', '2025-01-15')
RETURNING request_id AS late_req \gset
INSERT INTO billing.ledger (account_id, kind, amount_micros, postpaid, request_id, created_at)
VALUES (:late, 'usage', -1234567, true, :late_req, '2025-01-15');
SELECT billing._adjust_available(:late, -1234567) IS NOT NULL;
SELECT pg_temp.ok(billing.close_period('2025-01-01') = 1, 'close_period of January 2025');
SELECT invoice_id AS late_inv FROM billing.invoices WHERE account_id = :late \gset
SELECT pg_temp.ok(billing.issue_credit_note(:late_inv, 30000, 'outage') ->> 'amount_due_micros' = '1200000', 'credit note');
SELECT pg_temp.ok(billing.void_invoice(:late_inv, 'wrong address') ->> 'status' = 'void', 'void_invoice');
SELECT pg_temp.ok(billing.close_period('2025-01-01') = 1, 'the void month issued again');
SELECT invoice_id AS late_re FROM billing.invoices WHERE account_id = :late AND status = 'open' \gset
SELECT count(*) AS late_listed FROM billing.list_invoices(:late) \gset
SELECT pg_temp.ok(:late_listed = 2, 'list_invoices');
SELECT pg_temp.ok(billing.invoice_document(:late_re) -> 'buyer' ->> 'legal_name' = 'Late Ltd', 'invoice_document');
SELECT billing.set_overdue_policy(:late, 0) IS NOT NULL;
SELECT pg_temp.ok(billing.mark_overdue() >= 1, 'mark_overdue across accounts');
SELECT pg_temp.ok(pg_temp.try(format($$SELECT billing.charge(%s, 'ct-img', '{}', '{"images":[{}]}')$$, :late)) = 'PB402',
                  'an overdue account is refused');
SELECT billing.mark_invoice_paid(:late_re) IS NOT NULL;
SELECT overdue_since IS NULL AS reinstated FROM billing.accounts WHERE account_id = :late \gset
SELECT pg_temp.ok(:'reinstated'::boolean, 'paid: reinstated');
SELECT pg_temp.ok(billing.charge(:late, 'ct-img', '{}', '{"images":[{}]}') IS NOT NULL, 'admitted again');

-- the lifecycle: begin, complete; begin, cancel; begin, fail with a charge
SELECT billing.begin_request(:ann, 'ct-img', '{"n":1}') ->> 'request_id' AS r1 \gset
SELECT pg_temp.ok((billing.balance(:ann) ->> 'held_micros')::bigint = 40000, 'hold');
SELECT pg_temp.ok(billing.complete_request(:r1, '{"images":[{"width":1,"height":1}]}',
                                           '{"provider":"blue"}') ->> 'cost_micros' = '30000', 'complete routed');
SELECT pg_temp.ok(billing.complete_request(:r1, '{"images":[{"width":1,"height":1}]}',
                                           '{"provider":"blue"}') ->> 'status' = 'completed', 'complete replayed');
SELECT billing.begin_request(:ann, 'ct-img', '{"n":1}') ->> 'request_id' AS r2 \gset
SELECT pg_temp.ok(billing.cancel_request(:r2) ->> 'status' = 'cancelled', 'cancel');
SELECT pg_temp.ok(pg_temp.try(format($$SELECT billing.complete_request(%s, '{"images":[]}')$$, :r2)) = 'PB409', 'cancelled stays');
SELECT billing.begin_request(:ann, 'ct-img', '{"n":1}') ->> 'request_id' AS r3 \gset
SELECT pg_temp.ok(billing.fail_request(:r3, 'upstream 500', 10000) ->> 'cost_micros' = '10000', 'fail charged');
SELECT pg_temp.ok(pg_temp.try('SELECT billing.cancel_request(999999999999)') = 'PB404', 'unknown request');
SELECT pg_temp.ok(billing.response_metadata(:r1) ->> 'status' = 'completed', 'response_metadata');
SELECT pg_temp.ok((billing.balance(:ann) ->> 'held_micros')::bigint = 0, 'no hold left');

-- refunds and corrections
SELECT pg_temp.ok(billing.refund_request(:r1, 10000, 'partial', 'rf-1') IS NOT NULL, 'refund');
SELECT pg_temp.ok(billing.refund_request(:r1, 10000, 'partial', 'rf-1') IS NOT NULL, 'refund replayed');
SELECT pg_temp.ok(pg_temp.try(format($$SELECT billing.refund_request(%s, 1000000)$$, :r1)) <> 'ok', 'refund over');
SELECT pg_temp.ok(billing.adjust_balance(:ann, -1, 'rounding') IS NOT NULL, 'adjust');
SELECT pg_temp.ok((billing.balance(:ann) ->> 'available_micros')::bigint
                  = 5000000 - 40000 - 30000 - 10000 + 10000 - 1, 'balance after all');

-- credit grants
SELECT pg_temp.ok(billing.grant_credits(:ann, 1000000, NULL, 'promotional', 'gr-1') IS NOT NULL, 'grant');
SELECT pg_temp.ok(jsonb_array_length(billing.balance(:ann) -> 'credits') = 1, 'credits listed');
SELECT pg_temp.ok(billing.expire_credits() >= 0, 'expire_credits');

-- auto top-up: a pending top-up after a charge below the threshold, completed
SELECT billing.create_account('api-top') AS top \gset
SELECT billing.add_funds(:top, 100000) IS NOT NULL;
SELECT billing.configure_auto_topup(:top, 1000000, 5000000, true);
SELECT billing.charge(:top, 'ct-img', '{}', '{"images":[{}]}') IS NOT NULL;
SELECT topup_id AS t1 FROM billing.topups WHERE account_id = :top AND status = 'pending' \gset
SELECT pg_temp.ok(billing.complete_topup(:t1, true, 'pay-1') ->> 'status' = 'succeeded', 'complete_topup');
SELECT pg_temp.ok(billing.complete_topup(:t1, true, 'pay-1') ->> 'status' = 'succeeded', 'complete_topup replayed');
SELECT pg_temp.ok((billing.balance(:top) ->> 'available_micros')::bigint = 100000 - 40000 + 5000000, 'topped up');

-- postpaid: credit limit, usage, close_period of a month without usage,
-- a billing type switch
SELECT billing.set_credit_limit(:bob, 2000000, 'first limit') IS NOT NULL;
SELECT pg_temp.ok(billing.charge(:bob, 'ct-img', '{}', '{"images":[{}]}') ->> 'cost_micros' = '40000', 'postpaid charge');
SELECT pg_temp.ok((billing.balance(:bob) ->> 'unbilled_micros')::bigint = 40000, 'unbilled');
SELECT pg_temp.ok(billing.suggest_credit_limit(:bob) IS NOT NULL, 'suggest_credit_limit');
SELECT pg_temp.ok(billing.close_period('2001-01-01') = 0, 'close_period of an empty month');
SELECT pg_temp.ok(pg_temp.try('SELECT billing.mark_invoice_paid(999999999)') = 'PB404', 'unknown invoice');
SELECT billing.create_account('api-switch') AS sw \gset
SELECT billing.add_funds(:sw, 300000) IS NOT NULL;
SELECT billing.set_billing_type(:sw, 'postpaid');
SELECT pg_temp.ok(billing.balance(:sw) ->> 'billing_type' = 'postpaid', 'switched');

-- spend limits and balance alerts (docs/limits.md)
SELECT billing.create_account('api-lim') AS lim \gset
SELECT billing.add_funds(:lim, 1000000) IS NOT NULL;
SELECT billing.set_spend_limit(:lim, 100000, 'day');
SELECT billing.set_spend_limit(:lim, 50000, 'day', 'key-1');
SELECT pg_temp.ok(billing.charge(:lim, 'ct-img', '{}', '{"images":[{}]}', '{}', NULL, 'key-1') IS NOT NULL, 'charge in scope');
SELECT pg_temp.ok(pg_temp.try(format($$SELECT billing.charge(%s, 'ct-img', '{}', '{"images":[{}]}', '{}', NULL, 'key-1')$$, :lim)) = 'PB402', 'scope limit');
SELECT pg_temp.ok((billing.balance(:lim) -> 'limits' -> 1 ->> 'spent_micros')::bigint = 40000, 'limit spent');

-- reports of one account, read from its shard; what Citus does not
-- support refuses with 0A000 (docs/citus.md). Each query apart: a query of
-- billing's tables that calls pg_temp.ok would be sent to the shard.
SELECT sum(u.cost_micros) AS usage_sum FROM billing.usage(:ann, '-infinity', 'infinity', '{}') u \gset
SELECT -sum(l.amount_micros) AS ledger_usage FROM billing.ledger l WHERE l.account_id = :ann AND l.kind = 'usage' \gset
SELECT pg_temp.ok(:usage_sum = :ledger_usage, 'usage(ann) sums its usage entries');
SELECT count(*) AS usage_rows FROM billing.usage(:ann, '-infinity', 'infinity', '{day,model,provider}') \gset
SELECT pg_temp.ok(:usage_rows > 0, 'usage(ann) by day, model and provider');
SELECT s.balance_after_micros AS st_last, count(*) OVER () AS st_rows
  FROM billing.statement(:ann, '-infinity', 'infinity') s ORDER BY s.entry_id DESC LIMIT 1 \gset
SELECT sum(l.amount_micros) AS ledger_sum, count(*) AS ledger_rows FROM billing.ledger l WHERE l.account_id = :ann \gset
SELECT pg_temp.ok(:st_last = :ledger_sum, 'statement(ann) ends at the balance');
SELECT pg_temp.ok(:st_rows = :ledger_rows, 'statement(ann) lists every entry');
SELECT pg_temp.ok(pg_temp.try($$SELECT * FROM billing.usage(NULL, '-infinity', 'infinity')$$) = '0A000',
                  'usage of every account refused');
SELECT pg_temp.ok(pg_temp.try('SELECT billing.rollup_usage()') = '0A000', 'rollup_usage refused');

-- housekeeping, events, invariants
SELECT billing.begin_request(:ann, 'ct-img', '{"n":1}') IS NOT NULL;
SELECT pg_temp.ok(billing.expire_requests('0 seconds') >= 1, 'expire_requests');
SELECT pg_temp.ok((billing.balance(:ann) ->> 'held_micros')::bigint = 0, 'expired hold released');
SELECT pg_temp.ok((SELECT count(*) FROM billing.events_after(0, 1000)) > 0, 'events_after');
-- as calls of their own (verify(account) is pushed down to the account's
-- worker); psql counts their rows
SELECT * FROM billing.verify(:ann);
SELECT pg_temp.ok(:ROW_COUNT = 0, 'verify(ann)');
SELECT * FROM billing.verify();
SELECT pg_temp.ok(:ROW_COUNT = 0, 'verify()');
