-- invoice: postpaid billing. Credit limits and their audit, the suggested
-- limit, switching an account's billing type, monthly invoices and their
-- payment. Every money movement goes through billing._move, every change of
-- the available amount that is not money through billing._adjust_available.

-- Micros in one minor unit of a currency (ISO 4217 exponents): invoice lines
-- are whole minor units. Currencies not listed have two decimals.
CREATE FUNCTION billing._minor_unit_micros(currency text) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE
        WHEN currency IN ('BIF', 'CLP', 'DJF', 'GNF', 'ISK', 'JPY', 'KMF', 'KRW', 'PYG',
                          'RWF', 'UGX', 'UYI', 'VND', 'VUV', 'XAF', 'XOF', 'XPF') THEN 1000000
        WHEN currency IN ('BHD', 'IQD', 'JOD', 'KWD', 'LYD', 'OMR', 'TND') THEN 1000
        WHEN currency IN ('CLF', 'UYW') THEN 100
        ELSE 10000
    END::bigint
$$;

-- micros (>= 0) rounded half-up to whole units of unit micros
CREATE FUNCTION billing._round_half_up(micros bigint, unit bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT (pg_catalog.div(micros::numeric + unit / 2, unit) * unit)::bigint
$$;

-- Exact currency units of micros as a JSON number: 12500000 -> 12.5.
CREATE FUNCTION billing._units(micros bigint) RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.trim_scale(micros::numeric / 1000000)
$$;

-- A billing.* setting. The C module defines them, and a session that has
-- not called into it yet (a pg_cron job, say) has not loaded it.
CREATE FUNCTION billing._setting(name text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    LOAD 'MODULE_PATHNAME';
    RETURN pg_catalog.current_setting(name);
END $$;

-- Bounds of the calendar month that starts on period_start, in time zone tz.
CREATE FUNCTION billing._period_bounds(period_start date, tz text,
                                       OUT starts timestamptz, OUT ends timestamptz)
LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
    SELECT period_start::timestamp AT TIME ZONE tz,
           (period_start + interval '1 month')::timestamp AT TIME ZONE tz
$$;

-- Postpaid usage of an account (positive micros) that no invoice covers yet:
-- usage of months that have not been closed.
CREATE FUNCTION billing._unbilled_usage(account_id bigint) RETURNS bigint
LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
    SELECT COALESCE(-pg_catalog.sum(l.amount_micros), 0)::bigint
      FROM billing.ledger l
     WHERE l.account_id = _unbilled_usage.account_id AND l.kind = 'usage' AND l.postpaid
       AND NOT EXISTS (SELECT FROM billing.invoices i
                        WHERE i.account_id = l.account_id
                          AND l.created_at >= i.starts_at AND l.created_at < i.ends_at)
$$;

-- The account row, locked; PB404 when it is unknown or disabled.
CREATE FUNCTION billing._account_for_update(account_id bigint) RETURNS billing.accounts
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    acct billing.accounts;
BEGIN
    SELECT * INTO acct FROM billing.accounts a
     WHERE a.account_id = _account_for_update.account_id AND a.active FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'account % does not exist or is disabled', account_id
            USING ERRCODE = 'PB404';
    END IF;
    RETURN acct;
END $$;

CREATE FUNCTION billing.set_credit_limit(account_id bigint, limit_micros bigint, reason text)
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
    acct := billing._account_for_update(account_id);
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

CREATE FUNCTION billing.set_billing_type(account_id bigint, billing_type text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    acct billing.accounts;
    balance bigint;
BEGIN
    IF account_id IS NULL THEN
        RAISE EXCEPTION 'account_id must not be null' USING ERRCODE = '22023';
    END IF;
    IF billing_type IS NULL THEN
        RAISE EXCEPTION 'billing_type must not be null' USING ERRCODE = '22023';
    ELSIF billing_type NOT IN ('prepaid', 'postpaid') THEN
        RAISE EXCEPTION 'invalid billing type "%"', billing_type
            USING ERRCODE = '22023', HINT = 'Use "prepaid" or "postpaid".';
    END IF;
    acct := billing._account_for_update(account_id);
    IF acct.billing_type = billing_type THEN
        RETURN;
    END IF;
    SELECT COALESCE(pg_catalog.sum(l.amount_micros), 0)::bigint INTO balance
      FROM billing.ledger l WHERE l.account_id = set_billing_type.account_id;

    IF billing_type = 'postpaid' THEN
        -- prepaid usage is never invoiced, so a debt could not be collected
        IF balance < 0 THEN
            RAISE EXCEPTION 'account % has a negative balance', account_id
                USING ERRCODE = 'PB409',
                      DETAIL = pg_catalog.format('The balance is %s %s.',
                                                 billing._units(balance), acct.currency),
                      HINT = 'Add funds to cover the balance before switching to postpaid billing.';
        END IF;
        -- the balance stays in the ledger and is owed back on the first invoices
        UPDATE billing.accounts a SET billing_type = 'postpaid', prepaid_credit_micros = balance
         WHERE a.account_id = set_billing_type.account_id;
        PERFORM billing._adjust_available(account_id, acct.credit_limit_micros);
    ELSE
        -- Credit not yet consumed is plain prepaid balance again, except what
        -- the invoices still to come for postpaid usage will consume.
        UPDATE billing.accounts a
           SET billing_type = 'prepaid',
               prepaid_credit_micros = LEAST(a.prepaid_credit_micros,
                                             billing._unbilled_usage(a.account_id))
         WHERE a.account_id = set_billing_type.account_id;
        PERFORM billing._adjust_available(account_id, -acct.credit_limit_micros);
    END IF;
END $$;

-- Suggested credit limit; the formula is documented in docs/invoices.md.
CREATE FUNCTION billing.suggest_credit_limit(account_id bigint) RETURNS jsonb
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
    SELECT * INTO acct FROM billing.accounts a
     WHERE a.account_id = suggest_credit_limit.account_id AND a.active;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'account % does not exist or is disabled', account_id
            USING ERRCODE = 'PB404';
    END IF;
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

CREATE FUNCTION billing.close_period(period_start date DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tz text := billing._setting('billing.timezone');
    starts timestamptz;
    ends timestamptz;
    due date;
    acct record;
    inv billing.invoices;
    usage_total bigint;
    credit bigint;
    pause numeric := 0.1;
    issued integer := 0;
BEGIN
    IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
        -- the wait below only helps when later statements take new snapshots
        RAISE EXCEPTION 'billing.close_period() must run at the read committed isolation level'
            USING ERRCODE = '25000';
    END IF;
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

    due := (period_start + interval '1 month')::date
           + billing._setting('billing.invoice_due_days')::integer;
    FOR acct IN
        SELECT l.account_id, a.currency
          FROM billing.ledger l JOIN billing.accounts a USING (account_id)
         WHERE l.kind = 'usage' AND l.postpaid AND l.created_at >= starts AND l.created_at < ends
           AND NOT EXISTS (SELECT FROM billing.invoices i
                            WHERE i.account_id = l.account_id AND i.period_start = close_period.period_start)
         GROUP BY 1, 2 ORDER BY 1
    LOOP
        -- the account row before its slices, as set_billing_type locks them
        SELECT a.prepaid_credit_micros INTO credit FROM billing.accounts a
         WHERE a.account_id = acct.account_id FOR NO KEY UPDATE;
        INSERT INTO billing.invoices (account_id, invoice_number, period_start, period_end,
                                      starts_at, ends_at, currency, subtotal_micros, total_micros,
                                      due_date)
        VALUES (acct.account_id,
                (SELECT COALESCE(pg_catalog.max(i.invoice_number), 0) + 1 FROM billing.invoices i),
                period_start, (period_start + interval '1 month')::date, starts, ends,
                acct.currency, 0, 0, due)
        RETURNING * INTO inv;

        INSERT INTO billing.invoice_lines (account_id, invoice_id, model, quantity, usage_micros, amount_micros)
        SELECT acct.account_id, inv.invoice_id, u.model, u.requests, u.exact,
               billing._round_half_up(u.exact, billing._minor_unit_micros(acct.currency))
          FROM (SELECT COALESCE(r.model, '(none)') AS model,
                       pg_catalog.count(DISTINCT l.request_id) AS requests,
                       (-pg_catalog.sum(l.amount_micros))::bigint AS exact
                  FROM billing.ledger l LEFT JOIN billing.requests r ON r.request_id = l.request_id
                 WHERE l.account_id = acct.account_id AND l.kind = 'usage' AND l.postpaid
                   AND l.created_at >= starts AND l.created_at < ends
                 GROUP BY 1) u;

        SELECT pg_catalog.sum(il.amount_micros)::bigint, pg_catalog.sum(il.usage_micros)::bigint
          INTO inv.subtotal_micros, usage_total
          FROM billing.invoice_lines il WHERE il.invoice_id = inv.invoice_id;
        -- the ledger carries the rounding, so that it agrees with the invoice
        IF usage_total <> inv.subtotal_micros THEN
            PERFORM billing._move(acct.account_id, usage_total - inv.subtotal_micros, 'adjustment',
                                  pg_catalog.format('rounding of invoice %s', inv.invoice_number),
                                  NULL, inv.invoice_id);
        END IF;

        -- a prepaid balance left at the switch to postpaid pays first
        credit := LEAST(credit, inv.subtotal_micros);
        IF credit > 0 THEN
            UPDATE billing.accounts a SET prepaid_credit_micros = a.prepaid_credit_micros - credit
             WHERE a.account_id = acct.account_id;
        END IF;
        UPDATE billing.invoices i
           SET subtotal_micros = inv.subtotal_micros, credit_micros = credit,
               total_micros = inv.subtotal_micros - credit,
               status = CASE WHEN inv.subtotal_micros = credit THEN 'paid' ELSE 'open' END,
               paid_at = CASE WHEN inv.subtotal_micros = credit THEN i.issued_at END
         WHERE i.invoice_id = inv.invoice_id;
        issued := issued + 1;
    END LOOP;
    RETURN issued;
END $$;

CREATE FUNCTION billing.mark_invoice_paid(invoice_id bigint, payment_reference text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    inv billing.invoices;
BEGIN
    IF invoice_id IS NULL THEN
        RAISE EXCEPTION 'invoice_id must not be null' USING ERRCODE = '22023';
    END IF;
    -- the invoice row first, then the slices (in billing._move): the order
    -- of close_period, which locks billing.invoices first
    UPDATE billing.invoices i
       SET status = 'paid', paid_at = pg_catalog.clock_timestamp(),
           payment_reference = mark_invoice_paid.payment_reference
     WHERE i.invoice_id = mark_invoice_paid.invoice_id AND i.status = 'open'
    RETURNING * INTO inv;
    IF FOUND THEN
        PERFORM billing._move(inv.account_id, inv.total_micros, 'invoice_payment',
                              payment_reference, NULL, inv.invoice_id);
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
CREATE FUNCTION billing._verify_invoices(only_account bigint DEFAULT NULL)
RETURNS TABLE(account_id bigint, problem text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH inv AS (
        SELECT i.*,
               (SELECT pg_catalog.count(*) FROM billing.invoice_lines il
                 WHERE il.invoice_id = i.invoice_id) AS nlines,
               (SELECT COALESCE(pg_catalog.sum(il.amount_micros), 0)::bigint FROM billing.invoice_lines il
                 WHERE il.invoice_id = i.invoice_id) AS lines_micros,
               (SELECT COALESCE(pg_catalog.sum(il.usage_micros), 0)::bigint FROM billing.invoice_lines il
                 WHERE il.invoice_id = i.invoice_id) AS usage_micros,
               (SELECT COALESCE(-pg_catalog.sum(l.amount_micros), 0)::bigint
                  FROM billing.ledger l
                 WHERE l.account_id = i.account_id AND l.kind = 'usage' AND l.postpaid
                   AND l.created_at >= i.starts_at AND l.created_at < i.ends_at) AS ledger_usage,
               (SELECT COALESCE(pg_catalog.sum(l.amount_micros), 0)::bigint FROM billing.ledger l
                 WHERE l.account_id = i.account_id AND l.invoice_id = i.invoice_id
                   AND l.kind = 'adjustment') AS rounding,
               (SELECT pg_catalog.count(*) FROM billing.ledger l
                 WHERE l.account_id = i.account_id AND l.invoice_id = i.invoice_id
                   AND l.kind = 'invoice_payment') AS npayments,
               (SELECT COALESCE(pg_catalog.sum(l.amount_micros), 0)::bigint FROM billing.ledger l
                 WHERE l.account_id = i.account_id AND l.invoice_id = i.invoice_id
                   AND l.kind = 'invoice_payment') AS paid_micros
          FROM billing.invoices i
         WHERE only_account IS NULL OR i.account_id = only_account
    )
    SELECT inv.account_id, pg_catalog.format('invoice %s: %s', inv.invoice_number, p.problem)
      FROM inv, LATERAL (VALUES
        (inv.nlines = 0, 'has no lines'),
        (inv.subtotal_micros <> inv.lines_micros,
         pg_catalog.format('subtotal %s is not the sum of its lines %s', inv.subtotal_micros, inv.lines_micros)),
        (inv.credit_micros < 0 OR inv.credit_micros > inv.subtotal_micros,
         pg_catalog.format('credit %s is not between 0 and the subtotal', inv.credit_micros)),
        (inv.total_micros <> inv.subtotal_micros - inv.credit_micros,
         pg_catalog.format('total %s is not subtotal %s less credit %s',
                           inv.total_micros, inv.subtotal_micros, inv.credit_micros)),
        (inv.usage_micros <> inv.ledger_usage,
         pg_catalog.format('lines bill %s micros of usage, the ledger has %s in the period',
                           inv.usage_micros, inv.ledger_usage)),
        (inv.rounding <> inv.usage_micros - inv.lines_micros,
         pg_catalog.format('rounding adjustments %s do not match the rounding %s',
                           inv.rounding, inv.usage_micros - inv.lines_micros)),
        (inv.status = 'paid' AND inv.total_micros > 0
             AND (inv.npayments <> 1 OR inv.paid_micros <> inv.total_micros),
         pg_catalog.format('paid with %s payment entries of %s micros', inv.npayments, inv.paid_micros)),
        ((inv.status <> 'paid' OR inv.total_micros = 0) AND inv.npayments <> 0,
         pg_catalog.format('%s invoice with payment entries', inv.status)),
        (inv.total_micros = 0 AND inv.status = 'open', 'open with nothing to pay')
      ) AS p(failed, problem)
     WHERE p.failed
    UNION ALL
    SELECT il.account_id, pg_catalog.format('invoice %s, model %s: %s', i.invoice_number, il.model, p.problem)
      FROM billing.invoice_lines il JOIN billing.invoices i USING (invoice_id),
           LATERAL (VALUES
        (il.account_id <> i.account_id, 'line of another account'),
        (il.amount_micros % billing._minor_unit_micros(i.currency) <> 0,
         pg_catalog.format('amount %s is not whole minor units of %s', il.amount_micros, i.currency)),
        (il.amount_micros <> billing._round_half_up(il.usage_micros, billing._minor_unit_micros(i.currency)),
         pg_catalog.format('amount %s is not usage %s rounded half-up', il.amount_micros, il.usage_micros)),
        (il.quantity <= 0, 'no requests')
      ) AS p(failed, problem)
     WHERE p.failed AND (only_account IS NULL OR i.account_id = only_account)
    UNION ALL
    -- each line bills the period's usage entries of its model ('(none)': of no request)
    SELECT i.account_id,
           pg_catalog.format('invoice %s, model %s: the line bills %s requests for %s micros, the period has %s for %s',
                             i.invoice_number, m.model, m.line_requests, m.line_usage, m.requests, m.usage)
      FROM (SELECT COALESCE(il.invoice_id, u.invoice_id) AS invoice_id, COALESCE(il.model, u.model) AS model,
                   COALESCE(il.quantity, 0) AS line_requests, COALESCE(il.usage_micros, 0) AS line_usage,
                   COALESCE(u.requests, 0) AS requests, COALESCE(u.usage, 0) AS usage
              FROM (SELECT x.invoice_id, x.model, x.quantity, x.usage_micros
                      FROM billing.invoice_lines x JOIN billing.invoices xi USING (invoice_id)
                     WHERE only_account IS NULL OR xi.account_id = only_account) il
              FULL JOIN (SELECT ui.invoice_id, COALESCE(r.model, '(none)') AS model,
                                pg_catalog.count(DISTINCT l.request_id) AS requests,
                                (-pg_catalog.sum(l.amount_micros))::bigint AS usage
                           FROM billing.invoices ui
                           JOIN billing.ledger l
                             ON l.account_id = ui.account_id AND l.kind = 'usage' AND l.postpaid
                            AND l.created_at >= ui.starts_at AND l.created_at < ui.ends_at
                           LEFT JOIN billing.requests r ON r.request_id = l.request_id
                          WHERE only_account IS NULL OR ui.account_id = only_account
                          GROUP BY 1, 2) u
                ON u.invoice_id = il.invoice_id AND u.model = il.model) m
      JOIN billing.invoices i USING (invoice_id)
     WHERE m.line_requests <> m.requests OR m.line_usage <> m.usage
    UNION ALL
    SELECT l.account_id, pg_catalog.format('ledger entry %s refers to no invoice of its account', l.entry_id)
      FROM billing.ledger l
     WHERE l.invoice_id IS NOT NULL AND (only_account IS NULL OR l.account_id = only_account)
       AND NOT EXISTS (SELECT FROM billing.invoices i
                        WHERE i.invoice_id = l.invoice_id AND i.account_id = l.account_id)
    UNION ALL
    SELECT NULL::bigint, pg_catalog.format('invoice numbers have gaps: %s invoices, highest number %s',
                                           pg_catalog.count(*), pg_catalog.max(i.invoice_number))
      FROM billing.invoices i
     WHERE only_account IS NULL
    HAVING pg_catalog.count(*) <> COALESCE(pg_catalog.max(i.invoice_number), 0)
$$;
