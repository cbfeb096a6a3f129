-- A charge writes the same rows whether it goes direct (src/direct.c) or
-- through its statements: an INSERT trigger on the ledger sends it through
-- the statements (and fires), and so does REPEATABLE READ; a charge with a
-- key always takes them. Every way writes the same columns.
SET client_min_messages = warning;
\set VERBOSITY terse

SELECT billing.set_model('dx-img', 'image', 'acme', 'Acme Imaging', 'acme-img-v2');
SELECT billing.set_price('dx-img', '[{"type":"output","metric":"image","unit_price_micros":40000}]') > 0 AS priced;
SELECT billing.create_account('dx-dora') AS dora \gset
SELECT billing.add_funds(:dora, 10000000) > 0 AS funded;

CREATE FUNCTION regress.ledger_seen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE WARNING 'ledger insert: % %', NEW.kind, NEW.amount_micros;
    RETURN NEW;
END $$;
SELECT billing.charge(:dora, 'dx-img', '{}', '{"images":[{"width":1,"height":1}]}') ->> 'status' AS direct;
CREATE TRIGGER regress_seen AFTER INSERT ON billing.ledger
    FOR EACH ROW EXECUTE FUNCTION regress.ledger_seen();
SELECT billing.charge(:dora, 'dx-img', '{}', '{"images":[{"width":1,"height":1}]}') ->> 'status' AS with_trigger;
DROP TRIGGER regress_seen ON billing.ledger;
DROP FUNCTION regress.ledger_seen();
SELECT billing.charge(:dora, 'dx-img', '{}', '{"images":[{"width":1,"height":1}]}', '{}', NULL, 'job') ->> 'scope' AS direct_again;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT billing.charge(:dora, 'dx-img', '{}', '{"images":[{"width":1,"height":1}]}', '{}', NULL, 'job') ->> 'scope' AS repeatable_read;
COMMIT;
SELECT billing.charge(:dora, 'dx-img', '{}', '{"images":[{"width":1,"height":1}]}', '{}', 'dx-key', 'job') ->> 'scope' AS keyed;
-- two charges in one statement and one transaction: the second sees the first's slice
SELECT billing.charge(:dora, 'dx-img', '{}', '{"images":[{"width":1,"height":1}]}') ->> 'status' AS status
  FROM generate_series(1, 2);

SELECT model, provider, status, params, outputs, routing, cost_estimate_micros, cost_micros,
       hold_micros, currency, postpaid, idempotency_key, failure_reason, price_id IS NOT NULL AS priced,
       scope, completed_at >= created_at AS times
  FROM billing.requests r WHERE account_id = :dora ORDER BY request_id;
SELECT kind, amount_micros, postpaid, request_id IS NOT NULL AS has_request, topup_id, invoice_id,
       idempotency_key, reference, grant_id, created_by = session_user AS by_session_user,
       created_at >= (SELECT r.completed_at FROM billing.requests r WHERE r.request_id = l.request_id) AS after_completion
  FROM billing.ledger l WHERE account_id = :dora ORDER BY entry_id;
SELECT billing.balance(:dora) ->> 'available_micros' AS available;
SELECT * FROM billing.verify();

-- Finishing a request (src/requests/finish.c) goes direct too, unless
-- another UPDATE trigger on requests would fire (then the UPDATE and the
-- transition trigger settle, and it fires) or the transaction is
-- REPEATABLE READ: each way writes the same rows and answers the same.
SELECT billing.set_model('dx-vid', 'video', 'acme', 'Acme Video');
SELECT billing.set_price('dx-vid', '[{"type":"output","metric":"second","unit_price_micros":1000}]') > 0 AS priced;
SELECT billing.create_account('dx-vera') AS vera \gset
SELECT billing.add_funds(:vera, 10000000) > 0 AS funded;
CREATE TEMP TABLE begun AS
SELECT g, (billing.begin_request(:vera, 'dx-vid', '{"duration_seconds":4}') ->> 'request_id')::bigint AS id
  FROM generate_series(1, 9) g;
CREATE FUNCTION pg_temp.finish(way text, first int) RETURNS SETOF text LANGUAGE sql AS $$
    SELECT way || ': ' || (billing.complete_request(id, '{"duration_seconds":5}', '{"upstream_id":"u-1"}')
                           - 'request_id')::text
      FROM begun WHERE g = first
    UNION ALL
    SELECT way || ': ' || (billing.fail_request(id, 'boom', 1500) - 'request_id')::text
      FROM begun WHERE g = first + 1
    UNION ALL
    SELECT way || ': ' || (billing.cancel_request(id) - 'request_id')::text FROM begun WHERE g = first + 2
$$;
-- (the calls of the transition trigger during the finishes tell which way
-- ran: the backend's counts, read within one transaction, as what it has
-- not reported yet may include earlier transactions)
CREATE FUNCTION pg_temp.trigger_calls() RETURNS bigint LANGUAGE sql AS $$
    SELECT COALESCE((SELECT calls FROM pg_stat_xact_user_functions
                      WHERE funcid = 'billing.requests_transition'::regproc), 0) $$;
SET track_functions = 'all';
BEGIN;
SELECT pg_temp.trigger_calls() AS calls_before \gset
SELECT pg_temp.finish('direct', 1);
SELECT pg_temp.trigger_calls() - :calls_before AS direct_trigger_calls;
COMMIT;
CREATE FUNCTION regress.request_seen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE WARNING 'request update: % to %', OLD.status, NEW.status;
    RETURN NEW;
END $$;
CREATE TRIGGER regress_seen AFTER UPDATE ON billing.requests
    FOR EACH ROW EXECUTE FUNCTION regress.request_seen();
SELECT pg_temp.finish('with_trigger', 4);
DROP TRIGGER regress_seen ON billing.requests;
DROP FUNCTION regress.request_seen();
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT pg_temp.trigger_calls() AS calls_before \gset
SELECT pg_temp.finish('repeatable_read', 7);
SELECT pg_temp.trigger_calls() - :calls_before AS statement_trigger_calls;
COMMIT;
RESET track_functions;
-- a repeated call answers as the first; another final state is refused
SELECT billing.complete_request(id, '{"duration_seconds":5}', '{"upstream_id":"u-1"}') ->> 'cost_micros' AS again
  FROM begun WHERE g = 1;
SELECT regress.try(format('SELECT billing.cancel_request(%s)', id)) LIKE 'PB409: request % is already completed' AS refused
  FROM begun WHERE g = 1;
SELECT regress.try('SELECT billing.complete_request(-1, ''{}'')');
SELECT b.g, status, outputs, routing, cost_estimate_micros, cost_micros, hold_micros,
       failure_reason, provider_cost_micros, completed_at >= created_at AS times
  FROM begun b JOIN billing.requests r ON r.request_id = b.id ORDER BY b.g;
SELECT b.g, kind, amount_micros, created_by = session_user AS by_session_user
  FROM begun b JOIN billing.ledger l ON l.request_id = b.id ORDER BY b.g;
SELECT billing.balance(:vera) ->> 'available_micros' AS available;
SELECT * FROM billing.verify();
