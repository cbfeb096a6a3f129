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
