-- (2), (3): the plain-SQL floor, what a minimal hand-written design costs: one
-- statement that debits only when covered, records the request and appends a
-- ledger entry; on an account of 1 .. :accounts at random
\set a random(1, :accounts)
WITH d AS (UPDATE plain.accounts SET balance_micros = balance_micros - 40000
            WHERE account_id = :a AND balance_micros >= 40000 RETURNING account_id),
     r AS (INSERT INTO plain.requests (account_id, model, status, params, outputs, cost_micros)
           SELECT account_id, 'bench-img', 'completed', '{"n":1,"size":"1024x1024"}',
                  '{"images":[{"width":1024,"height":1024}]}', 40000 FROM d
           RETURNING account_id, request_id)
INSERT INTO plain.ledger (account_id, kind, amount_micros, request_id)
SELECT account_id, 'usage', -40000, request_id FROM r RETURNING entry_id;
