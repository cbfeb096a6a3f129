-- billing.verify(): every invariant of the data model, the invoices' included
-- (so it is installed after invoice.sql).

-- Every invariant of the data model; no rows means all hold. In SQL around
-- PL/pgSQL: a PL/pgSQL function's argument cannot share the name of its
-- result column account_id, and Citus plans no SQL function's parameters.
CREATE OR REPLACE FUNCTION billing.verify(account_id bigint DEFAULT NULL)
RETURNS TABLE(account_id bigint, problem text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM billing._verify(verify.account_id)
$$;

-- VOLATILE for the SET LOCAL on Citus; each account's checks see one snapshot.
CREATE OR REPLACE FUNCTION billing._verify(only_account bigint)
RETURNS TABLE(account_id bigint, problem text)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    one bigint;
BEGIN
    IF NOT billing._distributed() THEN
        RETURN QUERY SELECT * FROM billing._verify_checks(only_account);
        RETURN QUERY SELECT * FROM billing._verify_reports(only_account);
    ELSE
        -- (usage reports are not on Citus yet, docs/citus.md)
        -- On Citus, one account at a time, so that every query goes to the
        -- account's shard. The checks call functions of billing's inside
        -- queries of the account's tables, which then run on the shard and
        -- query the same account's shards there: allowed for this
        -- transaction, on every node (SET LOCAL is propagated).
        SET LOCAL citus.propagate_set_commands = 'local';
        SET LOCAL citus.allow_nested_distributed_execution = on;
        FOR one IN SELECT a.account_id FROM billing.accounts a
                    WHERE only_account IS NULL OR a.account_id = only_account ORDER BY 1 LOOP
            RETURN QUERY SELECT * FROM billing._verify_checks(one);
        END LOOP;
        RESET citus.allow_nested_distributed_execution;
    END IF;
    IF only_account IS NULL THEN
        RETURN QUERY SELECT * FROM billing._verify_invoice_numbers();
        RETURN QUERY SELECT * FROM billing._verify_discounts();
    END IF;
END $$;

-- The invariants of one account, or of all (only_account NULL), but for
-- the invoice numbers, which span accounts.
CREATE OR REPLACE FUNCTION billing._verify_checks(only_account bigint)
RETURNS TABLE(account_id bigint, problem text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
RETURN QUERY
WITH acct AS NOT MATERIALIZED (
    SELECT a.account_id, a.billing_type, a.credit_limit_micros, a.currency
      FROM billing.accounts a
     WHERE _verify_checks.only_account IS NULL OR a.account_id = _verify_checks.only_account
), sums AS NOT MATERIALIZED (
    SELECT a.account_id, a.billing_type,
           CASE WHEN a.billing_type = 'postpaid' THEN a.credit_limit_micros ELSE 0 END AS credit,
           (SELECT COALESCE(sum(l.amount_micros), 0) FROM billing.ledger l
             WHERE l.account_id = a.account_id) AS balance,
           billing._holds(a.account_id) AS held,
           (SELECT COALESCE(sum(s.available_micros), 0) FROM billing.account_slices s
             WHERE s.account_id = a.account_id) AS available,
           (SELECT count(*) FROM billing.account_slices s
             WHERE s.account_id = a.account_id AND s.slice = 0) AS has_slice0,
           (SELECT count(*) FROM billing.account_slices s
             WHERE s.account_id = a.account_id AND s.available_micros < 0) AS negative,
           (SELECT count(*) FROM billing.account_slices s
             WHERE s.account_id = a.account_id AND s.slice <> 0 AND s.available_micros <> 0) AS others,
           (SELECT count(*) FROM billing.account_slices s
             WHERE s.account_id = a.account_id
               AND (s.fast_micros < 0 OR s.fast_micros > GREATEST(s.available_micros, 0))) AS bad_budgets
      FROM acct a
)
SELECT s.account_id, format('available %s <> balance %s - holds %s + credit limit %s',
                            s.available, s.balance, s.held, s.credit)
  FROM sums s WHERE s.available <> s.balance - s.held + s.credit
UNION ALL
-- the prepaid credit kept and what invoices consumed of it agree with the
-- ledger (docs/invoices.md, "How a postpaid account's money works")
SELECT s.account_id, format('balance %s <> kept prepaid credit %s - unbilled usage %s - unpaid invoices %s',
                            s.balance, p.credit_micros, p.unbilled_micros, p.unpaid_micros)
  FROM sums s CROSS JOIN LATERAL billing._postpaid_position(s.account_id) p
 WHERE s.billing_type = 'postpaid'
   AND s.balance <> p.credit_micros - p.unbilled_micros - p.unpaid_micros
UNION ALL
SELECT s.account_id, 'account has no slice 0' FROM sums s WHERE s.has_slice0 = 0
UNION ALL
SELECT s.account_id, 'a slice other than 0 is negative, or slice 0 is and others are not zero'
  FROM sums s
 WHERE s.negative > 0
   AND (s.others > 0 OR EXISTS (SELECT 1 FROM billing.account_slices x
                                 WHERE x.account_id = s.account_id AND x.slice <> 0
                                   AND x.available_micros < 0))
UNION ALL
SELECT s.account_id, format('fast-path budget below zero or above the available amount in %s slices',
                            s.bad_budgets)
  FROM sums s WHERE s.bad_budgets > 0
UNION ALL
SELECT r.account_id, format('request %s: unknown status %s', r.request_id, r.status)
  FROM billing.requests r JOIN acct a USING (account_id)
 WHERE NOT (billing._request_open(r.status) OR billing._request_finished(r.status))
UNION ALL
SELECT r.account_id, format('request %s: hold %s does not match its state %s (estimate %s)',
                            r.request_id, r.hold_micros, r.status, r.cost_estimate_micros)
  FROM billing.requests r JOIN acct a USING (account_id)
 WHERE CASE WHEN billing._request_open(r.status)
            THEN r.hold_micros <> r.cost_estimate_micros OR r.cost_micros IS NOT NULL
                 OR r.completed_at IS NOT NULL
            ELSE r.hold_micros <> 0 OR r.cost_micros IS NULL OR r.completed_at IS NULL END
    OR r.cost_estimate_micros < 0 OR r.cost_micros < 0
UNION ALL
SELECT r.account_id, format('request %s: currency %s, its account pays in %s',
                            r.request_id, r.currency, a.currency)
  FROM billing.requests r JOIN acct a USING (account_id)
 WHERE r.currency <> a.currency
UNION ALL
-- an unfinished request has no usage yet
SELECT r.account_id, format('request %s: cost %s but usage entries total %s',
                            r.request_id, COALESCE(r.cost_micros::text, 'none'), COALESCE(-u.total, 0))
  FROM billing.requests r JOIN acct a USING (account_id)
  -- aggregated once: a lookup per request would read the account's whole ledger each time
  LEFT JOIN (SELECT l.account_id, l.request_id, sum(l.amount_micros) AS total, count(*) AS n
               FROM billing.ledger l
              WHERE l.kind = 'usage' AND l.request_id IS NOT NULL
                AND (_verify_checks.only_account IS NULL OR l.account_id = _verify_checks.only_account)
              GROUP BY l.account_id, l.request_id) u
         ON u.account_id = r.account_id AND u.request_id = r.request_id
 WHERE COALESCE(-u.total, 0) <> COALESCE(r.cost_micros, 0) OR u.n > 1
UNION ALL
SELECT l.account_id, format('ledger entry %s names request %s, not a request of its account',
                            l.entry_id, l.request_id)
  FROM billing.ledger l JOIN acct a USING (account_id)
 WHERE l.request_id IS NOT NULL
   AND NOT EXISTS (SELECT FROM billing.requests r
                    WHERE r.request_id = l.request_id AND r.account_id = l.account_id)
UNION ALL
SELECT l.account_id, format('ledger entry %s names top-up %s, not a top-up of its account',
                            l.entry_id, l.topup_id)
  FROM billing.ledger l JOIN acct a USING (account_id)
 WHERE l.topup_id IS NOT NULL
   AND NOT EXISTS (SELECT FROM billing.topups t
                    WHERE t.topup_id = l.topup_id AND t.account_id = l.account_id)
UNION ALL
SELECT t.account_id, format('top-up %s is %s but has %s ledger entries for %s micros',
                            t.topup_id, t.status, COALESCE(e.n, 0), COALESCE(e.total, 0))
  FROM billing.topups t JOIN acct a USING (account_id)
  LEFT JOIN (SELECT l.account_id, l.topup_id, count(*) AS n, sum(l.amount_micros) AS total
               FROM billing.ledger l
              WHERE l.topup_id IS NOT NULL
                AND (_verify_checks.only_account IS NULL OR l.account_id = _verify_checks.only_account)
              GROUP BY l.account_id, l.topup_id) e
         ON e.account_id = t.account_id AND e.topup_id = t.topup_id
 WHERE CASE WHEN t.status = 'succeeded' THEN e.n IS DISTINCT FROM 1 OR e.total <> t.amount_micros
            ELSE e.n IS NOT NULL END
UNION ALL
SELECT o.account_id, format('%s rows of an account that does not exist', o.tbl)
  FROM (SELECT l.account_id, 'ledger' AS tbl FROM billing.ledger l
        UNION SELECT r.account_id, 'request' FROM billing.requests r
        UNION SELECT s.account_id, 'slice' FROM billing.account_slices s
        UNION SELECT g.account_id, 'grant' FROM billing.grants g) o
 WHERE (_verify_checks.only_account IS NULL OR o.account_id = _verify_checks.only_account)
   AND NOT EXISTS (SELECT 1 FROM billing.accounts a WHERE a.account_id = o.account_id)
UNION ALL
SELECT l.account_id, format('ledger entry %s: invalid kind %s or amount %s',
                            l.entry_id, l.kind, l.amount_micros)
  FROM billing.ledger l JOIN acct a USING (account_id)
 WHERE NOT billing._ledger_entry_valid(l.kind, l.amount_micros, l.request_id IS NOT NULL)
UNION ALL
-- refunds: of a request of the same account, never more than it was charged
SELECT f.account_id, format('refunds of request %s total %s micros, %s',
                            f.request_id, f.total,
                            CASE WHEN r.account_id IS DISTINCT FROM f.account_id
                                 THEN 'but it is no request of this account'
                                 ELSE format('more than its charge of %s', r.cost_micros) END)
  FROM (SELECT l.account_id, l.request_id, sum(l.amount_micros) AS total
          FROM billing.ledger l
         WHERE l.kind = 'refund' AND (_verify_checks.only_account IS NULL OR l.account_id = _verify_checks.only_account)
         GROUP BY l.account_id, l.request_id) f
  LEFT JOIN billing.requests r ON r.request_id = f.request_id
 WHERE r.account_id IS DISTINCT FROM f.account_id OR f.total > COALESCE(r.cost_micros, 0)
UNION ALL
-- each refund and adjustment row has its own ledger entry, of its kind and amount
SELECT c.account_id, format('%s %s does not match ledger entry %s', c.what, c.id, c.entry_id)
  FROM (SELECT f.account_id, 'refund' AS what, f.refund_id AS id, f.entry_id, f.amount_micros,
               f.request_id
          FROM billing.refunds f
        UNION ALL
        SELECT d.account_id, 'adjustment', d.entry_id, d.entry_id, d.amount_micros, NULL
          FROM billing.adjustments d) c
 WHERE (_verify_checks.only_account IS NULL OR c.account_id = _verify_checks.only_account)
   AND NOT EXISTS (SELECT FROM billing.ledger l
                    WHERE l.account_id = c.account_id AND l.entry_id = c.entry_id
                      AND l.kind = c.what AND l.amount_micros = c.amount_micros
                      AND l.request_id IS NOT DISTINCT FROM c.request_id)
UNION ALL
SELECT l.account_id, format('refund entry %s is recorded in no refund', l.entry_id)
  FROM billing.ledger l
 WHERE l.kind = 'refund' AND (_verify_checks.only_account IS NULL OR l.account_id = _verify_checks.only_account)
   AND NOT EXISTS (SELECT FROM billing.refunds f
                    WHERE f.account_id = l.account_id AND f.entry_id = l.entry_id)
;
RETURN QUERY SELECT * FROM billing._verify_invoices(_verify_checks.only_account);
RETURN QUERY SELECT * FROM billing._verify_grants(_verify_checks.only_account);
RETURN QUERY SELECT * FROM billing._verify_contract_prices(_verify_checks.only_account);
-- 0.3.0: a request's provider cost is NULL while it is unfinished, at least
-- 0 after, and the one routing reports where both are known (a request
-- settled before 0.3.0 has none)
RETURN QUERY
SELECT r.account_id, format('request %s (%s): provider cost %s, routing reports %s',
                            r.request_id, r.status, COALESCE(r.provider_cost_micros::text, 'none'),
                            COALESCE((r.routing -> 'upstream_cost_micros')::text, 'none'))
  FROM billing.requests r
 WHERE (_verify_checks.only_account IS NULL OR r.account_id = _verify_checks.only_account)
   AND CASE WHEN billing._request_open(r.status) THEN r.provider_cost_micros IS NOT NULL
            ELSE r.provider_cost_micros < 0
                 OR (r.routing ? 'upstream_cost_micros'
                     AND to_jsonb(r.provider_cost_micros) <> r.routing -> 'upstream_cost_micros') END;
RETURN QUERY SELECT * FROM billing._verify_reversals(_verify_checks.only_account);
END $$;

-- Contract prices (docs/pricing.md, "Price books and discounts"): a
-- request's price version is a list version or one of its book, of its
-- model; its discount comes with a list version only, from its book, in
-- force at its start, for its model and provider.
CREATE OR REPLACE FUNCTION billing._verify_contract_prices(only_account bigint)
RETURNS TABLE(account_id bigint, problem text)
-- PL/pgSQL, not SQL: Citus plans no SQL function's parameters
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
RETURN QUERY
SELECT r.account_id,
       format('request %s: price version %s is no list version or version of its book %s for model %s',
              r.request_id, r.price_id, COALESCE(r.price_book, '(the list)'), r.model)
  FROM billing.requests r
  LEFT JOIN billing.prices p ON p.price_id = r.price_id
 WHERE (_verify_contract_prices.only_account IS NULL OR r.account_id = _verify_contract_prices.only_account) AND r.price_id IS NOT NULL
   AND (p.price_id IS NULL OR p.model <> r.model
        OR (p.price_book IS NOT NULL AND p.price_book IS DISTINCT FROM r.price_book))
UNION ALL
SELECT r.account_id,
       format('request %s: discount %s does not apply to it (book %s, price version %s, at its start)',
              r.request_id, r.discount_id, COALESCE(r.price_book, '(the list)'), r.price_id)
  FROM billing.requests r
  LEFT JOIN billing.prices p ON p.price_id = r.price_id
  LEFT JOIN billing.discounts d ON d.discount_id = r.discount_id
 WHERE (_verify_contract_prices.only_account IS NULL OR r.account_id = _verify_contract_prices.only_account) AND r.discount_id IS NOT NULL
   AND (d.discount_id IS NULL OR p.price_book IS NOT NULL OR p.price_id IS NULL
        OR d.price_book IS DISTINCT FROM r.price_book
        OR COALESCE(d.model, r.model) <> r.model OR COALESCE(d.provider, r.provider) <> r.provider
        OR d.effective_from > r.created_at OR d.effective_until <= r.created_at)
UNION ALL
SELECT a.account_id, format('assignment %s names price book %s, which does not exist',
                            a.assignment_id, a.price_book)
  FROM billing.price_book_assignments a
 WHERE (_verify_contract_prices.only_account IS NULL OR a.account_id = _verify_contract_prices.only_account) AND a.price_book IS NOT NULL
   AND NOT EXISTS (SELECT FROM billing.price_books b WHERE b.price_book = a.price_book);
END $$;

-- Discounts of one target (book, model, provider; NULLs equal) never overlap.
CREATE OR REPLACE FUNCTION billing._verify_discounts()
RETURNS TABLE(account_id bigint, problem text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
SELECT NULL::bigint, format('discounts %s and %s of price book %s overlap', a.discount_id,
                            b.discount_id, a.price_book)
  FROM billing.discounts a
  JOIN billing.discounts b ON b.price_book = a.price_book AND b.discount_id > a.discount_id
   AND b.model IS NOT DISTINCT FROM a.model AND b.provider IS NOT DISTINCT FROM a.provider
   AND pg_catalog.tstzrange(b.effective_from, b.effective_until)
       && pg_catalog.tstzrange(a.effective_from, a.effective_until)
$$;
