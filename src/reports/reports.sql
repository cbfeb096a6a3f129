-- Usage reports and statements (docs/reports.md). Reports read the rollup
-- (billing.usage_rollup, quarter-hour sums brought up to date by
-- billing.rollup_usage) and the ledger entries it has not taken in yet, so
-- that they are exact for every committed transaction without the charge
-- path writing anything for them.

-- The quarter hour an instant falls in. Every time zone of today's tz
-- database is a whole number of quarter hours off UTC, so a day or a month
-- in billing.timezone is a run of whole slots; usage() reads the raw ledger
-- for a slot that a bucket boundary cuts (historic offsets).
CREATE OR REPLACE FUNCTION billing._usage_slot(at timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN pg_catalog.date_bin('15 minutes', at, '2000-01-01 00:00:00+00');

-- How far the rollup has come (0: nothing rolled up yet, before the first
-- billing.rollup_usage() writes the state row). A body in a string, not a
-- SQL-standard RETURN: on a Citus worker a call of the latter from a
-- delegated usage() fails with 42601 (syntax error at or near "RETURN").
CREATE OR REPLACE FUNCTION billing._rolled_up_to() RETURNS bigint
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT COALESCE((SELECT s.rolled_up_to FROM billing.rollup_state s), 0) $$;

-- The facts a report sums: usage and refund entries of the ledger with
-- their request's model, executing provider and scope. One definition
-- shared by rollup_usage, usage and verify, which filter it by account,
-- entry ids and time. A view: the planner (and Citus, which plans no SQL
-- function that queries a distributed table) sees through it to the
-- ledger's indexes. A request is joined by its account too, which routes
-- a report of one account to that account's shard on Citus.
CREATE OR REPLACE VIEW billing._usage_facts AS
    SELECT l.account_id, l.entry_id, l.created_at, q.model,
           COALESCE(q.routing ->> 'provider', q.provider) AS provider, q.scope,
           (l.kind = 'usage')::integer AS requests,
           CASE WHEN l.kind = 'usage' THEN -l.amount_micros ELSE 0 END AS cost_micros,
           CASE WHEN l.kind = 'refund' THEN l.amount_micros ELSE 0 END AS refunded_micros,
           -- what margin() adds (0.3.0): the provider cost of a usage
           -- entry's request where known, and the count where not
           CASE WHEN l.kind = 'usage' THEN COALESCE(q.provider_cost_micros, 0) ELSE 0 END
               AS provider_cost_micros,
           (l.kind = 'usage' AND q.provider_cost_micros IS NULL)::integer AS uncosted
      FROM billing.ledger l
      LEFT JOIN billing.requests q ON q.account_id = l.account_id AND q.request_id = l.request_id
     WHERE l.kind IN ('usage', 'refund');

-- Whether the role that called a SECURITY DEFINER function is an admin:
-- the role set with SET ROLE, else the session's.
CREATE OR REPLACE FUNCTION billing._caller_is_admin() RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN pg_catalog.pg_has_role(
    CASE pg_catalog.current_setting('role') WHEN 'none' THEN SESSION_USER
         ELSE pg_catalog.current_setting('role')::name END,
    'billing_admin', 'MEMBER');

-- The common refusals of usage() and statement(): a window is two instants,
-- from_ts not after to_ts; an account that does not exist is PB404.
CREATE OR REPLACE FUNCTION billing._report_window(account_id bigint, from_ts timestamptz,
                                                  to_ts timestamptz) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF from_ts IS NULL OR to_ts IS NULL THEN
        RAISE EXCEPTION 'from_ts and to_ts are required'
            USING ERRCODE = '22023',
                  HINT = 'Give a window of two instants; ''-infinity'' and ''infinity'' are allowed.';
    END IF;
    IF from_ts > to_ts THEN
        RAISE EXCEPTION 'from_ts % is after to_ts %', from_ts, to_ts USING ERRCODE = '22023';
    END IF;
    IF account_id IS NOT NULL THEN
        PERFORM billing._account(account_id, false, false);
    END IF;
END $$;

-- The report behind usage() and margin(): their checks, groupings, buckets
-- and window, and every sum of the facts. Granted to no one: usage() shows
-- the app tier no provider cost.
CREATE OR REPLACE FUNCTION billing._usage_report(account_id bigint, from_ts timestamptz,
                                                 to_ts timestamptz, group_by text[])
RETURNS TABLE(bucket_start timestamptz, model text, provider text, scope text,
              requests bigint, cost_micros bigint, refunded_micros bigint,
              provider_cost_micros bigint, uncosted_requests bigint)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
-- short index-range queries whose cost estimates over a large ledger would
-- otherwise start JIT compilation, slower than the query itself
SET jit = off AS $$
DECLARE
    tz text := billing._setting('billing.timezone');
    unit text;
    word text;
    horizon bigint;
    lo timestamptz;
    hi timestamptz;
BEGIN
    IF group_by IS NULL OR array_position(group_by, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'group_by cannot be null or contain null'
            USING ERRCODE = '22023', HINT = 'Use ''{}'' for one row of totals.';
    END IF;
    FOREACH word IN ARRAY group_by LOOP
        IF word NOT IN ('hour', 'day', 'month', 'model', 'provider', 'scope') THEN
            RAISE EXCEPTION 'unknown grouping "%"', word
                USING ERRCODE = '22023',
                      HINT = 'Group by any of hour, day, month, model, provider and scope.';
        END IF;
        IF word IN ('hour', 'day', 'month') THEN
            IF unit IS NOT NULL AND unit <> word THEN
                RAISE EXCEPTION 'group_by names two time buckets, % and %', unit, word
                    USING ERRCODE = '22023', HINT = 'Group by at most one of hour, day and month.';
            END IF;
            unit := word;
        END IF;
    END LOOP;
    IF _usage_report.account_id IS NULL AND NOT billing._caller_is_admin() THEN
        RAISE EXCEPTION 'permission denied to report the usage of every account'
            USING ERRCODE = '42501', HINT = 'Name an account, or ask a billing_admin.';
    END IF;
    IF _usage_report.account_id IS NULL AND billing._distributed() THEN
        RAISE EXCEPTION 'billing.usage() of every account is not supported on Citus'
            USING ERRCODE = '0A000',
                  DETAIL = 'A report of every account would read every shard from inside a call delegated to one worker.',
                  HINT = 'Ask for each account''s usage (docs/citus.md).';
    END IF;
    PERFORM billing._report_window(_usage_report.account_id, from_ts, to_ts);

    horizon := billing._rolled_up_to();
    -- [lo, hi): the whole slots of the window. The rollup is read for the
    -- slots in it that no bucket boundary cuts; the ledger for the edges of
    -- the window, the cut slots (gaps) and every entry after the horizon.
    lo := CASE WHEN from_ts = '-infinity' THEN from_ts
               ELSE billing._usage_slot(from_ts + interval '15 minutes' - interval '1 microsecond') END;
    hi := CASE WHEN to_ts = 'infinity' THEN to_ts ELSE billing._usage_slot(to_ts) END;
    IF lo >= hi THEN
        lo := from_ts;
        hi := from_ts;
    END IF;
    -- EXECUTE plans with the values, so that an account's report reads its
    -- own index ranges; the account is written into the query, which Citus
    -- then routes to the account's shard (a parameter it would not).
    RETURN QUERY EXECUTE pg_catalog.replace($q$
    WITH slots AS MATERIALIZED (
        SELECT r.*, $4 IS NOT NULL
                    AND pg_catalog.date_trunc($4, r.slot_start, $5)
                        <> pg_catalog.date_trunc($4, r.slot_start + interval '15 minutes'
                                                     - interval '1 microsecond', $5) AS cut
          FROM billing.usage_rollup r
         WHERE ({account} IS NULL OR r.account_id = {account}) AND r.slot_start >= $7 AND r.slot_start < $8
    ), gaps AS (
        SELECT g.r FROM (SELECT pg_catalog.tstzrange($1, $7)
                         UNION ALL SELECT pg_catalog.tstzrange($8, $2)
                         UNION SELECT pg_catalog.tstzrange(s.slot_start, s.slot_start + interval '15 minutes')
                                 FROM slots s WHERE s.cut) g(r)
         WHERE NOT pg_catalog.isempty(g.r)
    ), facts AS (
        SELECT r.slot_start AS at, r.model, r.provider, r.scope,
               r.requests, r.cost_sum AS cost_micros, r.refunded_sum AS refunded_micros,
               r.provider_cost_sum AS provider_cost_micros, r.uncosted
          FROM slots r WHERE NOT r.cut
        UNION ALL
        SELECT f.created_at, f.model, f.provider, f.scope, f.requests, f.cost_micros, f.refunded_micros,
               f.provider_cost_micros, f.uncosted
          FROM billing._usage_facts f
         WHERE ({account} IS NULL OR f.account_id = {account}) AND f.entry_id > $3
           AND f.created_at >= $1 AND f.created_at < $2
        UNION ALL
        SELECT f.created_at, f.model, f.provider, f.scope, f.requests, f.cost_micros, f.refunded_micros,
               f.provider_cost_micros, f.uncosted
          FROM gaps g CROSS JOIN LATERAL
               -- OFFSET 0: one index range per gap, not a join of the account's entries
               (SELECT * FROM billing._usage_facts f
                 WHERE ({account} IS NULL OR f.account_id = {account}) AND f.entry_id <= $3
                   AND f.created_at >= pg_catalog.lower(g.r) AND f.created_at < pg_catalog.upper(g.r)
                OFFSET 0) f
    )
    SELECT CASE WHEN $4 IS NOT NULL THEN pg_catalog.date_trunc($4, f.at, $5) END,
           CASE WHEN 'model' = ANY ($6) THEN f.model END,
           CASE WHEN 'provider' = ANY ($6) THEN f.provider END,
           CASE WHEN 'scope' = ANY ($6) THEN f.scope END,
           pg_catalog.sum(f.requests)::bigint, pg_catalog.sum(f.cost_micros)::bigint,
           pg_catalog.sum(f.refunded_micros)::bigint, pg_catalog.sum(f.provider_cost_micros)::bigint,
           pg_catalog.sum(f.uncosted)::bigint
      FROM facts f
     GROUP BY 1, 2, 3, 4
     ORDER BY 1, 2, 3, 4
    $q$, '{account}', COALESCE(_usage_report.account_id::text, 'NULL::bigint'))
    USING from_ts, to_ts, horizon, unit, tz, group_by, lo, hi;
END $$;

CREATE OR REPLACE FUNCTION billing.usage(account_id bigint, from_ts timestamptz,
                                         to_ts timestamptz,
                                         group_by text[] DEFAULT '{day,model}')
RETURNS TABLE(bucket_start timestamptz, model text, provider text, scope text,
              requests bigint, cost_micros bigint, refunded_micros bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off AS $$
BEGIN
    RETURN QUERY SELECT r.bucket_start, r.model, r.provider, r.scope, r.requests, r.cost_micros,
                        r.refunded_micros
                   FROM billing._usage_report(usage.account_id, from_ts, to_ts, group_by) r;
END $$;

-- Revenue, refunds, provider cost and margin (docs/pricing.md, "Provider
-- costs and margin"): what usage() counts, with the provider costs beside.
CREATE OR REPLACE FUNCTION billing.margin(account_id bigint, from_ts timestamptz,
                                          to_ts timestamptz,
                                          group_by text[] DEFAULT '{day,provider}')
RETURNS TABLE(bucket_start timestamptz, model text, provider text, scope text,
              requests bigint, revenue_micros bigint, refunded_micros bigint,
              provider_cost_micros bigint, margin_micros bigint, uncosted_requests bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off AS $$
BEGIN
    RETURN QUERY SELECT r.bucket_start, r.model, r.provider, r.scope, r.requests, r.cost_micros,
                        r.refunded_micros, r.provider_cost_micros,
                        r.cost_micros - r.refunded_micros - r.provider_cost_micros,
                        r.uncosted_requests
                   FROM billing._usage_report(margin.account_id, from_ts, to_ts, group_by) r;
END $$;

CREATE OR REPLACE FUNCTION billing.statement(account_id bigint, from_ts timestamptz,
                                             to_ts timestamptz)
RETURNS TABLE(entry_id bigint, created_at timestamptz, kind text, amount_micros bigint,
              balance_after_micros bigint, request_id bigint, model text, reference text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off AS $$
BEGIN
    PERFORM billing._not_null('account_id', statement.account_id);
    PERFORM billing._report_window(statement.account_id, from_ts, to_ts);
    -- The entries of the window form runs of consecutive entries of the
    -- account (one run, unless a clock time fell out of order): each run
    -- starts from the balance before it (a checkpoint and the entries since)
    -- and adds up its own entries.
    -- The account is written into the query, which Citus then routes to the
    -- account's shard (a parameter it would not).
    RETURN QUERY EXECUTE pg_catalog.replace($q$
    WITH w AS (
        SELECT l.entry_id, l.created_at, l.kind, l.amount_micros, l.request_id, l.reference,
               pg_catalog.lag(l.entry_id) OVER (ORDER BY l.entry_id) AS prev
          FROM billing.ledger l
         WHERE l.account_id = {account} AND l.created_at >= $1 AND l.created_at < $2
           -- the lower bound again, in a form only (account_id, created_at)
           -- serves: the planner takes the account's share of "created_at
           -- >= $1" from the whole ledger's, which a busy account's recent
           -- entries inflate, and would read every entry of this account
           AND (l.account_id, l.created_at) >= ({account}, $1)
    ), r AS (
        SELECT w.*, pg_catalog.count(*) FILTER (
                        WHERE w.prev IS NULL OR EXISTS (
                            SELECT FROM billing.ledger x
                             WHERE x.account_id = {account}
                               AND x.entry_id > w.prev AND x.entry_id < w.entry_id))
                        OVER (ORDER BY w.entry_id) AS run
          FROM w
    ), b AS (
        SELECT r.*, (pg_catalog.first_value(r.entry_id) OVER runs) AS run_start,
               pg_catalog.sum(r.amount_micros) OVER (runs ROWS UNBOUNDED PRECEDING) AS run_sum
          FROM r WINDOW runs AS (PARTITION BY r.run ORDER BY r.entry_id)
    ), s AS MATERIALIZED (
        -- once per run, not per entry: the balance before the run is the
        -- latest checkpoint before it and the entries since
        SELECT x.run_start,
               COALESCE(k.balance_micros, 0) + COALESCE((
                   SELECT pg_catalog.sum(l.amount_micros) FROM billing.ledger l
                    WHERE l.account_id = {account}
                      AND l.entry_id > COALESCE(k.entry_id, 0) AND l.entry_id < x.run_start
                      -- the row comparison repeats the lower bound in a form
                      -- only the primary key serves: the planner cannot tell
                      -- how few of the account's entries lie in the range,
                      -- and would read them all through the (account_id,
                      -- created_at) index
                      AND (l.account_id, l.entry_id) > ({account}, COALESCE(k.entry_id, 0))), 0)
               AS balance_micros
          FROM (SELECT DISTINCT b.run_start FROM b) x
          LEFT JOIN LATERAL (
              SELECT k.entry_id, k.balance_micros FROM billing.ledger_checkpoints k
               WHERE k.account_id = {account} AND k.entry_id < x.run_start
               ORDER BY k.entry_id DESC LIMIT 1) k ON true
    )
    SELECT b.entry_id, b.created_at, b.kind, b.amount_micros,
           (s.balance_micros + b.run_sum)::bigint, b.request_id,
           -- a lookup per entry: a page never joins the whole requests table
           (SELECT q.model FROM billing.requests q
             WHERE q.account_id = {account} AND q.request_id = b.request_id),
           b.reference
      FROM b JOIN s USING (run_start)
     ORDER BY b.entry_id
    $q$, '{account}', statement.account_id::text) USING from_ts, to_ts;
END $$;

-- Folds the ledger into usage_rollup and ledger_checkpoints up to a horizon
-- below which every entry is committed or gone: entry ids are taken from a
-- sequence before the entry commits, so an id below the sequence's last
-- value may still be in flight. The horizon is a last value (candidate)
-- taken while some transactions ran; once all of them have ended (and no
-- transaction prepared before it is left), nothing at or below it can
-- appear any more. Safe to run concurrently (the state row serializes the
-- runs) and from pg_cron; returns the number of entries taken in.
CREATE OR REPLACE FUNCTION billing.rollup_usage() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    st billing.rollup_state;
    upto bigint;
    taken bigint := 0;
    n bigint;
BEGIN
    IF billing._distributed() THEN
        RAISE EXCEPTION 'billing.rollup_usage() is not supported on Citus'
            USING ERRCODE = '0A000',
                  DETAIL = 'Its horizon is one server''s: the last entry id of one sequence and the transactions of one node.',
                  HINT = 'Reports read the ledger itself on Citus (docs/citus.md).';
    END IF;
    -- an older snapshot would miss entries that committed after it began
    PERFORM billing._require_read_committed('billing.rollup_usage()');
    -- the state row is written by the first run, not by CREATE EXTENSION, so
    -- that a restored dump's row does not meet one of the install's
    INSERT INTO billing.rollup_state DEFAULT VALUES ON CONFLICT DO NOTHING;
    SELECT * INTO st FROM billing.rollup_state FOR UPDATE;
    FOR pass IN 1 .. 2 LOOP
        -- a candidate of an earlier run (pass 1), or the one just taken (pass 2)
        IF st.candidate IS NOT NULL
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_locks k
                            WHERE k.locktype = 'virtualxid' AND k.granted
                              AND k.virtualxid = ANY (st.candidate_vxids))
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_prepared_xacts p
                            WHERE p.prepared <= st.candidate_at) THEN
            upto := st.candidate;
            WITH f AS (
                SELECT l.account_id, billing._usage_slot(l.created_at) AS slot_start, l.model,
                       l.provider, l.scope, pg_catalog.sum(l.requests)::bigint AS requests,
                       pg_catalog.sum(l.cost_micros) AS cost_micros,
                       pg_catalog.sum(l.refunded_micros) AS refunded_micros,
                       pg_catalog.sum(l.provider_cost_micros) AS provider_cost_micros,
                       pg_catalog.sum(l.uncosted)::bigint AS uncosted
                  FROM billing._usage_facts l
                 WHERE l.entry_id > st.rolled_up_to AND l.entry_id <= upto
                 GROUP BY 1, 2, 3, 4, 5)
            INSERT INTO billing.usage_rollup AS r
            SELECT * FROM f
            ON CONFLICT (account_id, slot_start, model, provider, scope) DO UPDATE
               SET requests = r.requests + excluded.requests,
                   cost_sum = r.cost_sum + excluded.cost_sum,
                   refunded_sum = r.refunded_sum + excluded.refunded_sum,
                   provider_cost_sum = r.provider_cost_sum + excluded.provider_cost_sum,
                   uncosted = r.uncosted + excluded.uncosted;
            -- a checkpoint at every 1024th entry of an account since its last one
            WITH a AS (
                SELECT DISTINCT l.account_id FROM billing.ledger l
                 WHERE l.entry_id > st.rolled_up_to AND l.entry_id <= upto),
            c AS (
                SELECT a.account_id, COALESCE(k.entry_id, 0) AS entry_id,
                       COALESCE(k.balance_micros, 0) AS balance_micros
                  FROM a LEFT JOIN LATERAL (
                      SELECT k.entry_id, k.balance_micros FROM billing.ledger_checkpoints k
                       WHERE k.account_id = a.account_id ORDER BY k.entry_id DESC LIMIT 1) k ON true),
            e AS (
                SELECT l.account_id, l.entry_id,
                       c.balance_micros + pg_catalog.sum(l.amount_micros) OVER w AS balance_micros,
                       pg_catalog.row_number() OVER w AS n
                  FROM c JOIN billing.ledger l
                    ON l.account_id = c.account_id AND l.entry_id > c.entry_id AND l.entry_id <= upto
                WINDOW w AS (PARTITION BY l.account_id ORDER BY l.entry_id))
            INSERT INTO billing.ledger_checkpoints
            SELECT e.account_id, e.entry_id, e.balance_micros FROM e WHERE e.n % 1024 = 0;
            SELECT pg_catalog.count(*) INTO n FROM billing.ledger l
             WHERE l.entry_id > st.rolled_up_to AND l.entry_id <= upto;
            taken := taken + n;
            st.rolled_up_to := upto;
            st.candidate := NULL;
            st.rolled_up_at := pg_catalog.clock_timestamp();
        END IF;
        EXIT WHEN pass = 2 OR st.candidate IS NOT NULL;
        -- the next candidate: the last id handed out, and who might hold one
        st.candidate := COALESCE(pg_catalog.pg_sequence_last_value(
                            pg_catalog.pg_get_serial_sequence('billing.ledger', 'entry_id')::regclass),
                            0);
        st.candidate_at := pg_catalog.clock_timestamp();
        SELECT COALESCE(pg_catalog.array_agg(k.virtualxid), '{}') INTO st.candidate_vxids
          FROM pg_catalog.pg_locks k
         WHERE k.locktype = 'virtualxid' AND k.granted AND k.mode = 'ExclusiveLock'
           AND k.pid <> pg_catalog.pg_backend_pid();
        IF st.candidate <= st.rolled_up_to THEN
            st.candidate := NULL;
            EXIT;
        END IF;
    END LOOP;
    UPDATE billing.rollup_state
       SET rolled_up_to = st.rolled_up_to, candidate = st.candidate,
           candidate_vxids = st.candidate_vxids, candidate_at = st.candidate_at,
           rolled_up_at = st.rolled_up_at;
    RETURN taken;
END $$;

-- The invariants of reports, for billing.verify(): the rollup holds exactly
-- the ledger's facts up to its horizon, and each checkpoint the sum of its
-- account's entries up to it.
CREATE OR REPLACE FUNCTION billing._verify_reports(account_id bigint)
RETURNS TABLE(account_id bigint, problem text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    WITH h AS (SELECT billing._rolled_up_to() AS rolled_up_to),
    l AS (
        SELECT f.account_id, billing._usage_slot(f.created_at) AS slot_start, f.model,
               f.provider, f.scope, sum(f.requests) AS requests,
               sum(f.cost_micros) AS cost_micros, sum(f.refunded_micros) AS refunded_micros,
               sum(f.provider_cost_micros) AS provider_cost_micros, sum(f.uncosted) AS uncosted
          FROM h, billing._usage_facts f
         WHERE (_verify_reports.account_id IS NULL OR f.account_id = _verify_reports.account_id)
           AND f.entry_id <= h.rolled_up_to
         GROUP BY 1, 2, 3, 4, 5),
    r AS (
        SELECT r.* FROM billing.usage_rollup r
         WHERE _verify_reports.account_id IS NULL OR r.account_id = _verify_reports.account_id)
    SELECT COALESCE(l.account_id, r.account_id),
           format('usage rollup at %s for model %s, provider %s, scope %s: %s requests, %s cost, %s refunded'
                  ' but the ledger has %s, %s, %s',
                  COALESCE(l.slot_start, r.slot_start), COALESCE(l.model, r.model),
                  COALESCE(l.provider, r.provider), COALESCE(l.scope, r.scope),
                  COALESCE(r.requests, 0), COALESCE(r.cost_sum, 0), COALESCE(r.refunded_sum, 0),
                  COALESCE(l.requests, 0), COALESCE(l.cost_micros, 0), COALESCE(l.refunded_micros, 0))
           || CASE WHEN (r.provider_cost_sum, r.uncosted) IS DISTINCT FROM (l.provider_cost_micros, l.uncosted)
                   THEN format('; provider cost %s, %s uncosted but the requests have %s, %s',
                               COALESCE(r.provider_cost_sum, 0), COALESCE(r.uncosted, 0),
                               COALESCE(l.provider_cost_micros, 0), COALESCE(l.uncosted, 0))
                   ELSE '' END
      FROM l FULL JOIN r
        ON r.account_id = l.account_id AND r.slot_start = l.slot_start
       AND r.model IS NOT DISTINCT FROM l.model AND r.provider IS NOT DISTINCT FROM l.provider
       AND r.scope IS NOT DISTINCT FROM l.scope
     WHERE (r.requests, r.cost_sum, r.refunded_sum, r.provider_cost_sum, r.uncosted)
           IS DISTINCT FROM (l.requests, l.cost_micros, l.refunded_micros, l.provider_cost_micros, l.uncosted)
    UNION ALL
    SELECT c.account_id,
           format('checkpoint at entry %s holds balance %s, the entries up to it total %s%s',
                  c.entry_id, c.balance_micros, t.total,
                  CASE WHEN c.entry_id > h.rolled_up_to THEN ' (and it is past the rollup)' ELSE '' END)
      FROM h, billing.ledger_checkpoints c
      -- one pass over each account's entries, not one sum per checkpoint
      LEFT JOIN (SELECT e.account_id, e.entry_id,
                        sum(e.amount_micros) OVER (PARTITION BY e.account_id ORDER BY e.entry_id) AS total
                   FROM billing.ledger e
                  WHERE e.account_id IN (SELECT k.account_id FROM billing.ledger_checkpoints k)
                    AND (_verify_reports.account_id IS NULL OR e.account_id = _verify_reports.account_id)) t
        ON t.account_id = c.account_id AND t.entry_id = c.entry_id
     WHERE (_verify_reports.account_id IS NULL OR c.account_id = _verify_reports.account_id)
       AND (t.total IS DISTINCT FROM c.balance_micros OR c.entry_id > h.rolled_up_to);
END;
