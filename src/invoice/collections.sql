-- collections (docs/invoices.md): void invoices and their reissue, credit
-- notes, overdue accounts, billing details, the invoice document. Money
-- moves through billing._move and billing._keep_credit only.

-- Internal: refuses (22023) billing details that do not pass the one check
-- (details.c), which billing.seller_details passes too.
CREATE OR REPLACE FUNCTION billing._check_billing_details(details jsonb) RETURNS void
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'billing_check_billing_details';

-- Internal: refuses (22023) a reason NULL, blank or over 1024 characters,
-- and an idempotency key that is not 1 to 256 characters.
CREATE OR REPLACE FUNCTION billing._check_reason_and_key(reason text, idempotency_key text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF reason IS NULL OR pg_catalog.btrim(reason) = '' OR pg_catalog.length(reason) > 1024 THEN
        RAISE EXCEPTION 'a reason of 1 to 1024 characters is required' USING ERRCODE = '22023';
    END IF;
    PERFORM billing._check_length(idempotency_key, 'idempotency key');
END $$;

-- An invoice's or a credit note's number as documents show it: the prefix
-- setting, then the number.
CREATE OR REPLACE FUNCTION billing._invoice_number(n bigint) RETURNS text
LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
    SELECT billing._setting('billing.invoice_number_prefix') || n
$$;
CREATE OR REPLACE FUNCTION billing._credit_note_number(n bigint) RETURNS text
LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
    SELECT billing._setting('billing.credit_note_number_prefix') || n
$$;

-- What the credit notes of an invoice took off, those issued up to "upto".
CREATE OR REPLACE FUNCTION billing._invoice_notes(account_id bigint, invoice_id bigint,
                                                  upto timestamptz DEFAULT 'infinity') RETURNS bigint
LANGUAGE plpgsql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    total bigint;
BEGIN
    SELECT COALESCE(pg_catalog.sum(n.amount_micros), 0)::bigint INTO total FROM billing.credit_notes n
     WHERE n.account_id = _invoice_notes.account_id AND n.invoice_id = _invoice_notes.invoice_id
       AND n.created_at <= upto;
    RETURN total;
END $$;

-- What is still to pay on an invoice: its total less its notes while open,
-- else 0.
CREATE OR REPLACE FUNCTION billing._amount_due(inv billing.invoices) RETURNS bigint
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN inv.status = 'open'
                THEN inv.total_micros - billing._invoice_notes(inv.account_id, inv.invoice_id)
                ELSE 0 END
$$;

-- The instant an invoice due on due becomes overdue: the start of day
-- due + grace + 1 in time zone tz; never (NULL) when grace is -1.
CREATE OR REPLACE FUNCTION billing._overdue_start(due date, grace integer, tz text) RETURNS timestamptz
LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN grace >= 0 THEN (due + grace + 1)::timestamp AT TIME ZONE tz END
$$;

-- An account's days of grace: its policy (accounts.overdue_grace_days),
-- else billing.overdue_grace_days. (Of the column, not the row: on Citus a
-- query of the accounts passes a shard's row type, which no function takes.)
CREATE OR REPLACE FUNCTION billing._grace_days(policy integer) RETURNS integer
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT COALESCE(policy, billing._setting('billing.overdue_grace_days')::integer)
$$;

-- The account's oldest invoice that is overdue now (NULLs: none), with the
-- instant it became overdue. The one definition of "overdue":
-- mark_overdue() and the clearing after a payment, void or note use it.
CREATE OR REPLACE FUNCTION billing._overdue_invoice(account_id bigint, OUT invoice billing.invoices,
                                                    OUT since timestamptz)
LANGUAGE plpgsql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    grace integer;
    tz text := billing._setting('billing.timezone');
BEGIN
    SELECT a.overdue_grace_days INTO grace FROM billing.accounts a
     WHERE a.account_id = _overdue_invoice.account_id;
    grace := billing._grace_days(grace);
    SELECT * INTO invoice FROM billing.invoices i
     WHERE i.account_id = _overdue_invoice.account_id AND i.status = 'open'
       AND billing._overdue_start(i.due_date, grace, tz) <= pg_catalog.now()
     ORDER BY i.due_date, i.invoice_number LIMIT 1;
    since := billing._overdue_start(invoice.due_date, grace, tz);
END $$;

-- The errdetail of "payment overdue" (accounts.c): the oldest overdue invoice.
CREATE OR REPLACE FUNCTION billing._overdue_detail(account_id bigint) RETURNS text
LANGUAGE plpgsql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    inv billing.invoices;
BEGIN
    SELECT (o.invoice).* INTO inv FROM billing._overdue_invoice(account_id) o;
    IF inv.invoice_id IS NULL THEN
        -- flagged by mark_overdue() under an earlier policy: the oldest open one
        SELECT * INTO inv FROM billing.invoices i
         WHERE i.account_id = _overdue_detail.account_id AND i.status = 'open'
         ORDER BY i.due_date, i.invoice_number LIMIT 1;
    END IF;
    IF inv.invoice_id IS NULL THEN
        RETURN 'The account is marked overdue.';
    END IF;
    RETURN pg_catalog.format('Invoice %s of %s %s was due on %s.', billing._invoice_number(inv.invoice_number),
                             billing._units(billing._amount_due(inv)), inv.currency,
                             pg_catalog.to_char(inv.due_date, 'YYYY-MM-DD'));
END $$;

-- After a payment, a void or a note of invoice_id: clears the account's
-- overdue flag at once when no invoice is overdue any more. The account
-- row is locked first, as mark_overdue() locks it.
CREATE OR REPLACE FUNCTION billing._overdue_recheck(account_id bigint, invoice_id bigint) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    flagged timestamptz;
BEGIN
    SELECT a.overdue_since INTO flagged FROM billing.accounts a
     WHERE a.account_id = _overdue_recheck.account_id FOR NO KEY UPDATE;
    IF flagged IS NULL
       OR (SELECT o.since FROM billing._overdue_invoice(_overdue_recheck.account_id) o) IS NOT NULL THEN
        RETURN;
    END IF;
    UPDATE billing.accounts a SET overdue_since = NULL WHERE a.account_id = _overdue_recheck.account_id;
    PERFORM billing._event(account_id, 'account_reinstated',
                           pg_catalog.jsonb_build_object('overdue_since', flagged, 'invoice_id', invoice_id));
END $$;

CREATE OR REPLACE FUNCTION billing.mark_overdue() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    one bigint;
    flagged timestamptz;
    grace integer;
    o record;
    changed integer := 0;
BEGIN
    PERFORM billing._require_writable('billing.mark_overdue()');
    -- each account's invoices are read after its row lock
    PERFORM billing._require_read_committed('billing.mark_overdue()');
    FOR one IN
        SELECT a.account_id FROM billing.accounts a
         WHERE a.overdue_since IS NOT NULL
            OR EXISTS (SELECT FROM billing.invoices i WHERE i.account_id = a.account_id AND i.status = 'open')
         ORDER BY 1
    LOOP
        SELECT a.overdue_since, a.overdue_grace_days INTO flagged, grace FROM billing.accounts a
         WHERE a.account_id = one FOR NO KEY UPDATE;
        grace := billing._grace_days(grace);
        SELECT * INTO o FROM billing._overdue_invoice(one);
        IF flagged IS NULL AND o.since IS NOT NULL THEN
            UPDATE billing.accounts a SET overdue_since = o.since WHERE a.account_id = one;
            PERFORM billing._event(one, 'invoice_overdue', pg_catalog.jsonb_build_object(
                'invoice_id', (o.invoice).invoice_id, 'invoice_number', (o.invoice).invoice_number,
                'amount_due_micros', billing._amount_due(o.invoice), 'currency', (o.invoice).currency,
                'due_date', (o.invoice).due_date, 'grace_days', grace, 'overdue_since', o.since));
            changed := changed + 1;
        ELSIF flagged IS NOT NULL AND o.since IS NULL THEN
            UPDATE billing.accounts a SET overdue_since = NULL WHERE a.account_id = one;
            PERFORM billing._event(one, 'account_reinstated', pg_catalog.jsonb_build_object(
                'overdue_since', flagged, 'invoice_id', NULL));
            changed := changed + 1;
        END IF;
    END LOOP;
    RETURN changed;
END $$;

CREATE OR REPLACE FUNCTION billing.set_overdue_policy(account_id bigint, grace_days integer) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM billing._not_null('account_id', account_id);
    IF grace_days NOT BETWEEN -1 AND 365 THEN
        RAISE EXCEPTION 'grace_days must be -1 to 365' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('The value was %s; -1 is never overdue, NULL the setting.', grace_days);
    END IF;
    PERFORM billing._require_writable('billing.set_overdue_policy()');
    PERFORM billing._account(account_id, true, true);
    -- the flag follows at the next mark_overdue()
    UPDATE billing.accounts a SET overdue_grace_days = grace_days
     WHERE a.account_id = set_overdue_policy.account_id
       AND a.overdue_grace_days IS DISTINCT FROM grace_days;
END $$;

CREATE OR REPLACE FUNCTION billing.set_billing_details(account_id bigint, details jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM billing._not_null('account_id', account_id);
    IF details IS NOT NULL THEN
        PERFORM billing._check_billing_details(details);
    END IF;
    PERFORM billing._require_writable('billing.set_billing_details()');
    PERFORM billing._account(account_id, true, true);
    -- invoices issued from now on copy them; issued ones keep theirs
    UPDATE billing.accounts a SET billing_details = details
     WHERE a.account_id = set_billing_details.account_id
       AND a.billing_details IS DISTINCT FROM details;
END $$;

-- An invoice's row, locked; PB404 when there is none. Its account first,
-- so that the lock is taken by a query of that account's rows (on Citus a
-- query of one shard: a lock across shards is refused).
CREATE OR REPLACE FUNCTION billing._invoice_locked(invoice_id bigint) RETURNS billing.invoices
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    acct bigint;
    inv billing.invoices;
BEGIN
    SELECT i.account_id INTO acct FROM billing.invoices i WHERE i.invoice_id = _invoice_locked.invoice_id;
    SELECT * INTO inv FROM billing.invoices i
     WHERE i.account_id = acct AND i.invoice_id = _invoice_locked.invoice_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'invoice % does not exist', invoice_id USING ERRCODE = 'PB404';
    END IF;
    RETURN inv;
END $$;

-- The payload of invoice_voided: invoice_issued's and the void.
CREATE OR REPLACE FUNCTION billing._void_event(inv billing.invoices) RETURNS jsonb
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT billing._invoice_event(inv)
           || pg_catalog.jsonb_build_object('voided_at', inv.voided_at, 'void_reason', inv.void_reason)
$$;

CREATE OR REPLACE FUNCTION billing.void_invoice(invoice_id bigint, reason text,
                                                idempotency_key text DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    inv billing.invoices;
    keyed billing.invoices;
    rounding bigint;
    notes bigint;
    voided timestamptz;
BEGIN
    PERFORM billing._not_null('invoice_id', invoice_id);
    PERFORM billing._check_reason_and_key(reason, idempotency_key);
    PERFORM billing._require_writable('billing.void_invoice()');
    -- Voids and closes one at a time (close_period takes the same lock): a
    -- close never misses a void that committed before it, nor reissues a
    -- month whose void is under way. Then the invoice's row, which payments
    -- and notes lock (they take billing.invoices first too).
    LOCK TABLE billing.invoices IN SHARE ROW EXCLUSIVE MODE;
    inv := billing._invoice_locked(invoice_id);
    IF idempotency_key IS NOT NULL THEN
        SELECT * INTO keyed FROM billing.invoices i
         WHERE i.account_id = inv.account_id AND i.void_idempotency_key = idempotency_key;
        IF FOUND THEN
            PERFORM billing._key_replay(idempotency_key,
                                        keyed.invoice_id = inv.invoice_id AND keyed.void_reason = reason,
                                        'Invoice', keyed.invoice_id, 'voided');
        END IF;
    END IF;
    IF inv.status = 'void' THEN
        RETURN billing.invoice_document(inv.invoice_id);
    ELSIF inv.status = 'paid' THEN
        RAISE EXCEPTION 'invoice % is paid', inv.invoice_number
            USING ERRCODE = 'PB409', HINT = 'Issue a credit note instead.';
    END IF;
    PERFORM billing._account(inv.account_id, true, false);

    -- its rounding and true-up entries (every adjustment it posted) reversed
    SELECT COALESCE(pg_catalog.sum(l.amount_micros), 0)::bigint INTO rounding FROM billing.ledger l
     WHERE l.account_id = inv.account_id AND l.invoice_id = inv.invoice_id AND l.kind = 'adjustment';
    IF rounding <> 0 THEN
        PERFORM billing._move(inv.account_id, -rounding, 'adjustment',
                              pg_catalog.format('void of invoice %s', inv.invoice_number), NULL, inv.invoice_id);
    END IF;
    -- the kept credit it used and what its notes took off are kept again
    notes := billing._invoice_notes(inv.account_id, inv.invoice_id);
    PERFORM billing._keep_credit(inv.account_id, inv.credit_micros + notes);
    -- its corrections go to the next invoice of the month, or a later one
    UPDATE billing.refunds f SET invoice_id = NULL
     WHERE f.account_id = inv.account_id AND f.invoice_id = inv.invoice_id;
    UPDATE billing.adjustments d SET invoice_id = NULL
     WHERE d.account_id = inv.account_id AND d.invoice_id = inv.invoice_id;
    UPDATE billing.reversals v SET invoice_id = NULL
     WHERE v.account_id = inv.account_id AND v.invoice_id = inv.invoice_id;
    -- the time in a variable: Citus evaluates no volatile function in a SET
    voided := pg_catalog.clock_timestamp();
    UPDATE billing.invoices i
       SET status = 'void', voided_at = voided, void_reason = reason,
           void_idempotency_key = idempotency_key
     WHERE i.account_id = inv.account_id AND i.invoice_id = inv.invoice_id
    RETURNING * INTO inv;
    PERFORM billing._event(inv.account_id, 'invoice_voided', billing._void_event(inv));
    PERFORM billing._overdue_recheck(inv.account_id, inv.invoice_id);
    RETURN billing.invoice_document(inv.invoice_id);
END $$;

-- A credit note as issue_credit_note returns it and credit_note_issued
-- carries it; amount_due_micros is its invoice's now.
CREATE OR REPLACE FUNCTION billing._credit_note_object(n billing.credit_notes, inv billing.invoices)
RETURNS jsonb LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.jsonb_build_object(
        'object', 'credit_note', 'credit_note_id', n.credit_note_id,
        'number', billing._credit_note_number(n.credit_note_number),
        'credit_note_number', n.credit_note_number, 'invoice_id', n.invoice_id,
        'invoice_number', inv.invoice_number, 'account_id', n.account_id,
        'amount_micros', n.amount_micros, 'amount', billing._units(n.amount_micros),
        'currency', inv.currency, 'settlement', n.settlement, 'reason', n.reason,
        'amount_due_micros', billing._amount_due(inv), 'issued_at', n.created_at)
$$;

CREATE OR REPLACE FUNCTION billing.issue_credit_note(invoice_id bigint, amount_micros bigint, reason text,
                                                     settlement text DEFAULT 'credit',
                                                     idempotency_key text DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    inv billing.invoices;
    note billing.credit_notes;
    acct billing.accounts;
    left_micros bigint;
    number bigint;
    entry bigint;
    issued timestamptz;
BEGIN
    PERFORM billing._not_null('invoice_id', invoice_id);
    IF amount_micros IS NULL OR amount_micros <= 0 THEN
        RAISE EXCEPTION 'amount_micros must be positive'
            USING ERRCODE = '22023', DETAIL = pg_catalog.format('The value was %s.', amount_micros);
    END IF;
    PERFORM billing._check_reason_and_key(reason, idempotency_key);
    IF settlement IS NULL OR settlement NOT IN ('credit', 'refund') THEN
        RAISE EXCEPTION 'settlement must be credit or refund' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('The value was %s.', COALESCE(settlement, 'null'));
    END IF;
    PERFORM billing._require_writable('billing.issue_credit_note()');
    -- billing.invoices before any row, as close_period and void_invoice
    -- lock it; then the invoice's row, so that notes of one invoice come
    -- one at a time and never take off more than its total
    LOCK TABLE billing.invoices IN ROW EXCLUSIVE MODE;
    inv := billing._invoice_locked(invoice_id);
    IF idempotency_key IS NOT NULL THEN
        SELECT * INTO note FROM billing.credit_notes n
         WHERE n.account_id = inv.account_id AND n.idempotency_key = idempotency_key;
        IF FOUND THEN
            PERFORM billing._key_replay(idempotency_key,
                                        note.invoice_id = inv.invoice_id AND note.amount_micros = amount_micros
                                        AND note.reason = reason AND note.settlement = settlement,
                                        'Credit note', note.credit_note_id, 'issued');
            RETURN billing._credit_note_object(note, inv);
        END IF;
    END IF;
    IF inv.status = 'void' THEN
        RAISE EXCEPTION 'invoice % is void', inv.invoice_number
            USING ERRCODE = 'PB409', DETAIL = 'A void invoice takes no credit note.';
    END IF;
    IF settlement = 'refund' AND inv.status = 'open' THEN
        RAISE EXCEPTION 'a refund note needs a paid invoice' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('Invoice %s is open: a credit note lowers what is due.', inv.invoice_number);
    END IF;
    IF amount_micros % billing._minor_unit_micros(inv.currency) <> 0 THEN
        RAISE EXCEPTION 'amount_micros must be whole minor units of %', inv.currency USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('The value was %s.', amount_micros);
    END IF;
    left_micros := inv.total_micros - billing._invoice_notes(inv.account_id, inv.invoice_id);
    IF left_micros <= 0 THEN
        RAISE EXCEPTION 'invoice % has nothing left to credit', inv.invoice_number USING ERRCODE = 'PB409',
            DETAIL = pg_catalog.format('Its total of %s %s is credited in full.',
                                       billing._units(inv.total_micros), inv.currency);
    ELSIF amount_micros > left_micros THEN
        RAISE EXCEPTION 'amount_micros is more than is left to credit' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('%s %s is left of invoice %s.', billing._units(left_micros),
                                       inv.currency, inv.invoice_number);
    END IF;

    -- one numberer at a time: numbers are max + 1, without gaps
    LOCK TABLE billing.credit_notes IN SHARE ROW EXCLUSIVE MODE;
    SELECT COALESCE(pg_catalog.max(n.credit_note_number), 0) + 1 INTO number FROM billing.credit_notes n;
    acct := billing._account(inv.account_id, true, false);
    issued := pg_catalog.clock_timestamp();
    IF settlement = 'credit' THEN
        entry := billing._move(inv.account_id, amount_micros, 'credit_note',
                               pg_catalog.format('credit note %s of invoice %s', number, inv.invoice_number),
                               NULL, inv.invoice_id);
        -- on a paid invoice the money is the account's again: kept for the
        -- next invoices while postpaid, plain prepaid balance otherwise
        IF inv.status = 'paid' AND acct.billing_type = 'postpaid' THEN
            PERFORM billing._keep_credit(inv.account_id, amount_micros);
        END IF;
    END IF;
    INSERT INTO billing.credit_notes (account_id, credit_note_number, invoice_id, amount_micros, settlement,
                                      reason, idempotency_key, entry_id, created_at)
    VALUES (inv.account_id, number, inv.invoice_id, amount_micros, settlement, reason, idempotency_key,
            entry, issued)
    RETURNING * INTO note;
    -- nothing left due: paid at once, without a payment entry
    IF inv.status = 'open' AND amount_micros = left_micros THEN
        UPDATE billing.invoices i SET status = 'paid', paid_at = issued
         WHERE i.account_id = inv.account_id AND i.invoice_id = inv.invoice_id
        RETURNING * INTO inv;
    END IF;
    PERFORM billing._event(inv.account_id, 'credit_note_issued', billing._credit_note_object(note, inv));
    IF inv.status = 'paid' AND inv.paid_at = issued THEN
        PERFORM billing._event(inv.account_id, 'invoice_paid', billing._invoice_event(inv));
    END IF;
    PERFORM billing._overdue_recheck(inv.account_id, inv.invoice_id);
    RETURN billing._credit_note_object(note, inv);
END $$;

CREATE OR REPLACE FUNCTION billing.list_invoices(account_id bigint)
RETURNS TABLE(invoice_id bigint, number text, status text, period_start date, period_end date,
              issued_at timestamptz, due_date date, total_micros bigint, amount_due_micros bigint,
              currency text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    inv billing.invoices;
BEGIN
    PERFORM billing._not_null('account_id', account_id);
    -- a disabled account's invoices are listed too
    PERFORM billing._account(account_id, false, false);
    FOR inv IN SELECT * FROM billing.invoices i WHERE i.account_id = list_invoices.account_id
                ORDER BY i.period_start DESC, i.invoice_number DESC LOOP
        invoice_id := inv.invoice_id;
        number := billing._invoice_number(inv.invoice_number);
        status := inv.status;
        period_start := inv.period_start;
        period_end := inv.period_end;
        issued_at := inv.issued_at;
        due_date := inv.due_date;
        total_micros := inv.total_micros;
        amount_due_micros := billing._amount_due(inv);
        currency := inv.currency;
        RETURN NEXT;
    END LOOP;
END $$;

-- micros and their exact decimal, as the document's twin keys
CREATE OR REPLACE FUNCTION billing._twin(key text, micros bigint) RETURNS jsonb
LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.jsonb_build_object(key || '_micros', micros, key, billing._units(micros))
$$;

CREATE OR REPLACE FUNCTION billing.invoice_document(invoice_id bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    inv billing.invoices;
    lines jsonb;
    corrections jsonb;
    notes jsonb;
    payments jsonb;
BEGIN
    PERFORM billing._not_null('invoice_id', invoice_id);
    SELECT * INTO inv FROM billing.invoices i WHERE i.invoice_id = invoice_document.invoice_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'invoice % does not exist', invoice_id USING ERRCODE = 'PB404';
    END IF;
    SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'model', il.model, 'description', il.description, 'quantity', il.quantity)
               || billing._twin('usage', il.usage_micros) || billing._twin('amount', il.amount_micros)
               ORDER BY il.model), '[]')
      INTO lines FROM billing.invoice_lines il
     WHERE il.account_id = inv.account_id AND il.invoice_id = inv.invoice_id;
    SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'kind', l.kind, 'entry_id', l.entry_id, 'created_at', l.created_at, 'reason', c.reason)
               || billing._twin('amount', l.amount_micros) ORDER BY l.entry_id), '[]')
      INTO corrections
      FROM (SELECT f.entry_id, f.reason FROM billing.refunds f
             WHERE f.account_id = inv.account_id AND f.invoice_id = inv.invoice_id
            UNION ALL
            SELECT d.entry_id, d.reason FROM billing.adjustments d
             WHERE d.account_id = inv.account_id AND d.invoice_id = inv.invoice_id) c
      JOIN billing.ledger l ON l.account_id = inv.account_id AND l.entry_id = c.entry_id;
    SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'credit_note_id', n.credit_note_id, 'number', billing._credit_note_number(n.credit_note_number),
               'credit_note_number', n.credit_note_number, 'settlement', n.settlement, 'reason', n.reason,
               'issued_at', n.created_at)
               || billing._twin('amount', n.amount_micros) ORDER BY n.credit_note_number), '[]')
      INTO notes FROM billing.credit_notes n
     WHERE n.account_id = inv.account_id AND n.invoice_id = inv.invoice_id;
    SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'entry_id', l.entry_id, 'paid_at', l.created_at, 'payment_reference', l.reference)
               || billing._twin('amount', l.amount_micros) ORDER BY l.entry_id), '[]')
      INTO payments FROM billing.ledger l
     WHERE l.account_id = inv.account_id AND l.invoice_id = inv.invoice_id AND l.kind = 'invoice_payment';
    RETURN pg_catalog.jsonb_build_object(
               'object', 'invoice', 'invoice_id', inv.invoice_id, 'account_id', inv.account_id,
               'number', billing._invoice_number(inv.invoice_number), 'invoice_number', inv.invoice_number,
               'status', inv.status, 'issued_at', inv.issued_at, 'due_date', inv.due_date,
               'paid_at', inv.paid_at, 'voided_at', inv.voided_at, 'void_reason', inv.void_reason,
               'period', pg_catalog.jsonb_build_object(
                   'start', inv.period_start, 'end', inv.period_end, 'starts_at', inv.starts_at,
                   'ends_at', inv.ends_at, 'timezone', billing._setting('billing.timezone')),
               'currency', inv.currency, 'seller', inv.seller, 'buyer', inv.buyer, 'lines', lines,
               'corrections', corrections, 'credit_notes', notes, 'payments', payments,
               'corrections_total', billing._units(inv.corrections_micros))
           || billing._twin('subtotal', inv.subtotal_micros)
           || pg_catalog.jsonb_build_object('corrections_micros', inv.corrections_micros)
           -- true_up_micros: a column of section 20 (0 where this release has none)
           || billing._twin('true_up', COALESCE((pg_catalog.to_jsonb(inv) ->> 'true_up_micros')::bigint, 0))
           || billing._twin('credit', inv.credit_micros)
           || billing._twin('total', inv.total_micros)
           || billing._twin('amount_due', billing._amount_due(inv));
END $$;
