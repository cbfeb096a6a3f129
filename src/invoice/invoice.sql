-- invoice: postpaid billing. Credit limits and their audit, the suggested
-- limit, switching an account's billing type, monthly invoices and their
-- payment. Every money movement goes through billing._move, every change of
-- the available amount that is not money through billing._adjust_available.

-- Micros in one minor unit of a currency (ISO 4217 exponents): invoice lines
-- are whole minor units. Currencies not listed have two decimals.
CREATE OR REPLACE FUNCTION billing._minor_unit_micros(currency text) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE
        WHEN currency IN ('BIF', 'CLP', 'DJF', 'GNF', 'ISK', 'JPY', 'KMF', 'KRW', 'PYG',
                          'RWF', 'UGX', 'UYI', 'VND', 'VUV', 'XAF', 'XOF', 'XPF') THEN 1000000
        WHEN currency IN ('BHD', 'IQD', 'JOD', 'KWD', 'LYD', 'OMR', 'TND') THEN 1000
        WHEN currency IN ('CLF', 'UYW') THEN 100
        ELSE 10000
    END::bigint
$$;

-- micros rounded half-up to whole units of unit micros; a negative amount
-- (a net debit of corrections) like its opposite, so -0.005 is -0.01
CREATE OR REPLACE FUNCTION billing._round_half_up(micros bigint, unit bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT (pg_catalog.sign(micros) * pg_catalog.div(pg_catalog.abs(micros::numeric) + unit / 2, unit)
            * unit)::bigint
$$;

-- Exact currency units of micros as a JSON number: 12500000 -> 12.5. The
-- one renderer of money, money_format() in C.
CREATE OR REPLACE FUNCTION billing._units(micros bigint) RETURNS numeric
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'billing_units';

-- A billing.* setting. Its C side loads the library, which defines the
-- settings, in a session that has not called into billing yet (a pg_cron
-- job, say).
CREATE OR REPLACE FUNCTION billing._setting(name text) RETURNS text
LANGUAGE C STABLE STRICT SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_setting';

-- Refuses (25000) a batch outside read committed: the batches (close_period,
-- expire_credits) lock and then need each later statement to see what
-- committed before their locks were granted. caller names the function.
CREATE OR REPLACE FUNCTION billing._require_read_committed(caller text) RETURNS void
LANGUAGE plpgsql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION '% must run at the read committed isolation level', caller
            USING ERRCODE = '25000';
    END IF;
END
$$;

-- A housekeeping function that may find nothing to do still refuses in a
-- read-only transaction (a hot standby), as every function that writes
-- does: a job scheduled there learns that it runs in the wrong place.
CREATE OR REPLACE FUNCTION billing._require_writable(caller text) RETURNS void
LANGUAGE plpgsql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF pg_catalog.current_setting('transaction_read_only')::boolean THEN
        RAISE EXCEPTION 'cannot execute % in a read-only transaction', caller
            USING ERRCODE = '25006';
    END IF;
END
$$;

-- Bounds of the calendar month that starts on period_start, in time zone tz.
CREATE OR REPLACE FUNCTION billing._period_bounds(period_start date, tz text,
                                       OUT starts timestamptz, OUT ends timestamptz)
LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
    SELECT period_start::timestamp AT TIME ZONE tz,
           (period_start + interval '1 month')::timestamp AT TIME ZONE tz
$$;

-- The postpaid corrections of an account that no invoice has credited yet,
-- posted before "before": its refunds of postpaid usage and its adjustments
-- made while postpaid (their ledger entries are flagged postpaid), each by
-- its ledger entry and signed amount (> 0 a credit). The next invoice
-- credits them (docs/invoices.md, "Refunds and corrections on invoices").
CREATE OR REPLACE FUNCTION billing._uncredited_corrections(account_id bigint, before timestamptz)
RETURNS TABLE(kind text, entry_id bigint, amount_micros bigint)
LANGUAGE plpgsql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    -- PL/pgSQL, not SQL: Citus plans no SQL function's parameters
    RETURN QUERY
    SELECT l.kind, l.entry_id, l.amount_micros
      FROM (SELECT f.entry_id FROM billing.refunds f
             WHERE f.account_id = _uncredited_corrections.account_id AND f.invoice_id IS NULL
            UNION ALL
            SELECT d.entry_id FROM billing.adjustments d
             WHERE d.account_id = _uncredited_corrections.account_id AND d.invoice_id IS NULL
            UNION ALL
            -- reversals made while postpaid: debits billed like adjustments (docs/topup.md)
            SELECT v.entry_id FROM billing.reversals v
             WHERE v.account_id = _uncredited_corrections.account_id AND v.invoice_id IS NULL) c
      JOIN billing.ledger l ON l.account_id = _uncredited_corrections.account_id
                           AND l.entry_id = c.entry_id
     WHERE l.postpaid AND l.created_at < before;
END $$;

-- What an account owes on postpaid terms and the prepaid credit kept for its
-- invoices, from one snapshot (docs/invoices.md, "How a postpaid account's
-- money works"). The one definition of these amounts: billing.balance()
-- shows them, set_billing_type and billing.verify() use them.
--   unbilled_micros: postpaid usage that no invoice covers yet, i.e. dated
--     outside the periods of the account's invoices (the gaps before,
--     between and after them, each an index range), less the postpaid
--     corrections no invoice has credited yet (below 0 when they exceed it);
--   unpaid_micros: the amounts due of its open invoices (totals less
--     credit notes);
--   credit_micros: the kept prepaid credit (accounts.prepaid_credit_micros).
-- While the account is postpaid its balance is credit - unbilled - unpaid.
CREATE OR REPLACE FUNCTION billing._postpaid_position(account_id bigint, OUT unbilled_micros bigint,
                                           OUT unpaid_micros bigint, OUT credit_micros bigint)
LANGUAGE plpgsql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    uncredited bigint;
    noted bigint;
BEGIN
    -- PL/pgSQL, not SQL: Citus plans no SQL function's parameters; and no
    -- query of the account's tables calls a function of billing's, which
    -- Citus would run on the shard, where it cannot query further
    SELECT COALESCE(pg_catalog.sum(c.amount_micros), 0)::bigint INTO uncredited
      FROM billing._uncredited_corrections(_postpaid_position.account_id, 'infinity') c;
    -- what the credit notes of open invoices took off what is due
    SELECT COALESCE(pg_catalog.sum(n.amount_micros), 0)::bigint INTO noted
      FROM billing.credit_notes n
      JOIN billing.invoices i ON i.account_id = n.account_id AND i.invoice_id = n.invoice_id
     WHERE n.account_id = _postpaid_position.account_id AND i.status = 'open';
    -- a void invoice bills nothing: its month is unbilled again
    WITH inv AS (
        SELECT i.starts_at, i.ends_at, i.status, i.total_micros,
               pg_catalog.max(i.ends_at) OVER (ORDER BY i.starts_at
                                               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end
          FROM billing.invoices i
         WHERE i.account_id = _postpaid_position.account_id AND i.status <> 'void'
    ), gaps AS (
        SELECT COALESCE(inv.prev_end, '-infinity') AS from_at, inv.starts_at AS to_at FROM inv
        UNION ALL
        SELECT COALESCE(pg_catalog.max(inv.ends_at), '-infinity'), 'infinity' FROM inv
    )
    SELECT (SELECT COALESCE(pg_catalog.sum(u.micros), 0)::bigint
              FROM gaps g,
                   LATERAL (SELECT -pg_catalog.sum(l.amount_micros) AS micros FROM billing.ledger l
                             WHERE l.account_id = _postpaid_position.account_id
                               AND l.kind = 'usage' AND l.postpaid
                               AND l.created_at >= g.from_at AND l.created_at < g.to_at) u)
           - uncredited,
           (SELECT COALESCE(pg_catalog.sum(inv.total_micros), 0)::bigint FROM inv
             WHERE inv.status = 'open') - noted,
           (SELECT a.prepaid_credit_micros FROM billing.accounts a
             WHERE a.account_id = _postpaid_position.account_id)
      INTO unbilled_micros, unpaid_micros, credit_micros;
END $$;

CREATE OR REPLACE FUNCTION billing.set_credit_limit(account_id bigint, limit_micros bigint, reason text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    acct billing.accounts;
BEGIN
    IF account_id IS NULL THEN
        RAISE EXCEPTION 'account_id must not be null' USING ERRCODE = '22023';
    END IF;
    IF limit_micros IS NULL OR limit_micros < 0 THEN
        RAISE EXCEPTION 'limit_micros must be zero or more'
            USING ERRCODE = '22023', DETAIL = pg_catalog.format('The value was %s.', limit_micros);
    END IF;
    IF reason IS NULL OR pg_catalog.btrim(reason) = '' THEN
        RAISE EXCEPTION 'a credit limit change needs a reason' USING ERRCODE = '22023';
    END IF;
    acct := billing._account(account_id, true, true);
    IF acct.credit_limit_micros = limit_micros THEN
        RETURN;                 -- not a change: nothing to audit
    END IF;
    UPDATE billing.accounts a SET credit_limit_micros = limit_micros
     WHERE a.account_id = set_credit_limit.account_id;
    INSERT INTO billing.credit_limit_audit (account_id, old_limit_micros, new_limit_micros, reason)
    VALUES (account_id, acct.credit_limit_micros, limit_micros, reason);
    -- the limit is part of a postpaid account's available amount only
    IF acct.billing_type = 'postpaid' THEN
        PERFORM billing._adjust_available(account_id, limit_micros - acct.credit_limit_micros);
    END IF;
END $$;

CREATE OR REPLACE FUNCTION billing.set_billing_type(account_id bigint, billing_type text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    acct billing.accounts;
    balance bigint;
    unbilled bigint;
    unpaid bigint;
    credit bigint;
    prepaid bigint;
BEGIN
    IF account_id IS NULL THEN
        RAISE EXCEPTION 'account_id must not be null' USING ERRCODE = '22023';
    END IF;
    IF billing_type IS NULL THEN
        RAISE EXCEPTION 'billing_type must not be null' USING ERRCODE = '22023';
    END IF;
    PERFORM billing._check_billing_type(billing_type);
    acct := billing._account(account_id, true, true);
    IF acct.billing_type = billing_type THEN
        RETURN;
    END IF;
    -- The limit joins or leaves the available amount. The slices first:
    -- every settlement that holds one has committed once they are locked,
    -- and is in the sums that follow (one snapshot).
    PERFORM billing._adjust_available(account_id, CASE WHEN billing_type = 'postpaid'
                                                       THEN acct.credit_limit_micros
                                                       ELSE -acct.credit_limit_micros END);
    SELECT (SELECT COALESCE(pg_catalog.sum(l.amount_micros), 0)::bigint
              FROM billing.ledger l WHERE l.account_id = set_billing_type.account_id),
           p.unbilled_micros, p.unpaid_micros, p.credit_micros
      INTO balance, unbilled, unpaid, credit
      FROM billing._postpaid_position(set_billing_type.account_id) p;

    IF billing_type = 'postpaid' THEN
        -- The prepaid part of the balance: what is not owed on postpaid terms
        -- (usage of earlier postpaid days still to invoice, open invoices)
        -- nor already kept for those invoices. Prepaid usage is never
        -- invoiced, so a prepaid debt could not be collected.
        prepaid := balance + unbilled + unpaid - credit;
        IF prepaid < 0 THEN
            RAISE EXCEPTION 'account % has a negative balance', account_id
                USING ERRCODE = 'PB409',
                      DETAIL = pg_catalog.format('The prepaid balance is %s %s.',
                                                 billing._units(prepaid), acct.currency),
                      HINT = 'Add funds to cover the balance before switching to postpaid billing.';
        END IF;
        -- it stays in the ledger and joins the credit kept for the invoices
        UPDATE billing.accounts a SET billing_type = 'postpaid'
         WHERE a.account_id = set_billing_type.account_id;
        PERFORM billing._keep_credit(account_id, prepaid);
    ELSIF billing._minimum_from(account_id, (pg_catalog.date_trunc('month', pg_catalog.now()
                                    AT TIME ZONE billing._setting('billing.timezone')))::date) IS NOT NULL THEN
        RAISE EXCEPTION 'account % has a minimum commitment for this month or a later one', account_id
            USING ERRCODE = 'PB409',
                  DETAIL = 'A minimum commitment is paid on postpaid invoices; it covers this month or a later one.',
                  HINT = 'End it first with billing.set_minimum_commitment(account_id, 0, month).';
    ELSE
        -- Credit not yet consumed is plain prepaid balance again, except what
        -- the invoices still to come for postpaid usage will consume: their
        -- usage less the corrections they credit.
        UPDATE billing.accounts a SET billing_type = 'prepaid'
         WHERE a.account_id = set_billing_type.account_id;
        PERFORM billing._keep_credit(account_id, LEAST(credit, GREATEST(unbilled, 0)) - credit);
    END IF;
END $$;

-- Suggested credit limit; the formula is documented in docs/invoices.md.
CREATE OR REPLACE FUNCTION billing.suggest_credit_limit(account_id bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    acct billing.accounts;
    floor_micros bigint := billing._setting('billing.credit_limit_floor_micros')::bigint;
    cap_micros bigint := billing._setting('billing.credit_limit_cap_micros')::bigint;
    tz text := billing._setting('billing.timezone');
    today date := (pg_catalog.now() AT TIME ZONE tz)::date;
    paid integer;
    on_time integer;
    avg_paid bigint;
    days_late integer;
    overdue integer;
    age_months integer;
    base numeric;
    timeliness_pct integer;
    age_pct integer;
    suggested bigint;
BEGIN
    IF account_id IS NULL THEN
        RAISE EXCEPTION 'account_id must not be null' USING ERRCODE = '22023';
    END IF;
    acct := billing._account(account_id, false, true);
    -- the twelve latest paid invoices
    SELECT pg_catalog.count(*),
           pg_catalog.count(*) FILTER (WHERE (p.paid_at AT TIME ZONE tz)::date <= p.due_date),
           COALESCE(pg_catalog.avg(p.subtotal_micros), 0)::bigint,
           COALESCE(pg_catalog.max(GREATEST((p.paid_at AT TIME ZONE tz)::date - p.due_date, 0)), 0)
      INTO paid, on_time, avg_paid, days_late
      FROM (SELECT i.paid_at, i.due_date, i.subtotal_micros FROM billing.invoices i
             WHERE i.account_id = suggest_credit_limit.account_id AND i.status = 'paid'
             ORDER BY i.period_start DESC LIMIT 12) p;
    SELECT pg_catalog.count(*) INTO overdue FROM billing.invoices i
     WHERE i.account_id = suggest_credit_limit.account_id AND i.status = 'open'
       AND i.due_date < today;
    SELECT (EXTRACT(year FROM g) * 12 + EXTRACT(month FROM g))::integer
      INTO age_months
      FROM pg_catalog.age(today, (acct.created_at AT TIME ZONE tz)::date) g;

    base := 2 * avg_paid::numeric;
    timeliness_pct := CASE WHEN paid = 0 THEN 0 ELSE 100 * on_time / paid END;
    age_pct := LEAST(100, 50 + 10 * age_months);
    IF overdue > 0 THEN
        suggested := floor_micros;
    ELSE
        suggested := LEAST(GREATEST(pg_catalog.div(base * timeliness_pct * age_pct, 10000000000::numeric)
                                    * 1000000, floor_micros), cap_micros)::bigint;
    END IF;
    RETURN pg_catalog.jsonb_build_object(
        'object', 'credit_limit_suggestion',
        'account_id', acct.account_id,
        'currency', acct.currency,
        'current_limit_micros', acct.credit_limit_micros,
        'suggested_limit_micros', suggested,
        'suggested_limit', pg_catalog.jsonb_build_object(
            'amount', billing._units(suggested), 'currency', acct.currency),
        'basis', pg_catalog.jsonb_build_object(
            'paid_invoices', paid,
            'paid_on_time', on_time,
            'average_paid_invoice_micros', avg_paid,
            'max_days_late', days_late,
            'overdue_invoices', overdue,
            'account_age_months', age_months,
            'base_micros', base::bigint,
            'timeliness_percent', timeliness_pct,
            'age_percent', age_pct,
            'floor_micros', floor_micros,
            'cap_micros', cap_micros),
        'formula', CASE WHEN overdue > 0
                        THEN 'floor: the account has overdue invoices'
                        ELSE 'clamp(floor, cap, whole units of 2 * average_paid_invoice'
                             ' * timeliness_percent/100 * age_percent/100)' END);
END $$;

-- Minimum commitments (docs/invoices.md, "Minimum commitments").
-- The minimum of an account for the month starting on month: the amount of
-- the latest commitment that covers it, 0 where none does.
CREATE OR REPLACE FUNCTION billing._minimum_for(account_id bigint, month date) RETURNS bigint
LANGUAGE plpgsql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    -- PL/pgSQL, not SQL: Citus plans no SQL function's parameters
    RETURN COALESCE((SELECT c.amount_micros FROM billing.minimum_commitments c
                      WHERE c.account_id = _minimum_for.account_id AND c.effective_from <= month
                        AND (c.effective_until IS NULL OR c.effective_until > month)
                      ORDER BY c.commitment_id DESC LIMIT 1), 0);
END $$;

-- The first month from the one starting on month on with a minimum above
-- 0, NULL if none: the minimum changes only where a commitment starts or
-- ends, so those months are the ones to look at.
CREATE OR REPLACE FUNCTION billing._minimum_from(account_id bigint, month date) RETURNS date
LANGUAGE plpgsql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    m date;
BEGIN
    FOR m IN SELECT month
             UNION SELECT c.effective_from FROM billing.minimum_commitments c
                    WHERE c.account_id = _minimum_from.account_id AND c.effective_from > month
             UNION SELECT c.effective_until FROM billing.minimum_commitments c
                    WHERE c.account_id = _minimum_from.account_id AND c.effective_until > month
             ORDER BY 1 LOOP
        IF billing._minimum_for(account_id, m) > 0 THEN
            RETURN m;
        END IF;
    END LOOP;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION billing.set_minimum_commitment(account_id bigint, amount_micros bigint,
                                                          effective_from date, effective_until date DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    acct billing.accounts;
    number bigint;
BEGIN
    IF account_id IS NULL OR amount_micros IS NULL OR effective_from IS NULL THEN
        RAISE EXCEPTION 'account_id, amount_micros and effective_from must not be null' USING ERRCODE = '22023';
    END IF;
    IF amount_micros < 0 THEN
        RAISE EXCEPTION 'amount_micros must be zero or more'
            USING ERRCODE = '22023', DETAIL = pg_catalog.format('The value was %s.', amount_micros);
    END IF;
    IF NOT pg_catalog.isfinite(effective_from) OR NOT pg_catalog.isfinite(COALESCE(effective_until, effective_from))
       OR EXTRACT(DAY FROM effective_from) <> 1 OR EXTRACT(DAY FROM effective_until) <> 1 THEN
        RAISE EXCEPTION 'a minimum commitment starts and ends on the first day of a month'
            USING ERRCODE = '22023',
                  DETAIL = pg_catalog.format('The values were %s and %s.', effective_from,
                                             COALESCE(effective_until::text, 'null'));
    END IF;
    IF effective_until <= effective_from THEN
        RAISE EXCEPTION 'effective_until % is not after effective_from %', effective_until, effective_from
            USING ERRCODE = '22023';
    END IF;
    -- the account's lock orders this with close_period and set_billing_type
    acct := billing._account(account_id, true, true);
    IF acct.billing_type <> 'postpaid' THEN
        RAISE EXCEPTION 'account % is prepaid', account_id
            USING ERRCODE = '22023', DETAIL = 'A minimum commitment is paid on postpaid invoices.',
                  HINT = 'Switch the account to postpaid billing first.';
    END IF;
    IF amount_micros % billing._minor_unit_micros(acct.currency) <> 0 THEN
        RAISE EXCEPTION 'amount_micros % is not whole minor units of %', amount_micros, acct.currency
            USING ERRCODE = '22023',
                  DETAIL = pg_catalog.format('A minor unit of %s is %s micros.', acct.currency,
                                             billing._minor_unit_micros(acct.currency));
    END IF;
    SELECT i.invoice_number INTO number FROM billing.invoices i
     WHERE i.account_id = set_minimum_commitment.account_id AND i.status <> 'void'
       AND i.period_start >= effective_from
       AND (effective_until IS NULL OR i.period_start < effective_until)
     ORDER BY i.period_start LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'invoice % already bills a month of the commitment', number
            USING ERRCODE = 'PB409',
                  DETAIL = 'The minimum of an invoiced month cannot change.',
                  HINT = 'Start the commitment after the last invoiced month.';
    END IF;
    INSERT INTO billing.minimum_commitments AS c (account_id, amount_micros, effective_from, effective_until)
    VALUES (set_minimum_commitment.account_id, amount_micros, effective_from, effective_until);
END $$;

-- The payload of an invoice's events (docs/events.md).
CREATE OR REPLACE FUNCTION billing._invoice_event(inv billing.invoices) RETURNS jsonb
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.jsonb_build_object(
        'invoice_id', inv.invoice_id, 'invoice_number', inv.invoice_number,
        'period_start', inv.period_start, 'period_end', inv.period_end,
        'currency', inv.currency, 'subtotal_micros', inv.subtotal_micros,
        'corrections_micros', inv.corrections_micros,
        'credit_micros', inv.credit_micros, 'total_micros', inv.total_micros,
        'true_up_micros', inv.true_up_micros,
        'status', inv.status, 'due_date', inv.due_date,
        'payment_reference', inv.payment_reference)
$$;

CREATE OR REPLACE FUNCTION billing.close_period(period_start date DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tz text := billing._setting('billing.timezone');
    starts timestamptz;
    ends timestamptz;
    due date;
    acct record;
    inv billing.invoices;
    usage_total bigint;
    unit bigint;
    corrections bigint;
    due_micros bigint;
    credit bigint;
    carried bigint;
    postpaid_now boolean;
    pause numeric := 0.1;
    issued integer := 0;
    number bigint;
    minimum bigint;
    seller jsonb;
    buyer jsonb;
BEGIN
    -- the wait below only helps when later statements take new snapshots
    PERFORM billing._require_read_committed('billing.close_period()');
    IF period_start IS NULL THEN
        -- the last month that has ended in billing.timezone
        period_start := (pg_catalog.date_trunc('month', pg_catalog.clock_timestamp() AT TIME ZONE tz)
                         - interval '1 month')::date;
    ELSIF period_start NOT BETWEEN '1970-01-01' AND '9999-12-01'
          OR period_start <> pg_catalog.date_trunc('month', period_start)::date THEN
        RAISE EXCEPTION 'period_start must be the first day of a month'
            USING ERRCODE = '22023', DETAIL = pg_catalog.format('The value was %s.', period_start);
    END IF;
    SELECT b.starts, b.ends INTO starts, ends FROM billing._period_bounds(period_start, tz) b;
    IF ends > pg_catalog.clock_timestamp() THEN
        RAISE EXCEPTION 'the month beginning % has not ended', pg_catalog.to_char(period_start, 'YYYY-MM-DD')
            USING ERRCODE = '22023',
                  DETAIL = pg_catalog.format('It ends at %s in time zone %s.',
                                             pg_catalog.to_char(ends AT TIME ZONE tz, 'YYYY-MM-DD HH24:MI'), tz);
    END IF;

    -- Wait for a moment when no transaction is writing the ledger, then let
    -- go at once: the subtransaction's rollback releases the lock (and the
    -- lock_timeout). A usage entry dated in the month was written before the
    -- month ended, so it is now committed and visible to the statements
    -- below; anything written later is dated after the month. Each attempt
    -- queues for at most 100 ms, so a long writer (one idle in transaction,
    -- say) holds up the other writers only that long; between attempts they
    -- go on, for a pause that grows to a second.
    LOOP
        BEGIN
            PERFORM pg_catalog.set_config('lock_timeout', '100ms', true);
            LOCK TABLE billing.ledger IN SHARE MODE;
            RAISE SQLSTATE 'PBW00';
        EXCEPTION
            WHEN SQLSTATE 'PBW00' THEN
                EXIT;
            WHEN lock_not_available THEN
                PERFORM pg_catalog.pg_sleep(pause);
                pause := LEAST(pause * 2, 1);
        END;
    END LOOP;
    -- One closer at a time: invoice numbers are max + 1, without gaps.
    LOCK TABLE billing.invoices IN SHARE ROW EXCLUSIVE MODE;
    SELECT COALESCE(pg_catalog.max(i.invoice_number), 0) INTO number FROM billing.invoices i;

    due := (period_start + interval '1 month')::date
           + billing._setting('billing.invoice_due_days')::integer;
    -- the seller and the buyer as they are now: a document never changes
    seller := NULLIF(billing._setting('billing.seller_details'), '')::jsonb;
    FOR acct IN
        -- one probe of the account's postpaid usage index per account; and
        -- (docs/pricing.md) the accounts with a commitment for the month
        SELECT a.account_id, a.currency
          FROM billing.accounts a
         WHERE (EXISTS (SELECT FROM billing.ledger l
                         WHERE l.account_id = a.account_id AND l.kind = 'usage' AND l.postpaid
                           AND l.created_at >= starts AND l.created_at < ends)
                OR EXISTS (SELECT FROM billing.minimum_commitments c
                            WHERE c.account_id = a.account_id
                              AND c.effective_from <= close_period.period_start
                              AND (c.effective_until IS NULL
                                   OR c.effective_until > close_period.period_start)))
           AND NOT EXISTS (SELECT FROM billing.invoices i
                            WHERE i.account_id = a.account_id AND i.period_start = close_period.period_start
                              AND i.status <> 'void')
         ORDER BY 1
    LOOP
        -- the account row before its slices, as set_billing_type locks them
        SELECT a.prepaid_credit_micros, a.billing_type = 'postpaid', a.billing_details
          INTO credit, postpaid_now, buyer
          FROM billing.accounts a
         WHERE a.account_id = acct.account_id FOR NO KEY UPDATE;
        -- (docs/pricing.md) read under the account's lock, as set_minimum_commitment writes it
        minimum := billing._minimum_for(acct.account_id, period_start);
        -- a commitment that is 0 for the month: invoiced only for usage
        CONTINUE WHEN minimum = 0 AND NOT EXISTS (
            SELECT FROM billing.ledger l
             WHERE l.account_id = acct.account_id AND l.kind = 'usage' AND l.postpaid
               AND l.created_at >= starts AND l.created_at < ends);
        unit := billing._minor_unit_micros(acct.currency);
        number := number + 1;
        INSERT INTO billing.invoices (account_id, invoice_number, period_start, period_end,
                                      starts_at, ends_at, currency, subtotal_micros, total_micros,
                                      due_date, seller, buyer)
        VALUES (acct.account_id, number,
                period_start, (period_start + interval '1 month')::date, starts, ends,
                acct.currency, 0, 0, due, seller, buyer)
        RETURNING * INTO inv;

        INSERT INTO billing.invoice_lines (account_id, invoice_id, model, quantity, usage_micros, amount_micros)
        SELECT acct.account_id, inv.invoice_id, u.model, u.requests, u.exact,
               billing._round_half_up(u.exact, unit)
          FROM (SELECT COALESCE(r.model, '(none)') AS model,
                       pg_catalog.count(DISTINCT l.request_id) AS requests,
                       (-pg_catalog.sum(l.amount_micros))::bigint AS exact
                  FROM billing.ledger l LEFT JOIN billing.requests r
                    ON r.account_id = l.account_id AND r.request_id = l.request_id
                 WHERE l.account_id = acct.account_id AND l.kind = 'usage' AND l.postpaid
                   AND l.created_at >= starts AND l.created_at < ends
                 GROUP BY 1) u;

        -- (no lines: an account invoiced for its minimum commitment alone)
        SELECT COALESCE(pg_catalog.sum(il.amount_micros), 0)::bigint,
               COALESCE(pg_catalog.sum(il.usage_micros), 0)::bigint
          INTO inv.subtotal_micros, usage_total
          FROM billing.invoice_lines il WHERE il.invoice_id = inv.invoice_id;

        -- The postpaid refunds and adjustments posted before the month's end
        -- that no invoice has credited: this one credits them, once (closers
        -- run one at a time; the mark, not the date, says what is credited).
        WITH c AS (
            SELECT c.kind, c.entry_id FROM billing._uncredited_corrections(acct.account_id, ends) c
        ), f AS (
            UPDATE billing.refunds f SET invoice_id = inv.invoice_id
              FROM c
             WHERE f.account_id = acct.account_id AND c.kind = 'refund' AND f.entry_id = c.entry_id
               AND f.invoice_id IS NULL
            RETURNING f.amount_micros
        ), d AS (
            UPDATE billing.adjustments d SET invoice_id = inv.invoice_id
              FROM c
             WHERE d.account_id = acct.account_id AND c.kind = 'adjustment' AND d.entry_id = c.entry_id
               AND d.invoice_id IS NULL
            RETURNING d.amount_micros
        ), v AS (
            UPDATE billing.reversals v SET invoice_id = inv.invoice_id
              FROM c
             WHERE v.account_id = acct.account_id AND c.kind = 'reversal' AND v.entry_id = c.entry_id
               AND v.invoice_id IS NULL
            RETURNING -v.amount_micros AS amount_micros
        )
        SELECT COALESCE(pg_catalog.sum(x.amount_micros), 0)::bigint INTO corrections
          FROM (SELECT f.amount_micros FROM f UNION ALL SELECT d.amount_micros FROM d
                UNION ALL SELECT v.amount_micros FROM v) x;
        inv.corrections_micros := billing._round_half_up(corrections, unit);

        -- the ledger carries the rounding of lines and corrections, so that it
        -- agrees with the invoice
        IF usage_total - inv.subtotal_micros + inv.corrections_micros - corrections <> 0 THEN
            PERFORM billing._move(acct.account_id,
                                  usage_total - inv.subtotal_micros + inv.corrections_micros - corrections,
                                  'adjustment', pg_catalog.format('rounding of invoice %s', inv.invoice_number),
                                  NULL, inv.invoice_id);
        END IF;

        -- minimum commitment: a shortfall of what is due before
        -- credit is billed as its own line and posted as one adjustment
        -- (docs/invoices.md, "Minimum commitments")
        -- (no minimum, no true-up: corrections beyond the usage are carried)
        inv.true_up_micros := CASE WHEN minimum > 0
            THEN GREATEST(minimum - (inv.subtotal_micros - inv.corrections_micros), 0) ELSE 0 END;
        IF inv.true_up_micros > 0 THEN
            INSERT INTO billing.invoice_lines (account_id, invoice_id, model, quantity, usage_micros, amount_micros)
            VALUES (acct.account_id, inv.invoice_id, '(minimum commitment)', 0, inv.true_up_micros,
                    inv.true_up_micros);
            inv.subtotal_micros := inv.subtotal_micros + inv.true_up_micros;
            PERFORM billing._move(acct.account_id, -inv.true_up_micros, 'adjustment',
                                  pg_catalog.format('minimum commitment of invoice %s', inv.invoice_number),
                                  NULL, inv.invoice_id);
        END IF;
        -- (end of the minimum commitment)

        -- each line's description as the catalog has it now
        UPDATE billing.invoice_lines il
           SET description = CASE il.model WHEN '(minimum commitment)' THEN 'Minimum commitment'
                                           WHEN '(none)' THEN 'Other usage'
                                           ELSE COALESCE((SELECT m.display_name FROM billing.models m
                                                           WHERE m.model = il.model), il.model) END
         WHERE il.account_id = acct.account_id AND il.invoice_id = inv.invoice_id;

        -- What corrections leave to pay; the kept prepaid credit pays first,
        -- in whole minor units like the lines (a remainder below one minor
        -- unit stays kept, in the ledger). Corrections beyond the usage leave
        -- nothing to pay and join the kept credit for the next invoices while
        -- the account is postpaid; on a prepaid account they are plain
        -- prepaid balance already.
        due_micros := inv.subtotal_micros - inv.corrections_micros;
        credit := LEAST(credit - credit % unit, GREATEST(due_micros, 0));
        carried := CASE WHEN postpaid_now THEN GREATEST(-due_micros, 0) ELSE 0 END;
        PERFORM billing._keep_credit(acct.account_id, carried - credit);
        UPDATE billing.invoices i
           SET subtotal_micros = inv.subtotal_micros, corrections_micros = inv.corrections_micros,
               true_up_micros = inv.true_up_micros, credit_micros = credit, total_micros = GREATEST(due_micros, 0) - credit,
               status = CASE WHEN GREATEST(due_micros, 0) = credit THEN 'paid' ELSE 'open' END,
               paid_at = CASE WHEN GREATEST(due_micros, 0) = credit THEN i.issued_at END
         WHERE i.invoice_id = inv.invoice_id
        RETURNING * INTO inv;
        PERFORM billing._event(inv.account_id, 'invoice_issued', billing._invoice_event(inv));
        -- paid in full by the kept prepaid credit
        IF inv.status = 'paid' THEN
            PERFORM billing._event(inv.account_id, 'invoice_paid', billing._invoice_event(inv));
        END IF;
        issued := issued + 1;
    END LOOP;
    RETURN issued;
END $$;

CREATE OR REPLACE FUNCTION billing.mark_invoice_paid(invoice_id bigint, payment_reference text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    inv billing.invoices;
    paid timestamptz;
BEGIN
    IF invoice_id IS NULL THEN
        RAISE EXCEPTION 'invoice_id must not be null' USING ERRCODE = '22023';
    END IF;
    -- the invoice row first, then the slices (in billing._move): the order
    -- of close_period, which locks billing.invoices first
    -- the time in a variable: Citus evaluates no volatile function in a SET
    paid := pg_catalog.clock_timestamp();
    UPDATE billing.invoices i
       SET status = 'paid', paid_at = paid,
           payment_reference = mark_invoice_paid.payment_reference
     WHERE i.invoice_id = mark_invoice_paid.invoice_id AND i.status = 'open'
    RETURNING * INTO inv;
    IF FOUND THEN
        -- what is due: the total less its credit notes (more than 0, or a
        -- note would have paid it)
        PERFORM billing._move(inv.account_id,
                              inv.total_micros - billing._invoice_notes(inv.account_id, inv.invoice_id),
                              'invoice_payment', payment_reference, NULL, inv.invoice_id);
        PERFORM billing._event(inv.account_id, 'invoice_paid', billing._invoice_event(inv));
        PERFORM billing._overdue_recheck(inv.account_id, inv.invoice_id);
        RETURN;
    END IF;
    SELECT * INTO inv FROM billing.invoices i WHERE i.invoice_id = mark_invoice_paid.invoice_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'invoice % does not exist', invoice_id USING ERRCODE = 'PB404';
    ELSIF inv.status = 'void' THEN
        RAISE EXCEPTION 'invoice % is void', invoice_id
            USING ERRCODE = 'PB409', DETAIL = 'A void invoice cannot be paid.';
    END IF;
    -- already paid: the first payment stands
END $$;

-- Invoice invariants, for billing.verify().
CREATE OR REPLACE FUNCTION billing._verify_invoices(only_account bigint DEFAULT NULL)
RETURNS TABLE(account_id bigint, problem text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    -- PL/pgSQL, not SQL: Citus plans no SQL function's parameters
    RETURN QUERY
    -- every join names the account too: on Citus a query of one account's
    -- rows then runs on its shard
    WITH inv AS NOT MATERIALIZED (
        SELECT i.*,
               (SELECT pg_catalog.count(*) FROM billing.invoice_lines il
                 WHERE il.account_id = i.account_id AND il.invoice_id = i.invoice_id) AS nlines,
               (SELECT COALESCE(pg_catalog.sum(il.amount_micros), 0)::bigint FROM billing.invoice_lines il
                 WHERE il.account_id = i.account_id AND il.invoice_id = i.invoice_id) AS lines_micros,
               (SELECT COALESCE(pg_catalog.sum(il.usage_micros), 0)::bigint FROM billing.invoice_lines il
                 WHERE il.account_id = i.account_id AND il.invoice_id = i.invoice_id
                   AND il.model <> '(minimum commitment)') AS usage_micros,
               -- 0.3.0: the true-up's line, its entries and the month's minimum
               (SELECT COALESCE(pg_catalog.sum(il.amount_micros), 0)::bigint FROM billing.invoice_lines il
                 WHERE il.account_id = i.account_id AND il.invoice_id = i.invoice_id
                   AND il.model = '(minimum commitment)') AS true_up_line,
               (SELECT COALESCE(pg_catalog.sum(l.amount_micros), 0)::bigint FROM billing.ledger l
                 WHERE l.account_id = i.account_id AND l.invoice_id = i.invoice_id
                   AND l.kind = 'adjustment'
                   AND l.reference = pg_catalog.format('minimum commitment of invoice %s', i.invoice_number))
                   AS true_up_posted,
               billing._minimum_for(i.account_id, i.period_start) AS minimum,
               (SELECT COALESCE(-pg_catalog.sum(l.amount_micros), 0)::bigint
                  FROM billing.ledger l
                 WHERE l.account_id = i.account_id AND l.kind = 'usage' AND l.postpaid
                   AND l.created_at >= i.starts_at AND l.created_at < i.ends_at) AS ledger_usage,
               (SELECT COALESCE(pg_catalog.sum(l.amount_micros), 0)::bigint FROM billing.ledger l
                 WHERE l.account_id = i.account_id AND l.invoice_id = i.invoice_id
                   AND l.kind = 'adjustment'
                   AND l.reference IS DISTINCT FROM
                       pg_catalog.format('minimum commitment of invoice %s', i.invoice_number)) AS rounding,
               (SELECT COALESCE(pg_catalog.sum(c.amount_micros), 0)::bigint
                  FROM (SELECT f.amount_micros FROM billing.refunds f
                         WHERE f.account_id = i.account_id AND f.invoice_id = i.invoice_id
                        UNION ALL
                        SELECT d.amount_micros FROM billing.adjustments d
                         WHERE d.account_id = i.account_id AND d.invoice_id = i.invoice_id
                        UNION ALL
                        SELECT -v.amount_micros FROM billing.reversals v
                         WHERE v.account_id = i.account_id AND v.invoice_id = i.invoice_id) c)
                   AS corrections_exact,
               (SELECT pg_catalog.count(*) FROM billing.ledger l
                 WHERE l.account_id = i.account_id AND l.invoice_id = i.invoice_id
                   AND l.kind = 'invoice_payment') AS npayments,
               (SELECT COALESCE(pg_catalog.sum(l.amount_micros), 0)::bigint FROM billing.ledger l
                 WHERE l.account_id = i.account_id AND l.invoice_id = i.invoice_id
                   AND l.kind = 'invoice_payment') AS paid_micros,
               (SELECT COALESCE(pg_catalog.sum(n.amount_micros), 0)::bigint FROM billing.credit_notes n
                 WHERE n.account_id = i.account_id AND n.invoice_id = i.invoice_id) AS notes_micros,
               (SELECT COALESCE(pg_catalog.sum(n.amount_micros), 0)::bigint FROM billing.credit_notes n
                 WHERE n.account_id = i.account_id AND n.invoice_id = i.invoice_id
                   AND n.created_at <= i.paid_at) AS prior_notes,
               (SELECT pg_catalog.count(*) FROM billing.invoices o
                 WHERE o.account_id = i.account_id AND o.period_start = i.period_start
                   AND o.status <> 'void') AS month_invoices
          FROM billing.invoices i
         WHERE only_account IS NULL OR i.account_id = only_account
    )
    SELECT inv.account_id, pg_catalog.format('invoice %s: %s', inv.invoice_number, p.problem)
      FROM inv, LATERAL (VALUES
        (inv.nlines = 0, 'has no lines'),
        (inv.subtotal_micros <> inv.lines_micros,
         pg_catalog.format('subtotal %s is not the sum of its lines %s', inv.subtotal_micros, inv.lines_micros)),
        (inv.credit_micros < 0
             OR inv.credit_micros > GREATEST(inv.subtotal_micros - inv.corrections_micros, 0),
         pg_catalog.format('credit %s is not between 0 and the subtotal less corrections', inv.credit_micros)),
        (inv.credit_micros % billing._minor_unit_micros(inv.currency) <> 0
             OR inv.total_micros % billing._minor_unit_micros(inv.currency) <> 0,
         pg_catalog.format('credit %s or total %s is not whole minor units of %s',
                           inv.credit_micros, inv.total_micros, inv.currency)),
        (inv.status <> 'void'
             AND inv.corrections_micros <> billing._round_half_up(inv.corrections_exact,
                                                                  billing._minor_unit_micros(inv.currency)),
         pg_catalog.format('corrections %s are not the refunds and adjustments it credits, %s, rounded half-up',
                           inv.corrections_micros, inv.corrections_exact)),
        (inv.total_micros <> GREATEST(inv.subtotal_micros - inv.corrections_micros, 0) - inv.credit_micros,
         pg_catalog.format('total %s is not subtotal %s less corrections %s less credit %s (at least 0)',
                           inv.total_micros, inv.subtotal_micros, inv.corrections_micros, inv.credit_micros)),
        (inv.status <> 'void' AND inv.true_up_micros <> CASE WHEN inv.minimum > 0
             THEN GREATEST(inv.minimum - (inv.lines_micros - inv.true_up_line - inv.corrections_micros), 0)
             ELSE 0 END,
         pg_catalog.format('true-up %s is not the minimum %s less what the usage lines %s less corrections %s'
                           ' leave to pay (at least 0)', inv.true_up_micros, inv.minimum,
                           inv.lines_micros - inv.true_up_line, inv.corrections_micros)),
        (inv.true_up_line <> inv.true_up_micros OR inv.true_up_posted <> -inv.true_up_micros,
         pg_catalog.format('true-up %s, but its line bills %s and its adjustment entries total %s',
                           inv.true_up_micros, inv.true_up_line, inv.true_up_posted)),
        (inv.usage_micros <> inv.ledger_usage,
         pg_catalog.format('lines bill %s micros of usage, the ledger has %s in the period',
                           inv.usage_micros, inv.ledger_usage)),
        (inv.status <> 'void' AND inv.rounding <> inv.usage_micros - (inv.lines_micros - inv.true_up_line)
                                                    + inv.corrections_micros - inv.corrections_exact,
         pg_catalog.format('rounding adjustments %s do not match the rounding %s',
                           inv.rounding, inv.usage_micros - (inv.lines_micros - inv.true_up_line)
                                         + inv.corrections_micros - inv.corrections_exact)),
        -- a payment is of what was due: the total less the notes before it
        (inv.status = 'paid' AND inv.total_micros > inv.prior_notes
             AND (inv.npayments <> 1 OR inv.paid_micros <> inv.total_micros - inv.prior_notes),
         pg_catalog.format('paid with %s payment entries of %s micros, %s were due', inv.npayments,
                           inv.paid_micros, inv.total_micros - inv.prior_notes)),
        ((inv.status <> 'paid' OR inv.total_micros <= inv.prior_notes) AND inv.npayments <> 0,
         pg_catalog.format('%s invoice with payment entries', inv.status)),
        (inv.total_micros - inv.notes_micros <= 0 AND inv.status = 'open', 'open with nothing to pay'),
        (inv.notes_micros > inv.total_micros,
         pg_catalog.format('credit notes of %s micros, more than its total', inv.notes_micros)),
        (inv.status = 'void' AND (inv.voided_at IS NULL OR COALESCE(pg_catalog.btrim(inv.void_reason), '') = ''),
         'void without voided_at or a reason'),
        (inv.status <> 'void' AND (inv.voided_at IS NOT NULL OR inv.void_reason IS NOT NULL),
         pg_catalog.format('%s with voided_at or a void reason', inv.status)),
        (inv.status = 'void' AND inv.rounding + inv.true_up_posted <> 0,
         pg_catalog.format('void with adjustment entries netting to %s', inv.rounding + inv.true_up_posted)),
        (inv.status = 'void' AND inv.corrections_exact <> 0, 'void but credits corrections'),
        (inv.status <> 'void' AND inv.month_invoices > 1, 'a second invoice of its month that is not void')
      ) AS p(failed, problem)
     WHERE p.failed
    UNION ALL
    SELECT il.account_id, pg_catalog.format('invoice %s, model %s: %s', i.invoice_number, il.model, p.problem)
      FROM billing.invoice_lines il JOIN billing.invoices i USING (account_id, invoice_id),
           LATERAL (VALUES
        (il.amount_micros % billing._minor_unit_micros(i.currency) <> 0,
         pg_catalog.format('amount %s is not whole minor units of %s', il.amount_micros, i.currency)),
        (il.amount_micros <> billing._round_half_up(il.usage_micros, billing._minor_unit_micros(i.currency)),
         pg_catalog.format('amount %s is not usage %s rounded half-up', il.amount_micros, il.usage_micros)),
        (il.quantity <= 0 AND il.model <> '(minimum commitment)', 'no requests'),
        (il.model = '(minimum commitment)' AND (il.quantity <> 0 OR il.usage_micros <> il.amount_micros),
         'a minimum commitment line with requests, or usage other than its amount')
      ) AS p(failed, problem)
     WHERE p.failed AND (only_account IS NULL OR i.account_id = only_account)
    UNION ALL
    -- each line bills the period's usage entries of its model ('(none)': of no request)
    SELECT i.account_id,
           pg_catalog.format('invoice %s, model %s: the line bills %s requests for %s micros, the period has %s for %s',
                             i.invoice_number, m.model, m.line_requests, m.line_usage, m.requests, m.usage)
      FROM (SELECT COALESCE(il.account_id, u.account_id) AS account_id,
                   COALESCE(il.invoice_id, u.invoice_id) AS invoice_id, COALESCE(il.model, u.model) AS model,
                   COALESCE(il.quantity, 0) AS line_requests, COALESCE(il.usage_micros, 0) AS line_usage,
                   COALESCE(u.requests, 0) AS requests, COALESCE(u.usage, 0) AS usage
              FROM (SELECT x.account_id, x.invoice_id, x.model, x.quantity, x.usage_micros
                      FROM billing.invoice_lines x JOIN billing.invoices xi USING (account_id, invoice_id)
                     WHERE (only_account IS NULL OR xi.account_id = only_account)
                       AND x.model <> '(minimum commitment)') il
              FULL JOIN (SELECT ui.account_id, ui.invoice_id, COALESCE(r.model, '(none)') AS model,
                                pg_catalog.count(DISTINCT l.request_id) AS requests,
                                (-pg_catalog.sum(l.amount_micros))::bigint AS usage
                           FROM billing.invoices ui
                           JOIN billing.ledger l
                             ON l.account_id = ui.account_id AND l.kind = 'usage' AND l.postpaid
                            AND l.created_at >= ui.starts_at AND l.created_at < ui.ends_at
                           LEFT JOIN billing.requests r
                             ON r.account_id = l.account_id AND r.request_id = l.request_id
                          WHERE only_account IS NULL OR ui.account_id = only_account
                          GROUP BY 1, 2, 3) u
                ON u.account_id = il.account_id AND u.invoice_id = il.invoice_id AND u.model = il.model) m
      JOIN billing.invoices i USING (account_id, invoice_id)
     WHERE m.line_requests <> m.requests OR m.line_usage <> m.usage
    UNION ALL
    SELECT l.account_id, pg_catalog.format('ledger entry %s refers to no invoice of its account', l.entry_id)
      FROM billing.ledger l
     WHERE l.invoice_id IS NOT NULL AND (only_account IS NULL OR l.account_id = only_account)
       AND NOT EXISTS (SELECT FROM billing.invoices i
                        WHERE i.invoice_id = l.invoice_id AND i.account_id = l.account_id)
    UNION ALL
    -- each credit note: whole minor units; a credit note has its entry, a
    -- refund note none and a paid invoice
    SELECT n.account_id, pg_catalog.format('credit note %s: %s', n.credit_note_number, p.problem)
      FROM billing.credit_notes n
      JOIN billing.invoices i ON i.account_id = n.account_id AND i.invoice_id = n.invoice_id
      LEFT JOIN billing.ledger l ON l.account_id = n.account_id AND l.entry_id = n.entry_id,
           LATERAL (VALUES
        (n.amount_micros % billing._minor_unit_micros(i.currency) <> 0,
         pg_catalog.format('amount %s is not whole minor units of %s', n.amount_micros, i.currency)),
        (n.settlement = 'credit' AND (l.entry_id IS NULL OR l.kind <> 'credit_note'
                                      OR l.amount_micros <> n.amount_micros
                                      OR l.invoice_id IS DISTINCT FROM n.invoice_id),
         pg_catalog.format('its credit_note entry %s is missing or does not match', n.entry_id)),
        (n.settlement = 'refund' AND (n.entry_id IS NOT NULL OR i.status <> 'paid'),
         'a refund note with a ledger entry or of an invoice that is not paid')
      ) AS p(failed, problem)
     WHERE p.failed AND (only_account IS NULL OR n.account_id = only_account)
    UNION ALL
    SELECT l.account_id, pg_catalog.format('credit_note entry %s is recorded in no credit note', l.entry_id)
      FROM billing.ledger l
     WHERE l.kind = 'credit_note' AND (only_account IS NULL OR l.account_id = only_account)
       AND NOT EXISTS (SELECT FROM billing.credit_notes n
                        WHERE n.account_id = l.account_id AND n.entry_id = l.entry_id)
    UNION ALL
    -- a flagged account had an invoice overdue when it was flagged: one due
    -- before the flag's day, in whatever billing.timezone mark_overdue() ran
    -- (the day after a due date starts 14 hours before UTC's at the earliest)
    SELECT a.account_id, pg_catalog.format('overdue since %s without an open invoice due before', a.overdue_since)
      FROM billing.accounts a
     WHERE a.overdue_since IS NOT NULL AND (only_account IS NULL OR a.account_id = only_account)
       AND NOT EXISTS (SELECT FROM billing.invoices i
                        WHERE i.account_id = a.account_id AND i.status = 'open'
                          AND a.overdue_since >= (i.due_date + 1)::timestamp AT TIME ZONE 'UTC' - interval '14 hours')
    UNION ALL
    -- a credited correction: a postpaid entry posted before the end of the
    -- period of an invoice of its own account
    SELECT c.account_id, pg_catalog.format('%s entry %s is credited on invoice id %s, %s', c.kind, c.entry_id,
                                           c.invoice_id,
                                           CASE WHEN i.invoice_id IS NULL THEN 'no invoice of its account'
                                                ELSE 'but was posted after its period or not postpaid' END)
      FROM (SELECT f.account_id, 'refund' AS kind, f.entry_id, f.invoice_id FROM billing.refunds f
             WHERE f.invoice_id IS NOT NULL
            UNION ALL
            SELECT d.account_id, 'adjustment', d.entry_id, d.invoice_id FROM billing.adjustments d
             WHERE d.invoice_id IS NOT NULL
            UNION ALL
            SELECT v.account_id, 'reversal', v.entry_id, v.invoice_id FROM billing.reversals v
             WHERE v.invoice_id IS NOT NULL) c
      LEFT JOIN billing.invoices i ON i.invoice_id = c.invoice_id AND i.account_id = c.account_id
      LEFT JOIN billing.ledger l ON l.account_id = c.account_id AND l.entry_id = c.entry_id
     WHERE (only_account IS NULL OR c.account_id = only_account)
       AND (i.invoice_id IS NULL OR l.entry_id IS NULL OR NOT l.postpaid OR l.created_at >= i.ends_at)
;
END $$;

-- Invoice numbers and credit note numbers are gapless and unique across all
-- accounts (close_period and issue_credit_note assign them under their
-- locks); for billing.verify() of every account.
CREATE OR REPLACE FUNCTION billing._verify_invoice_numbers()
RETURNS TABLE(account_id bigint, problem text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT NULL::bigint, pg_catalog.format('%s numbers have gaps or repeats: %s %s, highest number %s',
                                           n.what, n.total, n.plural, n.highest)
      FROM (SELECT 'invoice' AS what, 'invoices' AS plural, pg_catalog.count(*) AS total,
                   COALESCE(pg_catalog.max(i.invoice_number), 0) AS highest,
                   pg_catalog.count(DISTINCT i.invoice_number) AS numbers
              FROM billing.invoices i
            UNION ALL
            SELECT 'credit note', 'notes', pg_catalog.count(*), COALESCE(pg_catalog.max(c.credit_note_number), 0),
                   pg_catalog.count(DISTINCT c.credit_note_number)
              FROM billing.credit_notes c) n
     WHERE n.total <> n.highest OR n.total <> n.numbers
$$;
