-- topup: SQL interface. The rules are in docs/topup.md.

CREATE OR REPLACE FUNCTION billing.configure_auto_topup(account_id bigint, threshold_micros bigint,
                                             amount_micros bigint, enabled boolean DEFAULT true)
RETURNS void
AS 'MODULE_PATHNAME', 'billing_configure_auto_topup'
LANGUAGE C VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION billing.complete_topup(topup_id bigint, succeeded boolean,
                                       payment_reference text DEFAULT NULL,
                                       failure_reason text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'billing_complete_topup'
LANGUAGE C VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
