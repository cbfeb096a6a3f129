-- security: privilege tiers (docs/security.md). This part is concatenated last,
-- so every object of the extension exists when it runs.

-- Roles are cluster-wide and survive DROP EXTENSION, so create them only when
-- absent, and grant the membership only once (a second GRANT would print a
-- notice on every re-install).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'billing_app') THEN
        CREATE ROLE billing_app NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'billing_admin') THEN
        CREATE ROLE billing_admin NOLOGIN;
    END IF;
    IF NOT pg_catalog.pg_has_role('billing_admin', 'billing_app', 'MEMBER') THEN
        GRANT billing_app TO billing_admin;
    END IF;
END $$;

-- Nothing for PUBLIC. New functions are executable by PUBLIC by default;
-- that default is what this takes away, including from every internal
-- function (billing._move, billing._adjust_available, trigger functions),
-- which are then granted to no one.
REVOKE ALL ON SCHEMA billing FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA billing FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA billing FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA billing FROM PUBLIC;

GRANT USAGE ON SCHEMA billing TO billing_app;

-- The tiers, by full signature (docs/security.md). A function that is not (yet) in
-- the install script is skipped rather than failing CREATE EXTENSION while
-- the parts land one by one; the regression test "security" lists the
-- granted signatures and fails if one is missing.
DO $$
DECLARE
    tier text;
    sig text;
    fn regprocedure;
BEGIN
    FOR tier, sig IN
        SELECT 'billing_app', s FROM pg_catalog.unnest(ARRAY[
            -- accounts, prices (read), the request lifecycle
            'billing.create_account(text, text, text)',
            'billing.balance(bigint)',
            'billing.estimate(text, jsonb)',
            'billing.effective_cost(text, jsonb, text)',
            'billing.begin_request(bigint, text, jsonb, text, text)',
            'billing.complete_request(bigint, jsonb, jsonb)',
            'billing.fail_request(bigint, text, bigint)',
            'billing.cancel_request(bigint)',
            'billing.charge(bigint, text, jsonb, jsonb, jsonb, text, text)',
            'billing.response_metadata(bigint)',
            'billing.configure_auto_topup(bigint, bigint, bigint, boolean)',
            'billing.set_spend_limit(bigint, bigint, text, text)',
            'billing.set_balance_alerts(bigint, bigint[])',
            -- reports (every account: admins only, checked inside)
            'billing.usage(bigint, timestamptz, timestamptz, text[])',
            'billing.statement(bigint, timestamptz, timestamptz)']) s
        UNION ALL
        SELECT 'billing_admin', s FROM pg_catalog.unnest(ARRAY[
            -- money in, catalog, credit and invoicing, housekeeping, invariants
            'billing.add_funds(bigint, bigint, text, text)',
            'billing.refund_request(bigint, bigint, text, text)',
            'billing.adjust_balance(bigint, bigint, text, text)',
            'billing.complete_topup(bigint, boolean, text, text)',
            'billing.set_billing_type(bigint, text)',
            'billing.set_model(text, text, text, text, text, boolean)',
            'billing.set_price(text, jsonb, text, timestamptz)',
            'billing.set_credit_limit(bigint, bigint, text)',
            'billing.suggest_credit_limit(bigint)',
            'billing.close_period(date)',
            'billing.mark_invoice_paid(bigint, text)',
            'billing.expire_requests(interval)',
            'billing.grant_credits(bigint, bigint, timestamptz, text, text, text)',
            'billing.expire_credits()',
            'billing.rollup_usage()',
            'billing.events_after(bigint, integer)',
            'billing.verify(bigint)']) s
    LOOP
        fn := pg_catalog.to_regprocedure(sig);
        IF fn IS NOT NULL THEN
            EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %I', fn, tier);
        END IF;
    END LOOP;
    IF pg_catalog.to_regclass('billing.catalog') IS NOT NULL THEN
        GRANT SELECT ON billing.catalog TO billing_app;
    END IF;
END $$;

-- The plain-UPDATE path (README.md): a backend may finish a request with a
-- plain UPDATE. Only the three columns the trigger settles from are
-- writable; SELECT on request_id alone lets "WHERE request_id = ..." find
-- the row without exposing anyone's params, outputs or costs.
GRANT UPDATE (status, outputs, routing) ON billing.requests TO billing_app;
GRANT SELECT (request_id) ON billing.requests TO billing_app;
