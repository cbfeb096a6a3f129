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

-- The tiers, by full signature (docs/security.md): plain GRANTs, so that a
-- signature that does not exist fails CREATE EXTENSION and the update.
GRANT EXECUTE ON FUNCTION billing.create_account(text, text, text) TO billing_app;
GRANT EXECUTE ON FUNCTION billing.balance(bigint) TO billing_app;
GRANT EXECUTE ON FUNCTION billing.estimate(text, jsonb) TO billing_app;
GRANT EXECUTE ON FUNCTION billing.effective_cost(text, jsonb, text) TO billing_app;
GRANT EXECUTE ON FUNCTION billing.begin_request(bigint, text, jsonb, text, text) TO billing_app;
GRANT EXECUTE ON FUNCTION billing.complete_request(bigint, jsonb, jsonb) TO billing_app;
GRANT EXECUTE ON FUNCTION billing.fail_request(bigint, text, bigint) TO billing_app;
GRANT EXECUTE ON FUNCTION billing.cancel_request(bigint) TO billing_app;
GRANT EXECUTE ON FUNCTION billing.charge(bigint, text, jsonb, jsonb, jsonb, text, text) TO billing_app;
GRANT EXECUTE ON FUNCTION billing.response_metadata(bigint) TO billing_app;
GRANT EXECUTE ON FUNCTION billing.configure_auto_topup(bigint, bigint, bigint, boolean, bigint, bigint) TO billing_app;
GRANT EXECUTE ON FUNCTION billing.set_spend_limit(bigint, bigint, text, text) TO billing_app;
GRANT EXECUTE ON FUNCTION billing.set_balance_alerts(bigint, bigint[]) TO billing_app;
GRANT EXECUTE ON FUNCTION billing.usage(bigint, timestamptz, timestamptz, text[]) TO billing_app;
GRANT EXECUTE ON FUNCTION billing.statement(bigint, timestamptz, timestamptz) TO billing_app;
GRANT EXECUTE ON FUNCTION billing.add_funds(bigint, bigint, text, text) TO billing_admin;
GRANT EXECUTE ON FUNCTION billing.refund_request(bigint, bigint, text, text) TO billing_admin;
GRANT EXECUTE ON FUNCTION billing.adjust_balance(bigint, bigint, text, text) TO billing_admin;
GRANT EXECUTE ON FUNCTION billing.complete_topup(bigint, boolean, text, text) TO billing_admin;
GRANT EXECUTE ON FUNCTION billing.set_billing_type(bigint, text) TO billing_admin;
GRANT EXECUTE ON FUNCTION billing.set_model(text, text, text, text, text, boolean, text) TO billing_admin;
GRANT EXECUTE ON FUNCTION billing.set_price(text, jsonb, text, timestamptz, text) TO billing_admin;
GRANT EXECUTE ON FUNCTION billing.set_credit_limit(bigint, bigint, text) TO billing_admin;
GRANT EXECUTE ON FUNCTION billing.suggest_credit_limit(bigint) TO billing_admin;
GRANT EXECUTE ON FUNCTION billing.close_period(date) TO billing_admin;
GRANT EXECUTE ON FUNCTION billing.mark_invoice_paid(bigint, text) TO billing_admin;
GRANT EXECUTE ON FUNCTION billing.expire_requests(interval) TO billing_admin;
GRANT EXECUTE ON FUNCTION billing.grant_credits(bigint, bigint, timestamptz, text, text, text) TO billing_admin;
GRANT EXECUTE ON FUNCTION billing.expire_credits() TO billing_admin;
GRANT EXECUTE ON FUNCTION billing.rollup_usage() TO billing_admin;
GRANT EXECUTE ON FUNCTION billing.events_after(bigint, integer) TO billing_admin;
GRANT EXECUTE ON FUNCTION billing.verify(bigint) TO billing_admin;
GRANT EXECUTE ON FUNCTION billing.reverse_topup(bigint, bigint, text, boolean, text) TO billing_admin;
GRANT EXECUTE ON FUNCTION billing.reverse_funds(bigint, bigint, text, text) TO billing_admin;
GRANT EXECUTE ON FUNCTION billing.void_grant(bigint, bigint, text, text) TO billing_admin;
-- collections (docs/invoices.md)
GRANT EXECUTE ON FUNCTION billing.set_billing_details(bigint, jsonb) TO billing_app;
GRANT EXECUTE ON FUNCTION billing.list_invoices(bigint) TO billing_app;
GRANT EXECUTE ON FUNCTION billing.invoice_document(bigint) TO billing_app;
GRANT EXECUTE ON FUNCTION billing.void_invoice(bigint, text, text) TO billing_admin;
GRANT EXECUTE ON FUNCTION billing.issue_credit_note(bigint, bigint, text, text, text) TO billing_admin;
GRANT EXECUTE ON FUNCTION billing.set_overdue_policy(bigint, integer) TO billing_admin;
GRANT EXECUTE ON FUNCTION billing.mark_overdue() TO billing_admin;
GRANT SELECT ON billing.catalog TO billing_app;
-- contract prices (docs/pricing.md "Price books and discounts")
GRANT EXECUTE ON FUNCTION billing.estimate(text, jsonb, bigint) TO billing_app;
GRANT EXECUTE ON FUNCTION billing.account_catalog(bigint) TO billing_app;
GRANT EXECUTE ON FUNCTION billing.create_price_book(text, text) TO billing_admin;
GRANT EXECUTE ON FUNCTION billing.set_discount(text, integer, text, text, timestamptz, timestamptz) TO billing_admin;
GRANT EXECUTE ON FUNCTION billing.end_discount(bigint, timestamptz) TO billing_admin;
GRANT EXECUTE ON FUNCTION billing.assign_price_book(bigint, text, timestamptz) TO billing_admin;
-- provider costs, margin, minimum commitments
GRANT EXECUTE ON FUNCTION billing.set_provider_cost(text, text, jsonb, timestamptz) TO billing_admin;
GRANT EXECUTE ON FUNCTION billing.margin(bigint, timestamptz, timestamptz, text[]) TO billing_admin;
GRANT EXECUTE ON FUNCTION billing.set_minimum_commitment(bigint, bigint, date, date) TO billing_admin;

-- The plain-UPDATE path (docs/reference.md): a backend may finish a request with a
-- plain UPDATE. Only the three columns the trigger settles from are
-- writable; SELECT on request_id alone lets "WHERE request_id = ..." find
-- the row without exposing anyone's params, outputs or costs.
GRANT UPDATE (status, outputs, routing) ON billing.requests TO billing_app;
GRANT SELECT (request_id) ON billing.requests TO billing_app;
