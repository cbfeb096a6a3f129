-- security: the two privilege tiers, nothing for PUBLIC, and safety against
-- objects planted ahead of pg_catalog in search_path (docs/security.md).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS billing;
DROP ROLE IF EXISTS sec_backend, sec_dba, sec_nobody;
RESET client_min_messages;

--
-- The privilege map, from the catalogs
--
SELECT rolname, rolcanlogin FROM pg_roles
 WHERE rolname IN ('billing_app', 'billing_admin') ORDER BY rolname;
SELECT pg_has_role('billing_admin', 'billing_app', 'MEMBER') AS admin_includes_app,
       pg_has_role('billing_app', 'billing_admin', 'MEMBER') AS app_includes_admin;

-- exactly the tiers of docs/security.md
SELECT p.oid::regprocedure::text AS app_may_execute
  FROM pg_proc p
 WHERE p.pronamespace = 'billing'::regnamespace
   AND has_function_privilege('billing_app', p.oid, 'EXECUTE')
 ORDER BY 1;
SELECT p.oid::regprocedure::text AS only_admin_may_execute
  FROM pg_proc p
 WHERE p.pronamespace = 'billing'::regnamespace
   AND has_function_privilege('billing_admin', p.oid, 'EXECUTE')
   AND NOT has_function_privilege('billing_app', p.oid, 'EXECUTE')
 ORDER BY 1;

-- docs/security.md's table is the one list of the tiers: it and the grants
-- must name the same functions with the same tier (no rows: they agree)
\set tiers_doc `cat docs/security.md`
WITH documented AS (
    SELECT replace(m[1], ' ', '') AS fn, m[2] AS tier
      FROM regexp_matches(:'tiers_doc', E'\\n\\| `([a-z_]+\\([^`]*\\))` \\| (app|admin) \\|', 'g') m
), granted AS (
    SELECT replace(replace(substr(p.oid::regprocedure::text, length('billing.') + 1),
                           'timestamp with time zone', 'timestamptz'), ' ', '') AS fn,
           CASE WHEN has_function_privilege('billing_app', p.oid, 'EXECUTE') THEN 'app' ELSE 'admin' END AS tier
      FROM pg_proc p
     WHERE p.pronamespace = 'billing'::regnamespace
       AND has_function_privilege('billing_admin', p.oid, 'EXECUTE')
)
SELECT fn AS tier_differs_from_docs, d.tier AS documented, g.tier AS granted
  FROM documented d FULL JOIN granted g USING (fn)
 WHERE d.tier IS DISTINCT FROM g.tier
 ORDER BY 1;
SELECT count(*) > 30 AS docs_table_read FROM regexp_matches(:'tiers_doc', E'\\n\\| `[a-z_]+\\(', 'g');

-- and README.md's reference table has a line for every function of the tiers
\set readme `cat README.md`
SELECT DISTINCT p.proname AS missing_from_readme
  FROM pg_proc p
 WHERE p.pronamespace = 'billing'::regnamespace
   AND has_function_privilege('billing_admin', p.oid, 'EXECUTE')
   AND strpos(:'readme', '| `' || p.proname || '(') = 0
   AND strpos(:'readme', ', `' || p.proname || '(') = 0
 ORDER BY 1;

-- nothing at all for PUBLIC: schema, functions (EXECUTE is PUBLIC's by
-- default), tables, views, sequences
SELECT n.nspname, a.privilege_type
  FROM pg_namespace n, aclexplode(COALESCE(n.nspacl, acldefault('n', n.nspowner))) a
 WHERE n.nspname = 'billing' AND a.grantee = 0;
SELECT p.oid::regprocedure AS public_may_execute
  FROM pg_proc p, aclexplode(COALESCE(p.proacl, acldefault('f', p.proowner))) a
 WHERE p.pronamespace = 'billing'::regnamespace AND a.grantee = 0;
SELECT c.oid::regclass AS public_relation, a.privilege_type
  FROM pg_class c,
       aclexplode(COALESCE(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char",
                                                c.relowner))) a
 WHERE c.relnamespace = 'billing'::regnamespace AND a.grantee = 0;

-- what the tiers may do to relations: read the catalog, and update three
-- columns of requests (finding the row by request_id)
SELECT c.oid::regclass::text AS relation, r.rolname, a.privilege_type
  FROM pg_class c, aclexplode(c.relacl) a, pg_roles r
 WHERE c.relnamespace = 'billing'::regnamespace AND r.oid = a.grantee AND a.grantee <> c.relowner
 ORDER BY 1, 2, 3;
SELECT t.attrelid::regclass::text AS relation, t.attname, r.rolname, a.privilege_type
  FROM pg_attribute t JOIN pg_class c ON c.oid = t.attrelid, aclexplode(t.attacl) a, pg_roles r
 WHERE c.relnamespace = 'billing'::regnamespace AND r.oid = a.grantee
 ORDER BY 1, 2, 3, 4;
SELECT has_schema_privilege('billing_app', 'billing', 'CREATE') AS app_creates,
       has_schema_privilege('billing_admin', 'billing', 'CREATE') AS admin_creates;

-- every granted function runs as the owner with a pinned search_path, and
-- every SECURITY DEFINER function pins it
SELECT p.oid::regprocedure AS granted_but_not_definer
  FROM pg_proc p
 WHERE p.pronamespace = 'billing'::regnamespace
   AND has_function_privilege('billing_admin', p.oid, 'EXECUTE') AND NOT p.prosecdef;
SELECT p.oid::regprocedure AS definer_without_pinned_path
  FROM pg_proc p
 WHERE p.pronamespace = 'billing'::regnamespace AND p.prosecdef
   AND NOT 'search_path=pg_catalog, pg_temp' = ANY (COALESCE(p.proconfig, '{}'));
SELECT c.oid::regclass AS invoker_view
  FROM pg_class c
 WHERE c.relnamespace = 'billing'::regnamespace AND c.relkind = 'v'
   AND 'security_invoker=true' = ANY (COALESCE(c.reloptions, '{}'));

--
-- Real login roles
--
CREATE ROLE sec_backend LOGIN;
GRANT billing_app TO sec_backend;
CREATE ROLE sec_dba LOGIN;
GRANT billing_admin TO sec_dba;
CREATE ROLE sec_nobody LOGIN;

SELECT billing.set_model('sec-img', 'image', 'sec-prov', 'Security Provider', 'sec-img-v1');
SELECT billing.set_price('sec-img',
    '[{"type":"output","metric":"image","unit_price_micros":40000,"unit_size":1}]',
    NULL, '2020-01-01') > 0 AS priced;

-- the administrative tier: accounts and money in, and the invariant check
SET SESSION AUTHORIZATION sec_dba;
SELECT billing.create_account('sec-acct') AS acct \gset
SELECT billing.add_funds(:acct, 1000000, 'sec-fund-1') > 0 AS funded;
SELECT billing.balance(:acct) ->> 'balance_micros' AS balance;
SELECT count(*) AS problems FROM billing.verify(:acct);
-- but not the tables, nor the internals
INSERT INTO billing.ledger (account_id, kind, amount_micros) VALUES (:acct, 'funds', 1000000);
UPDATE billing.accounts SET credit_limit_micros = 1000000 WHERE account_id = :acct;
UPDATE billing.account_slices SET available_micros = 1000000000 WHERE account_id = :acct;
UPDATE billing.requests SET cost_micros = 0 WHERE request_id = 0;
SELECT billing._move(:acct, 1000000, 'funds');
SELECT billing._adjust_available(:acct, 1000000);
RESET SESSION AUTHORIZATION;

-- the application tier: the request lifecycle, nothing more
SET SESSION AUTHORIZATION sec_backend;
SELECT billing.create_account('sec-acct-app') IS NOT NULL AS app_creates_accounts;
SELECT billing.charge(:acct, 'sec-img', '{"n":2,"size":"1024x1024"}',
                      '{"images":[{"width":1024,"height":1024},{"width":1024,"height":1024}]}',
                      '{}', 'sec-charge-1') ->> 'cost_micros' AS charged;
SELECT billing.balance(:acct) ->> 'balance_micros' AS balance;
SELECT billing.estimate('sec-img', '{"n":1,"size":"1024x1024"}') ->> 'total_cost_micros' AS estimate;
SELECT count(*) > 0 AS reads_catalog FROM billing.catalog;
SELECT billing.add_funds(:acct, 1000000);
SELECT billing.verify();
SELECT billing.set_price('sec-img', '[]');
SELECT billing.expire_requests('0 seconds');
SELECT billing._move(:acct, 1000000, 'funds');
SELECT billing._adjust_available(:acct, 1000000);
INSERT INTO billing.ledger (account_id, kind, amount_micros) VALUES (:acct, 'funds', 1000000);
UPDATE billing.ledger SET amount_micros = 1 WHERE account_id = :acct;
DELETE FROM billing.ledger WHERE account_id = :acct;
TRUNCATE billing.ledger;
UPDATE billing.account_slices SET available_micros = 1000000000 WHERE account_id = :acct;
INSERT INTO billing.requests (account_id, model, provider, status, params, cost_estimate_micros,
                              currency, postpaid)
VALUES (:acct, 'sec-img', 'sec-prov', 'completed', '{}', 0, 'USD', false);
DELETE FROM billing.requests;
SELECT * FROM billing.accounts;
SELECT params FROM billing.requests;
-- the plain-UPDATE path: status, outputs, routing, found by request_id
SELECT billing.begin_request(:acct, 'sec-img', '{"n":1,"size":"1024x1024"}') -> 'request_id' AS rid \gset
UPDATE billing.requests SET cost_micros = 0 WHERE request_id = :rid;
UPDATE billing.requests SET hold_micros = 0 WHERE request_id = :rid;
UPDATE billing.requests SET status = 'completed', outputs = '{"images":[{"width":1024,"height":1024}]}'
 WHERE request_id = :rid RETURNING cost_micros;
SELECT request_id = :rid AS finds_own_request FROM billing.requests WHERE request_id = :rid;
UPDATE billing.requests SET routing = '{"upstream_id":"up-1"}' WHERE request_id = :rid;
UPDATE billing.requests SET status = 'completed', outputs = '{"images":[{"width":1024,"height":1024}]}'
 WHERE request_id = :rid;
SELECT billing.response_metadata(:rid) ->> 'status' AS status,
       billing.response_metadata(:rid) ->> 'cost_micros' AS cost_micros,
       billing.response_metadata(:rid) ->> 'upstream_id' AS upstream_id;
-- a finished request never moves again, whoever asks (the message names
-- the request, whose id depends on the tests run before this one)
\set VERBOSITY sqlstate
UPDATE billing.requests SET status = 'failed' WHERE request_id = :rid;
\set VERBOSITY default
SELECT billing.balance(:acct) ->> 'balance_micros' AS balance;
RESET SESSION AUTHORIZATION;

-- no tier at all: nothing, not even the schema
SET SESSION AUTHORIZATION sec_nobody;
\set VERBOSITY terse
SELECT billing.balance(:acct);
SELECT billing.charge(:acct, 'sec-img', '{"n":1,"size":"1024x1024"}',
                      '{"images":[{"width":1024,"height":1024}]}');
SELECT billing.create_account('sec-nobody');
SELECT * FROM billing.catalog;
SELECT * FROM billing.ledger;
UPDATE billing.requests SET status = 'cancelled' WHERE request_id = :rid;
\set VERBOSITY default
RESET SESSION AUTHORIZATION;
SELECT has_function_privilege('sec_nobody', 'billing.balance(bigint)', 'EXECUTE') AS nobody_balance,
       has_schema_privilege('sec_nobody', 'billing', 'USAGE') AS nobody_schema;

--
-- Planted objects: a schema ahead of pg_catalog with look-alikes of now(),
-- of bigint = - + >= < <= > <> and of text =, ->> and ->. Each one records
-- that it ran, in a sequence (not rolled back, so a run inside a failed
-- call still shows) and in a table, then behaves like the original.
--
CREATE SCHEMA evil;
GRANT USAGE ON SCHEMA evil TO PUBLIC;
CREATE SEQUENCE evil.ran_seq;
CREATE TABLE evil.ran (what text);
CREATE FUNCTION evil.record(what text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    PERFORM pg_catalog.nextval('evil.ran_seq');
    INSERT INTO evil.ran VALUES (what);
END $$;
GRANT EXECUTE ON FUNCTION evil.record(text) TO PUBLIC;
CREATE FUNCTION evil.now() RETURNS timestamptz
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM evil.record('now()'); RETURN pg_catalog.now(); END $$;
CREATE FUNCTION evil.clock_timestamp() RETURNS timestamptz
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM evil.record('clock_timestamp()'); RETURN pg_catalog.clock_timestamp(); END $$;
CREATE FUNCTION evil.int8cmp(a bigint, b bigint, op text) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    PERFORM evil.record('bigint ' || op);
    RETURN CASE op WHEN '=' THEN a = b WHEN '<>' THEN a <> b WHEN '<' THEN a < b
                   WHEN '<=' THEN a <= b WHEN '>' THEN a > b ELSE a >= b END;
END $$;
-- the six comparisons of bigint, each a function through evil.int8cmp and its operator
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT * FROM (VALUES ('eq', '='), ('ne', '<>'), ('lt', '<'), ('le', '<='),
                                   ('gt', '>'), ('ge', '>=')) v(name, op) LOOP
        EXECUTE format('CREATE FUNCTION evil.int8%s(bigint, bigint) RETURNS boolean LANGUAGE sql AS %L',
                       c.name, format('SELECT evil.int8cmp($1, $2, %L)', c.op));
        EXECUTE format('CREATE OPERATOR evil.%s (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.int8%s)',
                       c.op, c.name);
    END LOOP;
END $$;
CREATE FUNCTION evil.int8pl(a bigint, b bigint) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM evil.record('bigint +'); RETURN a + b; END $$;
CREATE FUNCTION evil.int8mi(a bigint, b bigint) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM evil.record('bigint -'); RETURN a - b; END $$;
CREATE FUNCTION evil.texteq(a text, b text) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM evil.record('text ='); RETURN a = b; END $$;
CREATE FUNCTION evil.jsonb_text(a jsonb, k text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM evil.record('jsonb ->>'); RETURN a ->> k; END $$;
CREATE FUNCTION evil.jsonb_field(a jsonb, k text) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM evil.record('jsonb ->'); RETURN a -> k; END $$;
CREATE OPERATOR evil.+ (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.int8pl);
CREATE OPERATOR evil.- (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.int8mi);
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.texteq);
CREATE OPERATOR evil.->> (LEFTARG = jsonb, RIGHTARG = text, FUNCTION = evil.jsonb_text);
CREATE OPERATOR evil.-> (LEFTARG = jsonb, RIGHTARG = text, FUNCTION = evil.jsonb_field);
-- the planted objects do work, for anyone who does not pin search_path
SET search_path = evil, pg_catalog;
SELECT 1::bigint = 1::bigint AS planted_eq_works;
SELECT count(*) AS recorded FROM evil.ran;
RESET search_path;
TRUNCATE evil.ran;
SELECT setval('evil.ran_seq', 1, false);

-- Every call of the extension under the hostile search_path (and with odd
-- time zone, date and float settings, which must not change a result), as
-- the application and the administrative tier. Results are kept in psql
-- variables and looked at once search_path is safe again (this test's own
-- -> and = would otherwise run the planted ones).
SET SESSION AUTHORIZATION sec_backend;
SET search_path = evil, pg_catalog, billing;
SET TimeZone = 'Pacific/Kiritimati';
SET DateStyle = 'German, DMY';
SET IntervalStyle = 'sql_standard';
SET extra_float_digits = 3;
SELECT billing.create_account('sec-evil') AS evil_acct \gset
SELECT billing.create_account('sec-evil-post') AS evil_post \gset
SELECT billing.configure_auto_topup(:evil_acct, 1000000, 500000) AS evil_configure \gset
SELECT billing.charge(:acct, 'sec-img', '{"n":1,"size":"1024x1024"}',
                      '{"images":[{"width":1024,"height":1024}]}', '{}', 'sec-evil-1') AS evil_charge \gset
SELECT billing.charge(:acct, 'sec-img', '{"n":1,"size":"1024x1024"}',
                      '{"images":[{"width":1024,"height":1024}]}', '{}', 'sec-evil-1') AS evil_replay \gset
SELECT billing.begin_request(:acct, 'sec-img', '{"n":1,"size":"1024x1024"}', 'sec-evil-2') AS evil_begin \gset
SELECT billing.begin_request(:acct, 'sec-img', '{"n":1,"size":"1024x1024"}', 'sec-evil-3') AS evil_begin_fail \gset
SELECT billing.begin_request(:acct, 'sec-img', '{"n":1,"size":"1024x1024"}', 'sec-evil-4') AS evil_begin_cancel \gset
SELECT billing.begin_request(:acct, 'sec-img', '{"n":1,"size":"1024x1024"}', 'sec-evil-5') AS evil_begin_update \gset
SELECT billing.balance(:acct) AS evil_balance \gset
SELECT billing.estimate('sec-img', '{"n":3,"size":"1024x1024"}') AS evil_estimate \gset
SELECT billing.effective_cost('sec-img', '{"images":[{"width":1024,"height":1024}]}') AS evil_effective \gset
RESET search_path;
SELECT (:'evil_begin'::jsonb -> 'request_id')::bigint AS r_complete,
       (:'evil_begin_fail'::jsonb -> 'request_id')::bigint AS r_fail,
       (:'evil_begin_cancel'::jsonb -> 'request_id')::bigint AS r_cancel,
       (:'evil_begin_update'::jsonb -> 'request_id')::bigint AS r_update \gset
SET search_path = evil, pg_catalog, billing;
SELECT billing.complete_request(:r_complete, '{"images":[{"width":1024,"height":1024}]}') AS evil_complete \gset
SELECT billing.complete_request(:r_complete, '{"images":[{"width":1024,"height":1024}]}') AS evil_complete_again \gset
SELECT billing.fail_request(:r_fail, 'upstream error', 5000) AS evil_fail \gset
SELECT billing.cancel_request(:r_cancel) AS evil_cancel \gset
-- the trigger path with the same search_path
UPDATE billing.requests SET status = 'completed', outputs = '{"images":[{"width":1024,"height":1024}]}',
       routing = '{"upstream_id":"up-evil"}'
 WHERE request_id OPERATOR(pg_catalog.=) :r_update;
SELECT billing.response_metadata(:r_update) AS evil_metadata \gset
-- refusals go through the same code: still no planted object (terse: the
-- detail of the first names a request id)
\set VERBOSITY terse
SELECT billing.charge(:acct, 'sec-img', '{"n":2,"size":"1024x1024"}',
                      '{"images":[{"width":1024,"height":1024},{"width":1024,"height":1024}]}',
                      '{}', 'sec-evil-1');
SELECT billing.charge(:evil_acct, 'sec-img', '{"n":1,"size":"1024x1024"}',
                      '{"images":[{"width":1024,"height":1024}]}');
\set VERBOSITY default
RESET SESSION AUTHORIZATION;
RESET search_path;
-- the auto top-up that configure_auto_topup requested at once (0 < 1.00)
SELECT topup_id AS evil_topup FROM billing.topups
 WHERE account_id = :evil_acct AND status = 'pending' \gset
SET SESSION AUTHORIZATION sec_dba;
SET search_path = evil, pg_catalog, billing;
SELECT billing.add_funds(:evil_acct, 250000, 'sec-evil-funds') AS evil_funds \gset
SELECT billing.add_funds(:evil_acct, 250000, 'sec-evil-funds') AS evil_funds_again \gset
SELECT billing.complete_topup(:evil_topup, true, 'sec-pay-1') AS evil_topup_done \gset
SELECT billing.complete_topup(:evil_topup, true, 'sec-pay-1') AS evil_topup_again \gset
SELECT billing.set_billing_type(:evil_post, 'postpaid') AS evil_switch \gset
SELECT billing.set_credit_limit(:evil_post, 2000000, 'security test') AS evil_limit \gset
SELECT billing.suggest_credit_limit(:evil_post) AS evil_suggest \gset
SELECT billing.expire_requests('100 years') AS evil_expired \gset
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION sec_backend;
SELECT billing.charge(:evil_post, 'sec-img', '{"n":1,"size":"1024x1024"}',
                      '{"images":[{"width":1024,"height":1024}]}') AS evil_post_charge \gset
SELECT billing.balance(:evil_post) AS evil_post_balance \gset
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION sec_dba;
SELECT count(*) AS evil_problems FROM billing.verify(:acct) \gset
SELECT count(*) AS evil_acct_problems FROM billing.verify(:evil_acct) \gset
SELECT count(*) AS evil_post_problems FROM billing.verify(:evil_post) \gset
RESET SESSION AUTHORIZATION;
RESET search_path;
RESET TimeZone;
RESET DateStyle;
RESET IntervalStyle;
RESET extra_float_digits;

SELECT COALESCE(pg_sequence_last_value('evil.ran_seq'), 0) AS planted_runs;
SELECT what, count(*) FROM evil.ran GROUP BY what ORDER BY what;
SELECT :'evil_charge'::jsonb ->> 'cost' AS charge_cost_units,
       :'evil_charge'::jsonb ->> 'cost_micros' AS charge_cost,
       :'evil_replay'::jsonb = :'evil_charge'::jsonb AS replay_same,
       :'evil_begin'::jsonb -> 'metadata' ->> 'cost_estimate_micros' AS estimate_held,
       :'evil_balance'::jsonb ->> 'held_micros' AS held,
       :'evil_estimate'::jsonb ->> 'total_cost_micros' AS estimate,
       :'evil_effective'::jsonb ->> 'total_cost_micros' AS effective;
SELECT :'evil_complete'::jsonb ->> 'status' AS completed,
       :'evil_complete'::jsonb ->> 'cost_micros' AS cost,
       :'evil_complete_again'::jsonb = :'evil_complete'::jsonb AS complete_twice_same,
       :'evil_fail'::jsonb ->> 'cost_micros' AS fail_cost,
       :'evil_cancel'::jsonb ->> 'cost_micros' AS cancel_cost,
       :'evil_metadata'::jsonb ->> 'status' AS updated,
       :'evil_metadata'::jsonb ->> 'cost_micros' AS updated_cost,
       :'evil_metadata'::jsonb ->> 'upstream_id' AS upstream;
SELECT :evil_funds = :evil_funds_again AS funds_once, :evil_expired AS expired,
       :evil_problems AS problems, :evil_acct_problems AS evil_acct_problems,
       :evil_post_problems AS evil_post_problems;
SELECT :'evil_topup_done'::jsonb ->> 'status' AS topup,
       :'evil_topup_again'::jsonb = :'evil_topup_done'::jsonb AS topup_once,
       :'evil_suggest'::jsonb ? 'suggested_limit' AS suggests,
       :'evil_post_charge'::jsonb ->> 'cost_micros' AS postpaid_cost,
       :'evil_post_balance'::jsonb ->> 'billing_type' AS billing_type,
       :'evil_post_balance'::jsonb ->> 'credit_limit_micros' AS credit_limit,
       :'evil_post_balance'::jsonb ->> 'available_micros' AS available;
SELECT kind, amount_micros, postpaid FROM billing.ledger
 WHERE account_id IN (:evil_acct, :evil_post) ORDER BY entry_id;
SELECT kind, amount_micros, (SELECT idempotency_key FROM billing.requests r
                              WHERE r.request_id = l.request_id) AS request_key
  FROM billing.ledger l WHERE account_id IN (:acct, :evil_acct) ORDER BY entry_id;
SELECT billing.balance(:acct) ->> 'balance_micros' AS balance,
       billing.balance(:acct) ->> 'held_micros' AS held,
       billing.balance(:evil_acct) ->> 'balance_micros' AS evil_acct_balance;

SET client_min_messages = warning;
DROP SCHEMA evil CASCADE;
RESET client_min_messages;
DROP ROLE sec_backend, sec_dba, sec_nobody;
SELECT * FROM billing.verify();
