-- credits: grant_credits, the consumption order, expire_credits (docs/credits.md).
-- Time is an input: expiries are set a second or an hour from now and the
-- test sleeps past the short ones; no output shows a date.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS billing;
DROP ROLE IF EXISTS cr_backend, cr_dba;
RESET client_min_messages;

SELECT billing.set_model('cr-img', 'image', 'cr-prov', 'Credits Provider', 'cr-img-v1');
SELECT billing.set_price('cr-img',
    '[{"type":"output","metric":"image","unit_price_micros":40000,"unit_size":1}]',
    NULL, '2020-01-01') > 0 AS priced;

-- what a refusal must leave alone
CREATE FUNCTION regress.credit_state(acct bigint) RETURNS text LANGUAGE sql AS $$
SELECT concat_ws(' ',
    'balance', billing.balance(acct) ->> 'balance_micros',
    'available', billing.balance(acct) ->> 'available_micros',
    'entries', (SELECT count(*) FROM billing.ledger l WHERE l.account_id = acct),
    'grants', (SELECT count(*) FROM billing.grants g WHERE g.account_id = acct),
    'cr_grants', (SELECT count(*) FROM billing.grants g JOIN billing.accounts a USING (account_id)
                   WHERE a.external_id LIKE 'cr-%'))
$$;
-- the credits of balance() without the dates; #1 is the account's first grant
CREATE FUNCTION regress.credits(acct bigint) RETURNS text LANGUAGE sql AS $$
SELECT COALESCE(string_agg(format('#%s %s %s/%s',
                                  (c ->> 'grant_id')::bigint + 1
                                  - (SELECT min(g.grant_id) FROM billing.grants g WHERE g.account_id = acct),
                                  c ->> 'category',
                                  c ->> 'remaining_micros', c ->> 'granted_micros'), ', ' ORDER BY o),
                '(none)')
  FROM jsonb_array_elements(billing.balance(acct) -> 'credits') WITH ORDINALITY x(c, o)
$$;
CREATE FUNCTION regress.charge(acct bigint, images integer) RETURNS bigint LANGUAGE sql AS $$
SELECT (billing.charge(acct, 'cr-img', jsonb_build_object('n', images),
                       jsonb_build_object('images', (SELECT jsonb_agg('{"width":1024,"height":1024}'::jsonb)
                                                       FROM generate_series(1, images)))) ->> 'cost_micros')::bigint
$$;

SELECT billing.create_account('cr-a') AS a \gset
SELECT billing.create_account('cr-post', 'postpaid') AS post \gset
SELECT billing.create_account('cr-off') AS off \gset
UPDATE billing.accounts SET active = false WHERE account_id = :off;
SELECT billing.add_funds(:a, 1000000, 'shared-key') > 0 AS funded;

-- a grant, and its replay with the same key
SELECT billing.grant_credits(:a, 250000, now() + interval '1 hour', 'promotional', 'g-1', 'welcome') AS g1 \gset
SELECT regress.credit_state(:a) AS before \gset
SELECT billing.grant_credits(:a, 250000, (SELECT expires_at FROM billing.grants WHERE grant_id = :g1),
                             'promotional', 'g-1') = :g1 AS replayed;
SELECT regress.credit_state(:a) = :'before' AS replay_moved_nothing;
-- a key of add_funds is not a key of grants, and the reverse
SELECT billing.grant_credits(:a, 10000, NULL, 'paid', 'shared-key') > :g1 AS own_namespace;
SELECT billing.add_funds(:a, 1000000, 'g-1') > 0 AS funds_with_grant_key;
SELECT kind, amount_micros, grant_id IS NOT NULL AS linked, reference
  FROM billing.ledger WHERE account_id = :a ORDER BY entry_id;

-- every refusal, with its SQLSTATE, leaving everything as it was
SELECT regress.credit_state(:a) AS before \gset
SELECT regexp_replace(regress.try(format('SELECT billing.grant_credits(%s, %s, %s, %s, %s)', a, amt, exp, cat, k)),
                      'account \d+', 'account N') AS refusal
  FROM (VALUES
    (:a::text, 'NULL', 'NULL', '''promotional''', 'NULL'),
    ('NULL', '1000', 'NULL', '''promotional''', 'NULL'),
    (:a::text, '1000', 'NULL', 'NULL', 'NULL'),
    (:a::text, '0', 'NULL', '''promotional''', 'NULL'),
    (:a::text, '-1000', 'NULL', '''promotional''', 'NULL'),
    (:a::text, '1000', 'NULL', '''gift''', 'NULL'),
    (:a::text, '1000', 'now() - interval ''1 second''', '''promotional''', 'NULL'),
    (:a::text, '1000', 'clock_timestamp()', '''promotional''', 'NULL'),
    (:a::text, '1000', '''-infinity''', '''paid''', 'NULL'),
    (:a::text, '1000', 'NULL', '''paid''', ''''''),
    (:a::text, '1000', 'NULL', '''paid''', 'repeat(''k'', 257)'),
    ('999999', '1000', 'NULL', '''promotional''', 'NULL'),
    (:off::text, '1000', 'NULL', '''promotional''', 'NULL'),
    (:post::text, '1000', 'NULL', '''promotional''', 'NULL'),
    -- the key of grant 1 with another amount, category, expiry (or none)
    (:a::text, '250001', 'now() + interval ''1 hour''', '''promotional''', '''g-1'''),
    (:a::text, '250000', format('%L::timestamptz', (SELECT expires_at FROM billing.grants WHERE grant_id = :g1)),
     '''paid''', '''g-1'''),
    (:a::text, '250000', 'NULL', '''promotional''', '''g-1''')) v(a, amt, exp, cat, k);
SELECT regress.credit_state(:a) = :'before' AS refusals_changed_nothing;
SELECT regress.credit_state(:post) AS postpaid_state;

--
-- The consumption order: the earliest expiry first, at equal expiry
-- promotional before paid, then the older grant; grants without expiry after
-- every expiring one (promotional first, then the older); other money last.
--
SELECT billing.create_account('cr-order') AS o \gset
SELECT now() + interval '2 hours' AS later \gset
SELECT billing.add_funds(:o, 100000) > 0 AS funded;
-- #1 paid_later, #2 paid_never, #3 promo_later, #4 promo_never, #5 paid_soon, #6 promo_later_newer
SELECT billing.grant_credits(:o, 300000, :'later', 'paid') > 0 AS paid_later,
       billing.grant_credits(:o, 50000, NULL, 'paid') > 0 AS paid_never,
       billing.grant_credits(:o, 200000, :'later', 'promotional') > 0 AS promo_later,
       billing.grant_credits(:o, 60000, NULL, 'promotional') > 0 AS promo_never,
       billing.grant_credits(:o, 100000, now() + interval '1 hour', 'paid') > 0 AS paid_soon,
       billing.grant_credits(:o, 70000, :'later', 'promotional') > 0 AS promo_later_newer;
SELECT regress.credits(:o);
SELECT regress.charge(:o, 3);       -- 120000: paid_soon, then 20000 of promo_later
SELECT regress.credits(:o);
SELECT regress.charge(:o, 10);      -- 400000: promo_later, promo_later_newer, 50000 of paid_later
SELECT regress.credits(:o);
SELECT regress.charge(:o, 6);       -- 240000: paid_later, promo_never, 30000 of paid_never
SELECT regress.credits(:o);
SELECT regress.charge(:o, 2);       -- 80000: paid_never, then 60000 of the funds
SELECT regress.credits(:o), billing.balance(:o) ->> 'balance_micros' AS balance;
-- holds are not usage
SELECT billing.grant_credits(:o, 40000, now() + interval '1 hour') AS g_held \gset
SELECT billing.begin_request(:o, 'cr-img', '{"n":2}') ->> 'request_id' AS held_rid \gset
SELECT regress.credits(:o), billing.balance(:o) ->> 'available_micros' AS available;
SELECT billing.cancel_request(:held_rid) ->> 'status';

-- a grant posted while the balance is below zero covers the debt first
SELECT billing.create_account('cr-debt') AS d \gset
SELECT billing.grant_credits(:d, 40000, now() + interval '1 hour') > 0 AS granted;
SELECT billing.begin_request(:d, 'cr-img', '{"n":1}') ->> 'request_id' AS rid \gset
SELECT billing.complete_request(:rid, '{"images":[{"width":1024,"height":1024},{"width":1024,"height":1024}]}') ->> 'cost_micros' AS overrun_cost;
SELECT billing.balance(:d) ->> 'balance_micros' AS in_debt, regress.credits(:d);
SELECT billing.grant_credits(:d, 100000, now() + interval '1 hour', 'paid') > 0 AS granted;
SELECT billing.balance(:d) ->> 'balance_micros' AS balance, regress.credits(:d);

--
-- Expiry. A grant that has passed expires_at is usable until expire_credits
-- takes it; expiry takes exactly what is left, never below zero available.
--
SELECT billing.expire_credits() AS nothing_due_yet;
SELECT billing.create_account('cr-exp') AS e \gset
SELECT billing.create_account('cr-hold') AS h \gset
SELECT billing.add_funds(:e, 30000) > 0 AS funded;
SELECT billing.grant_credits(:e, 100000, clock_timestamp() + interval '1 second') AS e_short,
       billing.grant_credits(:e, 50000, now() + interval '1 hour') AS e_long \gset
SELECT regress.charge(:e, 1);       -- 40000 of the short grant
-- no funds: only the grant, most of it held by a request in flight
SELECT billing.grant_credits(:h, 100000, clock_timestamp() + interval '1 second') AS h_grant \gset
SELECT billing.begin_request(:h, 'cr-img', '{"n":2}') ->> 'request_id' AS h_rid \gset
SELECT pg_sleep(1.2);
SELECT regress.credits(:e) AS expired_not_listed;
SELECT regress.charge(:e, 1);       -- still usable: 40000 more of it
-- one expiry entry for each account: what is left of the short grant of
-- cr-exp, and of cr-hold's grant what its hold leaves available
SELECT billing.expire_credits() AS posted;
SELECT account_id = :e AS exp_account, amount_micros, grant_id = :e_short AS of_short_grant
  FROM billing.ledger WHERE kind = 'expiry' ORDER BY entry_id;
SELECT regress.credits(:e), billing.balance(:e) ->> 'balance_micros' AS balance;
SELECT billing.balance(:h) ->> 'balance_micros' AS balance,
       billing.balance(:h) ->> 'available_micros' AS available;
SELECT billing.expire_credits() AS posted_again;
-- the request settles for one image: used from the grant first
SELECT billing.complete_request(:h_rid, '{"images":[{"width":1024,"height":1024}]}') ->> 'cost_micros' AS cost;
SELECT billing.balance(:h) ->> 'available_micros' AS available;
SELECT billing.expire_credits() AS rest_posted;
SELECT billing.expire_credits() AS nothing_left;
SELECT amount_micros FROM billing.ledger WHERE account_id = :h ORDER BY entry_id;
SELECT billing.balance(:h) ->> 'balance_micros' AS balance,
       billing.balance(:h) ->> 'available_micros' AS available;
SELECT grant_id = :h_grant AS h, spent_entry_id IS NOT NULL AS spent
  FROM billing.grants WHERE account_id IN (:e, :h) ORDER BY grant_id;

-- expire_credits needs statements that see what committed before its locks
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT regress.try('SELECT billing.expire_credits()');
ROLLBACK;

--
-- The admin tier, with real login roles
--
CREATE ROLE cr_backend LOGIN;
GRANT billing_app TO cr_backend;
CREATE ROLE cr_dba LOGIN;
GRANT billing_admin TO cr_dba;
GRANT USAGE ON SCHEMA regress TO cr_backend, cr_dba;
SET SESSION AUTHORIZATION cr_backend;
SELECT regress.try(format('SELECT billing.grant_credits(%s, 1000)', :a));
SELECT regress.try('SELECT billing.expire_credits()');
SELECT regress.try('SELECT billing._grant_remainders(1)');
SELECT regress.try('SELECT count(*) FROM billing.grants');
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION cr_dba;
SELECT billing.grant_credits(:a, 1000, NULL, 'paid') > 0 AS admin_grants;
SELECT billing.expire_credits() AS admin_expires;
SELECT regress.try('SELECT billing._grant_remainders(1)');
SELECT regress.try('UPDATE billing.grants SET amount_micros = 1');
RESET SESSION AUTHORIZATION;
REVOKE USAGE ON SCHEMA regress FROM cr_backend, cr_dba;
DROP ROLE cr_backend, cr_dba;

SELECT * FROM billing.verify();
