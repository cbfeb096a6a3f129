-- Accounts, funds, balances and the ledger's invariants.

CREATE OR REPLACE FUNCTION billing.create_account(external_id text, billing_type text DEFAULT 'prepaid',
                                       currency text DEFAULT 'USD')
RETURNS bigint LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_create_account';

CREATE OR REPLACE FUNCTION billing.add_funds(account_id bigint, amount_micros bigint,
                                  idempotency_key text DEFAULT NULL, reference text DEFAULT NULL)
RETURNS bigint LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_add_funds';

CREATE OR REPLACE FUNCTION billing.balance(account_id bigint)
RETURNS jsonb LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_balance';

-- Internal: balance()'s available amount and holds. balance() reads them
-- and billing._postpaid_position in one statement of functions only, so in
-- one snapshot; on Citus such a statement runs where it is called, and each
-- query inside goes to the account's shard (a query of the tables that
-- called a function of billing's would run on the shard, where that
-- function could not query further).
-- Internal: the one definition of what is held: the holds of the account's
-- unfinished requests, of those a limit of scope applies to (NULL: all),
-- but for request except_request. PL/pgSQL, not SQL: Citus plans no SQL
-- function's parameters.
CREATE OR REPLACE FUNCTION billing._holds(account_id bigint, scope text DEFAULT NULL,
                                          except_request bigint DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN (SELECT COALESCE(pg_catalog.sum(r.hold_micros), 0)::bigint FROM billing.requests r
             WHERE r.account_id = _holds.account_id AND billing._request_open(r.status)
               AND (_holds.scope IS NULL OR r.scope = _holds.scope)
               AND r.request_id IS DISTINCT FROM except_request);
END $$;

CREATE OR REPLACE FUNCTION billing._available_position(account_id bigint, OUT available_micros bigint,
                                                       OUT held_micros bigint)
LANGUAGE plpgsql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    -- two statements, one snapshot (a STABLE function's); apart, because on
    -- Citus a query of the slices that called billing._holds would run on
    -- the shard, where _holds cannot query further
    SELECT COALESCE(pg_catalog.sum(s.available_micros), 0)::bigint INTO available_micros
      FROM billing.account_slices s WHERE s.account_id = _available_position.account_id;
    held_micros := billing._holds(_available_position.account_id);
END $$;

-- Internal: the account's row, locked when for_update; PB404 when it is
-- unknown, or disabled and active_only. The cold paths' check that an
-- account exists, defined with the hot paths' one (accounts.c).
CREATE OR REPLACE FUNCTION billing._account(account_id bigint, for_update boolean, active_only boolean)
RETURNS billing.accounts LANGUAGE C STRICT SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_account_row';

-- Internal: money movements of the cold paths (top-ups, invoices, credit
-- grants and their expiry); returns the entry. Granted to nobody.
CREATE OR REPLACE FUNCTION billing._move(account_id bigint, amount_micros bigint, kind text,
                              reference text DEFAULT NULL, topup_id bigint DEFAULT NULL,
                              invoice_id bigint DEFAULT NULL, grant_id bigint DEFAULT NULL)
RETURNS bigint LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_move';

-- Internal: refuses (PB409) a postpaid account (its row, from billing._account)
-- with the C paths' refusal (account_require_prepaid); detail says why.
CREATE OR REPLACE FUNCTION billing._require_prepaid(acct billing.accounts, detail text)
RETURNS void LANGUAGE C STRICT SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_require_prepaid';

-- Internal: the argument checks of the C functions (args.c), for PL/pgSQL.
-- _not_null refuses (22023, "<name> must not be null") the first NULL of
-- values, named by its place in names ('account_id, amount_micros');
-- _check_length refuses (22023) a value that is not 1 to maxlen characters
-- (NULL: args.h's ARGS_KEY_MAX, 256; a NULL value passes); _key_replay answers a replayed idempotency key: id when
-- the row it made has the same parameters (same), else PB409.
CREATE OR REPLACE FUNCTION billing._not_null(names text, VARIADIC vals "any")
RETURNS void LANGUAGE C IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'billing_not_null';

CREATE OR REPLACE FUNCTION billing._check_length(value text, what text, maxlen integer DEFAULT NULL)
RETURNS void LANGUAGE C IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'billing_check_length';

CREATE OR REPLACE FUNCTION billing._key_replay(idempotency_key text, same boolean, what text, id bigint,
                                               verb text)
RETURNS bigint LANGUAGE C IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'billing_key_replay';

-- Internal: refuses (22023) a billing type that is not prepaid or postpaid;
-- create_account's check, for set_billing_type.
CREATE OR REPLACE FUNCTION billing._check_billing_type(billing_type text)
RETURNS void LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'billing_check_billing_type';

-- Internal: is an entry of this kind, amount and request one the ledger
-- allows? The kinds are listed once, in ledger/kinds.c; verify() asks here.
CREATE OR REPLACE FUNCTION billing._ledger_entry_valid(kind text, amount_micros bigint,
                                                       has_request boolean)
RETURNS boolean LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'billing_ledger_entry_valid';

CREATE OR REPLACE FUNCTION billing._adjust_available(account_id bigint, delta_micros bigint)
RETURNS void LANGUAGE C STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_adjust_available';

-- Internal: the prepaid credit kept for the invoices moves by delta_micros
-- (the money stays in the ledger); invoicing's one way to it. Granted to nobody.
CREATE OR REPLACE FUNCTION billing._keep_credit(account_id bigint, delta_micros bigint)
RETURNS void LANGUAGE C STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_keep_credit';

-- Internal: the exact available amount, with the account's slices locked
-- under its exclusive gate to commit, for a cold path that must come
-- between admissions, never during one (set_balance_alerts). Granted to nobody.
CREATE OR REPLACE FUNCTION billing._lock_available(account_id bigint)
RETURNS bigint LANGUAGE C STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_lock_available';

-- Refunds and corrections (docs/refunds.md).
CREATE OR REPLACE FUNCTION billing.refund_request(request_id bigint, amount_micros bigint DEFAULT NULL,
                                                  reason text DEFAULT NULL,
                                                  idempotency_key text DEFAULT NULL)
RETURNS jsonb LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_refund_request';

CREATE OR REPLACE FUNCTION billing.adjust_balance(account_id bigint, amount_micros bigint, reason text,
                                                  idempotency_key text DEFAULT NULL)
RETURNS bigint LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_adjust_balance';
