-- Reversals (docs/topup.md, "Chargebacks"): money a payment provider took
-- back. The money moves in C (ledger/reversals.c); these declare it, and
-- verify()'s part for reversals and for the monthly cap of auto top-up.

CREATE OR REPLACE FUNCTION billing.reverse_topup(topup_id bigint, amount_micros bigint DEFAULT NULL,
                                                 reason text DEFAULT 'chargeback',
                                                 disable_auto_topup boolean DEFAULT true,
                                                 idempotency_key text DEFAULT NULL)
RETURNS jsonb LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_reverse_topup';

CREATE OR REPLACE FUNCTION billing.reverse_funds(entry_id bigint, amount_micros bigint DEFAULT NULL,
                                                 reason text DEFAULT 'chargeback',
                                                 idempotency_key text DEFAULT NULL)
RETURNS jsonb LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_reverse_funds';

CREATE OR REPLACE FUNCTION billing.void_grant(grant_id bigint, amount_micros bigint DEFAULT NULL,
                                              reason text DEFAULT NULL,
                                              idempotency_key text DEFAULT NULL)
RETURNS jsonb LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_void_grant';

-- verify()'s part for reversals and capped top-ups.
CREATE OR REPLACE FUNCTION billing._verify_reversals(only_account bigint)
RETURNS TABLE(account_id bigint, problem text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
-- PL/pgSQL, not SQL: Citus plans no SQL function's parameters
RETURN QUERY
WITH v AS (
    SELECT v.*, COALESCE(v.topup_id, v.funds_entry_id, v.grant_id) AS source_id
      FROM billing.reversals v
     WHERE _verify_reversals.only_account IS NULL OR v.account_id = _verify_reversals.only_account
), src AS (
    -- what each source credited (a grant: less its expiries), or NULL when it
    -- is no such source of the account
    SELECT x.account_id, x.source, x.source_id, pg_catalog.sum(x.amount_micros) AS reversed,
           CASE x.source
             WHEN 'topup' THEN (SELECT t.amount_micros FROM billing.topups t
                                 WHERE t.account_id = x.account_id AND t.topup_id = x.source_id
                                   AND t.status = 'succeeded')
             WHEN 'funds' THEN (SELECT l.amount_micros FROM billing.ledger l
                                 WHERE l.account_id = x.account_id AND l.entry_id = x.source_id
                                   AND l.kind = 'funds')
             ELSE (SELECT g.amount_micros
                          + COALESCE((SELECT pg_catalog.sum(e.amount_micros) FROM billing.ledger e
                                       WHERE e.account_id = g.account_id AND e.grant_id = g.grant_id
                                         AND e.kind = 'expiry'), 0)
                     FROM billing.grants g
                    WHERE g.account_id = x.account_id AND g.grant_id = x.source_id) END AS credited
      FROM v x GROUP BY 1, 2, 3
)
SELECT l.account_id, pg_catalog.format('reversal entry %s is recorded in no reversal of its amount',
                                       l.entry_id)
  FROM billing.ledger l
 WHERE l.kind = 'reversal'
   AND (_verify_reversals.only_account IS NULL OR l.account_id = _verify_reversals.only_account)
   AND NOT EXISTS (SELECT FROM billing.reversals v
                    WHERE v.account_id = l.account_id AND v.entry_id = l.entry_id
                      AND v.amount_micros = -l.amount_micros
                      AND v.grant_id IS NOT DISTINCT FROM l.grant_id)
UNION ALL
SELECT v.account_id, pg_catalog.format('reversal %s does not match ledger entry %s', v.reversal_id,
                                       v.entry_id)
  FROM v
 WHERE NOT EXISTS (SELECT FROM billing.ledger l
                    WHERE l.account_id = v.account_id AND l.entry_id = v.entry_id
                      AND l.kind = 'reversal' AND l.amount_micros = -v.amount_micros
                      AND l.grant_id IS NOT DISTINCT FROM v.grant_id)
UNION ALL
SELECT s.account_id, pg_catalog.format('reversals of %s %s total %s micros, %s', s.source, s.source_id,
                                       s.reversed,
                                       CASE WHEN s.credited IS NULL
                                            THEN 'but it is no reversible ' || s.source || ' of this account'
                                            ELSE pg_catalog.format('more than the %s it credited', s.credited) END)
  FROM src s WHERE s.credited IS NULL OR s.reversed > s.credited
UNION ALL
-- a top-up created under a cap: its month's pending and succeeded top-ups up to it
SELECT t.account_id, pg_catalog.format('top-up %s: the month''s top-ups up to it total %s micros, above its cap %s',
                                       t.topup_id, u.used, t.cap_micros)
  FROM billing.topups t
 CROSS JOIN LATERAL billing._topup_month(t.account_id, t.created_at) m
 CROSS JOIN LATERAL (SELECT pg_catalog.sum(x.amount_micros) AS used FROM billing.topups x
                      WHERE x.account_id = t.account_id AND x.topup_id <= t.topup_id
                        AND x.status IN ('pending', 'succeeded')
                        AND x.created_at >= m.month_start AND x.created_at < m.resets_at) u
 WHERE t.cap_micros IS NOT NULL AND t.status IN ('pending', 'succeeded')
   AND (_verify_reversals.only_account IS NULL OR t.account_id = _verify_reversals.only_account)
   AND u.used > t.cap_micros;
END $$;
