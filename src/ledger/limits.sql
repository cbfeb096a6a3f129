-- Spend limits and balance alerts (docs/limits.md). Admission and settlement
-- against limits, and the alerts' checks after a debit, are in C
-- (limits.c, alerts.c); this file holds the cold parts.

-- The calendar period (day, ISO week, month) in billing.timezone that
-- contains at: [starts_at, ends_at). The one definition of a limit's period.
CREATE OR REPLACE FUNCTION billing._limit_period(period text, at timestamptz,
                                      OUT starts_at timestamptz, OUT ends_at timestamptz)
LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
    SELECT l AT TIME ZONE tz, (l + ('1 ' || period)::interval) AT TIME ZONE tz
      FROM (SELECT billing._setting('billing.timezone') AS tz) s,
           LATERAL (SELECT pg_catalog.date_trunc(period, at AT TIME ZONE s.tz) AS l) t
$$;

-- An instant as billing.timezone shows it, with its offset:
-- 2026-12-02 00:00:00+00, 2026-12-02 00:00:00+05:30.
CREATE OR REPLACE FUNCTION billing._local_time(at timestamptz) RETURNS text
LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.to_char(at AT TIME ZONE tz, 'YYYY-MM-DD HH24:MI:SS')
           || CASE WHEN off < interval '0' THEN '-' ELSE '+' END
           || pg_catalog.to_char(pg_catalog.abs(EXTRACT(HOUR FROM off)), 'FM00')
           || CASE WHEN EXTRACT(MINUTE FROM off) = 0 THEN ''
                   ELSE ':' || pg_catalog.to_char(pg_catalog.abs(EXTRACT(MINUTE FROM off)), 'FM00') END
      FROM (SELECT billing._setting('billing.timezone') AS tz) s,
           LATERAL (SELECT (at AT TIME ZONE s.tz) - (at AT TIME ZONE 'UTC') AS off) o
$$;

-- Usage charged since from_ts that a limit of scope applies to (refunds do
-- not give it back): a new limit starts from it.
CREATE OR REPLACE FUNCTION billing._limit_spent(account_id bigint, scope text, from_ts timestamptz)
RETURNS bigint LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- PL/pgSQL, not SQL: Citus plans no SQL function's parameters
    RETURN (SELECT COALESCE(-pg_catalog.sum(l.amount_micros), 0)::bigint
              FROM billing.ledger l
              LEFT JOIN billing.requests r ON r.account_id = l.account_id AND r.request_id = l.request_id
             WHERE l.account_id = _limit_spent.account_id AND l.kind = 'usage'
               AND l.created_at >= from_ts
               AND (_limit_spent.scope IS NULL OR r.scope = _limit_spent.scope));
END $$;

-- balance()'s "limits": each limit in its current period. A period that
-- ended without a request since has spent nothing yet. In PL/pgSQL, each
-- limit's holds apart from the query of the limits: Citus plans no SQL
-- function's parameters, and runs a function of billing's inside a query of
-- the account's tables on the shard, where it could not query further.
CREATE OR REPLACE FUNCTION billing._limits(account_id bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    base jsonb;
    l record;
    held bigint;
    ends timestamptz;
    now_ts timestamptz;
    limits jsonb := '[]';
BEGIN
    -- the limits and their slices in one query of the account's shards
    SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'scope', sl.scope, 'period', sl.period, 'limit_micros', sl.limit_micros,
               'avail', s.avail, 'period_end', s.period_end)
             ORDER BY sl.scope NULLS FIRST, pg_catalog.array_position('{day,week,month}'::text[], sl.period))
      INTO base
      FROM billing.spend_limits sl
     CROSS JOIN LATERAL (SELECT pg_catalog.sum(x.available_micros)::bigint AS avail,
                                pg_catalog.max(x.period_end) AS period_end
                           FROM billing.limit_slices x
                          WHERE x.account_id = sl.account_id AND x.limit_id = sl.limit_id) s
     WHERE sl.account_id = _limits.account_id;
    FOR l IN SELECT * FROM pg_catalog.jsonb_to_recordset(COALESCE(base, '[]'))
                        AS x(scope text, period text, limit_micros bigint, avail bigint, period_end timestamptz)
    LOOP
        held := billing._holds(_limits.account_id, l.scope, NULL);
        now_ts := pg_catalog.clock_timestamp();
        SELECT p.ends_at INTO ends FROM billing._limit_period(l.period, now_ts) p;
        limits := limits || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
            'scope', l.scope, 'period', l.period, 'limit_micros', l.limit_micros,
            'spent_micros', CASE WHEN l.period_end > now_ts THEN l.limit_micros - l.avail - held ELSE 0 END,
            'held_micros', held,
            'remaining_micros', GREATEST(CASE WHEN l.period_end > now_ts THEN l.avail
                                              ELSE l.limit_micros - held END, 0),
            'resets_at', CASE WHEN l.period_end > now_ts THEN l.period_end ELSE ends END));
    END LOOP;
    RETURN limits;
END $$;

CREATE OR REPLACE FUNCTION billing.set_spend_limit(account_id bigint, limit_micros bigint,
                                        period text DEFAULT 'month', scope text DEFAULT NULL)
RETURNS void LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_set_spend_limit';

-- Replaces the account's alert thresholds. Each starts armed when the
-- available amount is at or above it; one set while the amount is already
-- below fires at once (and waits to be re-armed).
CREATE OR REPLACE FUNCTION billing.set_balance_alerts(account_id bigint, thresholds_micros bigint[])
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    available bigint;
    t bigint;
BEGIN
    PERFORM billing._not_null('account_id', account_id);
    IF thresholds_micros IS NULL THEN
        RAISE EXCEPTION 'thresholds_micros must not be null'
            USING ERRCODE = '22023', HINT = 'Use an empty array for no alerts.';
    END IF;
    IF pg_catalog.array_ndims(thresholds_micros) > 1 THEN
        RAISE EXCEPTION 'thresholds_micros must be a one-dimensional array' USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT FROM pg_catalog.unnest(thresholds_micros) u(v) WHERE u.v IS NULL OR u.v < 0) THEN
        RAISE EXCEPTION 'alert thresholds must be zero or positive'
            USING ERRCODE = '22023', DETAIL = 'Thresholds are amounts in micros; NULL is not one.';
    END IF;
    IF (SELECT pg_catalog.count(DISTINCT u.v) <> pg_catalog.count(*)
          FROM pg_catalog.unnest(thresholds_micros) u(v)) THEN
        RAISE EXCEPTION 'alert thresholds must be distinct' USING ERRCODE = '22023';
    END IF;
    PERFORM billing._account(set_balance_alerts.account_id, false, true);
    -- under the account's exclusive gate: an admission in flight commits
    -- first and is counted here, a later one sees the alerts (ledger.h,
    -- account_has_alerts)
    available := billing._lock_available(set_balance_alerts.account_id);
    DELETE FROM billing.balance_alerts b WHERE b.account_id = set_balance_alerts.account_id;
    INSERT INTO billing.balance_alerts (account_id, threshold_micros, armed)
    SELECT set_balance_alerts.account_id, u.v, available >= u.v
      FROM pg_catalog.unnest(thresholds_micros) u(v);
    FOR t IN SELECT u.v FROM pg_catalog.unnest(thresholds_micros) u(v) WHERE available < u.v ORDER BY u.v
    LOOP
        PERFORM billing._event(set_balance_alerts.account_id, 'balance_alert',
            pg_catalog.jsonb_build_object('threshold_micros', t, 'available_micros', available));
    END LOOP;
END $$;

-- Whether an account has limits or alerts is cached with the account
-- (ledger.c), and the limits that apply to a scope with the limits
-- (limits.c): adding, removing or changing them drops the caches.
CREATE OR REPLACE TRIGGER spend_limits_changed
    AFTER INSERT OR UPDATE OF limit_micros OR DELETE OR TRUNCATE ON billing.spend_limits
    FOR EACH STATEMENT EXECUTE FUNCTION billing._cache_changed();
CREATE OR REPLACE TRIGGER balance_alerts_changed AFTER INSERT OR DELETE OR TRUNCATE ON billing.balance_alerts
    FOR EACH STATEMENT EXECUTE FUNCTION billing._cache_changed();
