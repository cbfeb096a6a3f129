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
-- PL/pgSQL, not SQL: Citus plans no SQL function's parameters. Each check
-- is a statement of its own, whose joins all name account_id: on Citus each
-- runs on every shard alone.
RETURN QUERY
SELECT l.account_id, pg_catalog.format('reversal entry %s is recorded in no reversal of its amount',
                                       l.entry_id)
  FROM billing.ledger l
 WHERE l.kind = 'reversal'
   AND (_verify_reversals.only_account IS NULL OR l.account_id = _verify_reversals.only_account)
   AND NOT EXISTS (SELECT FROM billing.reversals v
                    WHERE v.account_id = l.account_id AND v.entry_id = l.entry_id
                      AND v.amount_micros = -l.amount_micros
                      AND v.grant_id IS NOT DISTINCT FROM l.grant_id);
RETURN QUERY
SELECT v.account_id, pg_catalog.format('reversal %s does not match ledger entry %s', v.reversal_id,
                                       v.entry_id)
  FROM billing.reversals v
 WHERE (_verify_reversals.only_account IS NULL OR v.account_id = _verify_reversals.only_account)
   AND NOT EXISTS (SELECT FROM billing.ledger l
                    WHERE l.account_id = v.account_id AND l.entry_id = v.entry_id
                      AND l.kind = 'reversal' AND l.amount_micros = -v.amount_micros
                      AND l.grant_id IS NOT DISTINCT FROM v.grant_id);
-- what each source credited (a grant: less its expiries), or NULL when it
-- is no such source of the account
RETURN QUERY
SELECT s.account_id, pg_catalog.format('reversals of %s %s total %s micros, %s', s.source, s.source_id,
                                       s.reversed,
                                       CASE WHEN s.credited IS NULL
                                            THEN 'but it is no reversible ' || s.source || ' of this account'
                                            ELSE pg_catalog.format('more than the %s it credited', s.credited) END)
  FROM (SELECT r.account_id, r.source, r.source_id, r.reversed,
               CASE r.source WHEN 'topup' THEN t.amount_micros
                             WHEN 'funds' THEN f.amount_micros
                             ELSE g.amount_micros + COALESCE(e.expired, 0) END AS credited
          FROM (SELECT x.account_id, x.source,
                       COALESCE(x.topup_id, x.funds_entry_id, x.grant_id) AS source_id,
                       pg_catalog.sum(x.amount_micros) AS reversed
                  FROM billing.reversals x
                 WHERE _verify_reversals.only_account IS NULL OR x.account_id = _verify_reversals.only_account
                 GROUP BY 1, 2, 3) r
          LEFT JOIN billing.topups t
                 ON r.source = 'topup' AND t.account_id = r.account_id AND t.topup_id = r.source_id
                AND t.status = 'succeeded'
          LEFT JOIN billing.ledger f
                 ON r.source = 'funds' AND f.account_id = r.account_id AND f.entry_id = r.source_id
                AND f.kind = 'funds'
          LEFT JOIN billing.grants g
                 ON r.source = 'grant' AND g.account_id = r.account_id AND g.grant_id = r.source_id
          LEFT JOIN (SELECT x.account_id, x.grant_id, pg_catalog.sum(x.amount_micros) AS expired
                       FROM billing.ledger x
                      WHERE x.kind = 'expiry'
                        AND (_verify_reversals.only_account IS NULL
                             OR x.account_id = _verify_reversals.only_account)
                      GROUP BY 1, 2) e
                 ON e.account_id = g.account_id AND e.grant_id = g.grant_id) s
 WHERE s.credited IS NULL OR s.reversed > s.credited;
RETURN QUERY
-- a top-up created under a cap: its month's pending and succeeded top-ups up
-- to it (the month of billing.timezone, as _topup_month has it); a window
-- by account, which Citus runs on each shard
SELECT t.account_id, pg_catalog.format('top-up %s: the month''s top-ups up to it total %s micros, above its cap %s',
                                       t.topup_id, t.used, t.cap_micros)
  FROM (SELECT x.account_id, x.topup_id, x.cap_micros,
               pg_catalog.sum(x.amount_micros) OVER (
                   PARTITION BY x.account_id,
                                pg_catalog.date_trunc('month', x.created_at AT TIME ZONE
                                                      billing._setting('billing.timezone'))
                   ORDER BY x.topup_id) AS used
          FROM billing.topups x
         WHERE x.status IN ('pending', 'succeeded')
           AND (_verify_reversals.only_account IS NULL OR x.account_id = _verify_reversals.only_account)) t
 WHERE t.cap_micros IS NOT NULL AND t.used > t.cap_micros;
END $$;
