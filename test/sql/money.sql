-- Money: exact micros, exact decimals, refusals of bad amounts.
SET client_min_messages = warning;

SELECT billing.create_account('money-1') AS a \gset
-- decimals render exactly, whatever the magnitude
SELECT billing.add_funds(:a, 1) > 0 AS credited;
SELECT billing.balance(:a) -> 'available' AS one_micro;
SELECT billing.add_funds(:a, 209999) > 0 AS credited;
SELECT billing.balance(:a) -> 'available' AS point_21;
SELECT billing.add_funds(:a, 12290000) > 0 AS credited;
SELECT billing.balance(:a) -> 'available' AS twelve_point_5;
SELECT billing.add_funds(:a, 987654321012) > 0 AS credited;
SELECT billing.balance(:a) ->> 'balance_micros' AS micros, billing.balance(:a) -> 'available' AS units;

-- refusals: zero, negative, overflow, NULL, non-integers; nothing is written
SELECT count(*) AS entries_before FROM billing.ledger WHERE account_id = :a;
SELECT regress.try(format('SELECT billing.add_funds(%s, 0)', :a));
SELECT regress.try(format('SELECT billing.add_funds(%s, -5)', :a));
SELECT regress.try(format('SELECT billing.add_funds(%s, NULL)', :a));
SELECT regress.try(format('SELECT billing.add_funds(%s, 9223372036854775807)', :a));
SELECT regress.try(format('SELECT billing.add_funds(%s, 1.5)', :a));
SELECT regress.try(format('SELECT billing.add_funds(%s, ''NaN''::numeric)', :a));
SELECT regress.try(format('SELECT billing.add_funds(%s, ''Infinity''::float8)', :a));
SELECT regress.try(format('SELECT billing.add_funds(%s, 99999999999999999999)', :a));
SELECT count(*) AS entries_after FROM billing.ledger WHERE account_id = :a;
SELECT billing.balance(:a) ->> 'balance_micros' AS unchanged;

-- no float on a money path: every money column is bigint
SELECT c.relname, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod)
  FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'billing' AND a.attname LIKE '%micros' AND a.attnum > 0
   AND a.atttypid <> 'bigint'::regtype;

SELECT * FROM billing.verify();
