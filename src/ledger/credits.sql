-- Credit grants that expire (docs/credits.md). A grant is a 'grant' ledger
-- entry (> 0) and a row of billing.grants; an expiry is an 'expiry' entry
-- (< 0) of the grant. What is left of each grant is not stored: it is
-- derived from the ledger by billing._grant_remainders, the one definition
-- of the consumption order, which balance(), expire_credits() and verify()
-- share. The charge path does nothing for grants. Entries are posted and
-- the available amount moved by billing._move only (ledger/ledger.c).

-- The remainders of account_id's grants, in the order they are used up:
-- the earliest expires_at first (NULL, never, after every expiring grant),
-- at equal expiry promotional before paid, then the older grant; money that
-- is not a grant is used last. A reversal (docs/topup.md) is no usage: a
-- void takes its grant's unused remainder first, and the rest, like every
-- other reversal, from money that is not a grant. Walks the ledger in entry order; a run of
-- debits between two other entries is used up as one. The walk starts at the
-- latest grant before which every grant is spent for good (spent_entry_id,
-- set by expire_credits): there the grants hold nothing and the rest of the
-- money is the sum of the entries before it. from_scratch walks from the
-- account's first grant instead (verify() proves both agree).
-- spent_entry_id is the entry after which the grant is empty, NULL while it
-- has money.
CREATE OR REPLACE FUNCTION billing._grant_remainders(account_id bigint,
                                                    from_scratch boolean DEFAULT false)
RETURNS TABLE(grant_id bigint, remaining_micros bigint, spent_entry_id bigint)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    start_id bigint;
    ids bigint[];
    rems bigint[];
    spent bigint[];
    n integer;
    plain bigint;           -- money that is not a grant; below zero: a debt
    e record;
    k integer;
    d bigint;
    take bigint;
BEGIN
    SELECT s.entry_id INTO start_id
      FROM (SELECT g.entry_id,
                   pg_catalog.max(COALESCE(g.spent_entry_id, 9223372036854775807))
                       OVER (ORDER BY g.entry_id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                       AS spent_before
              FROM billing.grants g WHERE g.account_id = _grant_remainders.account_id) s
     WHERE s.spent_before IS NULL OR (NOT from_scratch AND s.spent_before < s.entry_id)
     ORDER BY s.entry_id DESC LIMIT 1;
    IF start_id IS NULL THEN
        RETURN;
    END IF;

    SELECT pg_catalog.array_agg(g.grant_id ORDER BY g.expires_at NULLS LAST,
                                g.category <> 'promotional', g.grant_id)
      INTO ids
      FROM billing.grants g
     WHERE g.account_id = _grant_remainders.account_id AND g.entry_id >= start_id;
    n := pg_catalog.cardinality(ids);
    rems := pg_catalog.array_fill(0::bigint, ARRAY[n]);
    spent := pg_catalog.array_fill(NULL::bigint, ARRAY[n]);
    SELECT COALESCE(pg_catalog.sum(l.amount_micros), 0)::bigint INTO plain
      FROM billing.ledger l
     WHERE l.account_id = _grant_remainders.account_id AND l.entry_id < start_id;

    FOR e IN
        SELECT pg_catalog.max(s.entry_id) AS last_id, pg_catalog.min(s.kind) AS kind,
               pg_catalog.min(s.grant_id) AS grant_id, pg_catalog.sum(s.amount_micros)::bigint AS amount
          FROM (SELECT l.entry_id, l.kind, l.grant_id, l.amount_micros, x.debit,
                       pg_catalog.count(*) FILTER (WHERE NOT x.debit) OVER (ORDER BY l.entry_id) AS seg
                  FROM billing.ledger l
                 CROSS JOIN LATERAL (SELECT l.amount_micros < 0 AND l.kind NOT IN ('expiry', 'reversal')) x(debit)
                 WHERE l.account_id = _grant_remainders.account_id AND l.entry_id >= start_id) s
         GROUP BY s.seg, s.debit ORDER BY s.seg, s.debit
    LOOP
        k := pg_catalog.array_position(ids, e.grant_id);
        IF e.kind IN ('grant', 'expiry') AND k IS NULL THEN
            CONTINUE;           -- an entry of no known grant: verify() reports it
        END IF;
        IF e.kind = 'grant' THEN
            -- a grant posted while the account is in debt covers the debt first
            take := LEAST(e.amount, GREATEST(-plain, 0));
            plain := plain + take;
            rems[k] := e.amount - take;
        ELSIF e.kind = 'expiry' THEN
            rems[k] := rems[k] + e.amount;
        ELSIF e.amount > 0 THEN
            plain := plain + e.amount;
            CONTINUE;
        ELSE
            -- usage takes from the grants in order; a reversal from its own
            -- grant only (a void's), then, as usage, from plain money
            d := -e.amount;
            FOR i IN 1 .. n LOOP
                EXIT WHEN d = 0;
                CONTINUE WHEN e.kind = 'reversal' AND i IS DISTINCT FROM k;
                IF rems[i] > 0 THEN
                    take := LEAST(rems[i], d);
                    rems[i] := rems[i] - take;
                    d := d - take;
                    IF rems[i] = 0 THEN
                        spent[i] := e.last_id;
                    END IF;
                END IF;
            END LOOP;
            plain := plain - d;
            CONTINUE;
        END IF;
        IF rems[k] = 0 THEN
            spent[k] := e.last_id;
        END IF;
    END LOOP;

    -- the multi-array unnest is FROM-clause syntax and cannot be schema-qualified
    RETURN QUERY SELECT u.g, u.r, u.s FROM unnest(ids, rems, spent) WITH ORDINALITY u(g, r, s, o)
                  ORDER BY u.o;
END $$;

-- balance()'s "credits": the grants with money left that have not expired,
-- in the order they are used up.
CREATE OR REPLACE FUNCTION billing._credits(account_id bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    ids bigint[];
    rems bigint[];
    credits jsonb;
BEGIN
    -- PL/pgSQL, not SQL: Citus plans no SQL function's parameters; the
    -- remainders apart from the query of the grants, which on Citus runs on
    -- the shard, where billing._grant_remainders could not query further
    SELECT pg_catalog.array_agg(r.grant_id ORDER BY r.o), pg_catalog.array_agg(r.remaining_micros ORDER BY r.o)
      INTO ids, rems
      FROM billing._grant_remainders(_credits.account_id) WITH ORDINALITY r(grant_id, remaining_micros, spent_entry_id, o);
    -- the multi-array unnest is FROM-clause syntax and cannot be schema-qualified
    SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'grant_id', g.grant_id, 'category', g.category, 'granted_micros', g.amount_micros,
               'remaining_micros', u.remaining_micros, 'expires_at', g.expires_at) ORDER BY u.o),
           '[]'::jsonb) INTO credits
      FROM unnest(ids, rems) WITH ORDINALITY u(grant_id, remaining_micros, o)
      JOIN billing.grants g ON g.account_id = _credits.account_id AND g.grant_id = u.grant_id
     WHERE u.remaining_micros > 0 AND (g.expires_at IS NULL OR g.expires_at > pg_catalog.now());
    RETURN credits;
END $$;

CREATE OR REPLACE FUNCTION billing.grant_credits(account_id bigint, amount_micros bigint,
                                                 expires_at timestamptz DEFAULT NULL,
                                                 category text DEFAULT 'promotional',
                                                 idempotency_key text DEFAULT NULL,
                                                 reference text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    acct billing.accounts;
    earlier billing.grants;
    new_id bigint;
    entry bigint;
BEGIN
    PERFORM billing._not_null('account_id, amount_micros, category',
                              account_id, amount_micros, category);
    IF amount_micros <= 0 THEN
        RAISE EXCEPTION 'amount_micros must be positive'
            USING ERRCODE = '22023', DETAIL = pg_catalog.format('Got %s micros.', amount_micros);
    END IF;
    IF category NOT IN ('promotional', 'paid') THEN
        RAISE EXCEPTION 'invalid grant category "%"', category
            USING ERRCODE = '22023', HINT = 'Use "promotional" or "paid".';
    END IF;
    PERFORM billing._check_length(idempotency_key, 'idempotency key');

    -- the account row, locked: concurrent grants with one key wait here
    acct := billing._account(account_id, true, true);
    PERFORM billing._require_prepaid(acct, 'Credits are granted to prepaid accounts only.');
    IF idempotency_key IS NOT NULL THEN
        SELECT * INTO earlier FROM billing.grants g
         WHERE g.account_id = grant_credits.account_id AND g.idempotency_key = grant_credits.idempotency_key;
        IF FOUND THEN
            RETURN billing._key_replay(idempotency_key,
                                       earlier.amount_micros = amount_micros AND earlier.category = category
                                       AND earlier.expires_at IS NOT DISTINCT FROM expires_at,
                                       'Grant', earlier.grant_id, 'made');
        END IF;
    END IF;
    IF expires_at <= pg_catalog.clock_timestamp() THEN
        RAISE EXCEPTION 'expires_at must be in the future'
            USING ERRCODE = '22023', DETAIL = pg_catalog.format('It is %s.', expires_at);
    END IF;

    new_id := pg_catalog.nextval(pg_catalog.pg_get_serial_sequence('billing.grants', 'grant_id'));
    entry := billing._move(account_id, amount_micros, 'grant', reference, grant_id => new_id);
    INSERT INTO billing.grants (account_id, grant_id, category, amount_micros, expires_at, entry_id,
                                idempotency_key, reference)
    OVERRIDING SYSTEM VALUE
    VALUES (grant_credits.account_id, new_id, grant_credits.category, grant_credits.amount_micros,
            grant_credits.expires_at, entry, grant_credits.idempotency_key, grant_credits.reference);
    PERFORM billing._event(grant_credits.account_id, 'credits_granted',
        pg_catalog.jsonb_build_object('grant_id', new_id, 'entry_id', entry,
                                      'amount_micros', grant_credits.amount_micros,
                                      'category', grant_credits.category,
                                      'expires_at', grant_credits.expires_at,
                                      'reference', grant_credits.reference));
    RETURN new_id;
END $$;

-- Posts an expiry entry for what is left of every grant whose expires_at has
-- passed; returns how many it posted. Accounts are taken one by one in
-- account order, each with every slice locked to commit (the cold paths'
-- exclusive gate), so that two runs expire a grant once and wait for each
-- other rather than deadlock.
CREATE OR REPLACE FUNCTION billing.expire_credits() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    acct bigint;
    settling bigint;
    avail bigint;
    gr record;
    take bigint;
    entry bigint;
    posted integer := 0;
BEGIN
    -- each statement must see what committed before the locks were taken
    PERFORM billing._require_writable('billing.expire_credits()');
    PERFORM billing._require_read_committed('expire_credits()');
    FOR acct IN
        SELECT DISTINCT g.account_id
          FROM billing.grants g JOIN billing.accounts a USING (account_id)
         WHERE g.spent_entry_id IS NULL AND g.expires_at <= pg_catalog.clock_timestamp()
           AND a.billing_type = 'prepaid'
         ORDER BY 1
    LOOP
        -- No charge, credit or settlement that moves the available amount is
        -- in flight on the account once every slice is locked. A settlement
        -- that costs exactly its hold moves nothing, so it only holds its
        -- request row: the requests locked right now may post usage before
        -- the expiry entry and commit after it, so their holds are kept back
        -- from every grant; the others are share-locked to commit, so that
        -- none of them settles until this run ends.
        avail := billing._lock_available(acct);
        settling := billing._holds(acct)
             - (SELECT COALESCE(pg_catalog.sum(x.hold_micros), 0)
                  FROM (SELECT r.hold_micros FROM billing.requests r
                         WHERE r.account_id = acct AND billing._request_open(r.status)
                         FOR SHARE SKIP LOCKED) x);

        FOR gr IN
            SELECT r.grant_id, r.remaining_micros, r.spent_entry_id, x.expires_at
              FROM billing._grant_remainders(acct) WITH ORDINALITY r(grant_id, remaining_micros, spent_entry_id, o)
              JOIN billing.grants x ON x.account_id = acct AND x.grant_id = r.grant_id
             WHERE x.spent_entry_id IS NULL
             ORDER BY r.o
        LOOP
            IF gr.remaining_micros = 0 THEN
                -- empty for good: later derivations can start after it
                UPDATE billing.grants x SET spent_entry_id = gr.spent_entry_id
                 WHERE x.account_id = acct AND x.grant_id = gr.grant_id;
                CONTINUE;
            END IF;
            IF gr.expires_at > pg_catalog.clock_timestamp() OR gr.expires_at IS NULL THEN
                CONTINUE;
            END IF;
            -- never below zero available: the rest at a later run
            take := LEAST(gr.remaining_micros - settling, avail);
            IF take <= 0 THEN
                CONTINUE;
            END IF;
            entry := billing._move(acct, -take, 'expiry', grant_id => gr.grant_id);
            PERFORM billing._event(acct, 'credits_expired',
                pg_catalog.jsonb_build_object('grant_id', gr.grant_id, 'entry_id', entry,
                                              'amount_micros', take,
                                              'remaining_micros', gr.remaining_micros - take));
            avail := avail - take;
            posted := posted + 1;
            IF take = gr.remaining_micros THEN
                UPDATE billing.grants x SET spent_entry_id = entry
                 WHERE x.account_id = acct AND x.grant_id = gr.grant_id;
            END IF;
        END LOOP;
    END LOOP;
    RETURN posted;
END $$;

-- verify()'s part for grants: remainders, the bounded walk, expiry entries.
CREATE OR REPLACE FUNCTION billing._verify_grants(only_account bigint)
RETURNS TABLE(account_id bigint, problem text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
-- PL/pgSQL, not SQL: Citus plans no SQL function's parameters
RETURN QUERY
WITH acct AS (
    SELECT DISTINCT g.account_id FROM billing.grants g
     WHERE _verify_grants.only_account IS NULL OR g.account_id = _verify_grants.only_account
), bounded AS (
    SELECT a.account_id, b.grant_id, b.remaining_micros
      FROM acct a CROSS JOIN LATERAL billing._grant_remainders(a.account_id) b
), walk AS (
    SELECT a.account_id, f.grant_id, f.remaining_micros AS full_rem, b.remaining_micros AS bounded_rem
      FROM acct a
     CROSS JOIN LATERAL billing._grant_remainders(a.account_id, true) f
      LEFT JOIN bounded b ON b.account_id = a.account_id AND b.grant_id = f.grant_id
)
SELECT w.account_id, pg_catalog.format('grant %s: remainder %s is outside [0, %s]',
                                       w.grant_id, w.full_rem, g.amount_micros)
  FROM walk w JOIN billing.grants g USING (account_id, grant_id)
 WHERE w.full_rem < 0 OR w.full_rem > g.amount_micros
UNION ALL
SELECT w.account_id, pg_catalog.format('grant %s: remainder %s from its account''s first grant, %s from the last spent one',
                                       w.grant_id, w.full_rem, COALESCE(w.bounded_rem, 0))
  FROM walk w WHERE w.full_rem <> COALESCE(w.bounded_rem, 0)
UNION ALL
SELECT w.account_id, pg_catalog.format('grant %s is marked spent at entry %s but %s micros are left',
                                       w.grant_id, g.spent_entry_id, w.full_rem)
  FROM walk w JOIN billing.grants g USING (account_id, grant_id)
 WHERE g.spent_entry_id IS NOT NULL AND w.full_rem <> 0
UNION ALL
SELECT g.account_id, pg_catalog.format('grant %s has %s grant entries for %s micros, entry %s expected',
                                       g.grant_id, COALESCE(e.n, 0), COALESCE(e.total, 0), g.entry_id)
  FROM billing.grants g JOIN acct USING (account_id)
  LEFT JOIN (SELECT l.account_id, l.grant_id, pg_catalog.count(*) AS n,
                    pg_catalog.sum(l.amount_micros) AS total, pg_catalog.min(l.entry_id) AS entry_id
               FROM billing.ledger l JOIN acct USING (account_id)
              WHERE l.kind = 'grant' GROUP BY 1, 2) e USING (account_id, grant_id)
 WHERE e.n IS DISTINCT FROM 1 OR e.total <> g.amount_micros OR e.entry_id <> g.entry_id
UNION ALL
SELECT l.account_id, pg_catalog.format('ledger entry %s: %s entry of grant %s, which %s',
                                       l.entry_id, l.kind, l.grant_id,
                                       CASE WHEN g.grant_id IS NULL THEN 'does not exist'
                                            WHEN g.expires_at IS NULL THEN 'never expires'
                                            ELSE 'expires at ' || g.expires_at END)
  FROM billing.ledger l
  LEFT JOIN billing.grants g USING (account_id, grant_id)
 WHERE (_verify_grants.only_account IS NULL OR l.account_id = _verify_grants.only_account)
   AND ((l.kind IN ('grant', 'expiry') AND g.grant_id IS NULL)
        OR (l.kind = 'expiry' AND (g.expires_at IS NULL OR l.created_at < g.expires_at)))
UNION ALL
SELECT l.account_id, pg_catalog.format('ledger entry %s: a %s entry linked to grant %s',
                                       l.entry_id, l.kind, l.grant_id)
  FROM billing.ledger l
 WHERE (_verify_grants.only_account IS NULL OR l.account_id = _verify_grants.only_account)
   AND l.grant_id IS NOT NULL AND l.kind NOT IN ('grant', 'expiry', 'reversal');
END $$;
