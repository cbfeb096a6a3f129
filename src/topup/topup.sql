-- topup: SQL interface. The rules are in docs/topup.md.

CREATE OR REPLACE FUNCTION billing.configure_auto_topup(account_id bigint, threshold_micros bigint,
                                             amount_micros bigint, enabled boolean DEFAULT true,
                                             target_micros bigint DEFAULT NULL,
                                             max_per_month_micros bigint DEFAULT NULL)
RETURNS void LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_configure_auto_topup';

CREATE OR REPLACE FUNCTION billing.complete_topup(topup_id bigint, succeeded boolean,
                                       payment_reference text DEFAULT NULL,
                                       failure_reason text DEFAULT NULL)
RETURNS jsonb LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_complete_topup';

-- The calendar month of "at" in billing.timezone and the account's pending
-- and succeeded top-ups created in it: the one definition of what a monthly
-- cap counts (topup.c under the top-up lock, balance(), verify()).
CREATE OR REPLACE FUNCTION billing._topup_month(account_id bigint, at timestamptz,
                                                OUT month date, OUT month_start timestamptz,
                                                OUT resets_at timestamptz, OUT used_micros bigint)
LANGUAGE plpgsql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tz text := billing._setting('billing.timezone');
BEGIN
    -- PL/pgSQL, not SQL: Citus plans no SQL function's parameters
    month := pg_catalog.date_trunc('month', at AT TIME ZONE tz)::date;
    month_start := month::timestamp AT TIME ZONE tz;
    resets_at := (month + interval '1 month')::timestamp AT TIME ZONE tz;
    SELECT COALESCE(pg_catalog.sum(t.amount_micros), 0)::bigint INTO used_micros
      FROM billing.topups t
     WHERE t.account_id = _topup_month.account_id AND t.status IN ('pending', 'succeeded')
       AND t.created_at >= month_start AND t.created_at < resets_at;
END $$;
