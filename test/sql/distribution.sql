-- The one schema for one server and Citus (docs/citus.md): every unique key
-- of a table of one account's rows includes account_id, so that the table
-- can be distributed by it; citus_setup() needs Citus.
SET client_min_messages = warning;

-- unique indexes (primary keys included) of tables with an account_id that
-- leave it out; external_ids is the one table keyed by another column
SELECT c.relname, i.relname AS index
  FROM pg_index x
  JOIN pg_class i ON i.oid = x.indexrelid
  JOIN pg_class c ON c.oid = x.indrelid
 WHERE c.relnamespace = 'billing'::regnamespace AND x.indisunique
   AND c.relname <> 'external_ids'
   AND EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'account_id')
   AND NOT EXISTS (SELECT FROM pg_attribute a
                    WHERE a.attrelid = c.oid AND a.attname = 'account_id' AND a.attnum = ANY (x.indkey))
 ORDER BY 1, 2;

-- foreign keys between such tables name account_id on both sides
SELECT k.conname FROM pg_constraint k
 WHERE k.contype = 'f' AND k.connamespace = 'billing'::regnamespace
   AND EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = k.conrelid AND a.attname = 'account_id')
   AND NOT EXISTS (SELECT FROM pg_attribute a
                    WHERE a.attrelid = k.conrelid AND a.attname = 'account_id' AND a.attnum = ANY (k.conkey));

-- an external id stays unique, by the key of the same name as before
SELECT billing.create_account('dist-ext') > 0 AS created;
SELECT regress.try($$SELECT billing.create_account('dist-ext')$$);
SELECT count(*) AS one_row FROM billing.external_ids WHERE external_id = 'dist-ext';

-- request-keyed calls find the account of the request
SELECT billing.set_model('dist-img', 'image', 'acme', 'Acme Imaging');
SELECT billing.set_price('dist-img', '[{"type":"output","metric":"image","unit_price_micros":40000}]') > 0 AS priced;
SELECT account_id AS a FROM billing.external_ids WHERE external_id = 'dist-ext' \gset
SELECT billing.add_funds(:a, 1000000) > 0 AS funded;
SELECT (billing.begin_request(:a, 'dist-img', '{}') ->> 'request_id')::bigint AS r \gset
SELECT billing.complete_request(:r, '{"images":[{}]}') ->> 'cost_micros' AS cost;
SELECT billing.response_metadata(:r) ->> 'status' AS status;
SELECT regress.try('SELECT billing.cancel_request(999999999)');

-- without Citus
SELECT regress.try('SELECT billing.citus_setup()');
SELECT billing._distributed() AS distributed;
SELECT billing.citus_drop();
SELECT * FROM billing.verify();
