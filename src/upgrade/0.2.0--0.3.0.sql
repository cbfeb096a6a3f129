-- The schema changes of 0.3.0 for a database at 0.2.0 (idempotent: the
-- update test runs this script twice). The re-runnable parts follow it and
-- bring every function, view, trigger and grant to 0.3.0, and mark every
-- table and sequence for pg_dump (src/backup.sql).

-- billing._limit_holds is now billing._holds, the one definition of what
-- is held (its arguments as before, scope and except_request optional)
DROP FUNCTION IF EXISTS billing._limit_holds(bigint, text, bigint);

-- billing._event_clock: the server and database event ids were last made on
CREATE SEQUENCE IF NOT EXISTS billing.event_clock MINVALUE -9223372036854775808 START 0;

-- SPEC 21: auto top-up to a target, a monthly cap, and reversals
-- (docs/topup.md). configure_auto_topup gains two arguments: the function of
-- four is dropped, so that one function of six (its defaults keep 0.2.0's
-- calls) is all there is.
DROP FUNCTION IF EXISTS billing.configure_auto_topup(bigint, bigint, bigint, boolean);
ALTER TABLE billing.accounts
    ADD COLUMN IF NOT EXISTS auto_topup_target_micros bigint CHECK (auto_topup_target_micros > 0),
    ADD COLUMN IF NOT EXISTS auto_topup_max_per_month_micros bigint
        CHECK (auto_topup_max_per_month_micros > 0),
    ADD COLUMN IF NOT EXISTS auto_topup_capped_month date;
ALTER TABLE billing.topups ADD COLUMN IF NOT EXISTS cap_micros bigint;
CREATE TABLE IF NOT EXISTS billing.reversals (
    account_id       bigint NOT NULL,
    reversal_id      bigint GENERATED ALWAYS AS IDENTITY,
    entry_id         bigint NOT NULL,
    source           text NOT NULL CHECK (source IN ('topup', 'funds', 'grant')),
    topup_id         bigint,
    funds_entry_id   bigint,
    grant_id         bigint,
    amount_micros    bigint NOT NULL CHECK (amount_micros > 0),
    requested_micros bigint,
    reason           text,
    idempotency_key  text,
    invoice_id       bigint,
    created_by       text NOT NULL DEFAULT SESSION_USER,
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    PRIMARY KEY (account_id, reversal_id),
    CHECK ((source = 'topup') = (topup_id IS NOT NULL)
           AND (source = 'funds') = (funds_entry_id IS NOT NULL)
           AND (source = 'grant') = (grant_id IS NOT NULL))
);
CREATE UNIQUE INDEX IF NOT EXISTS reversals_idempotency ON billing.reversals (account_id, idempotency_key);
CREATE INDEX IF NOT EXISTS reversals_source ON billing.reversals (account_id, source,
                                                    COALESCE(topup_id, funds_entry_id, grant_id));
REVOKE ALL ON billing.reversals FROM PUBLIC;
ALTER TABLE billing.events DROP CONSTRAINT IF EXISTS events_type_check;
ALTER TABLE billing.events ADD CONSTRAINT events_type_check CHECK (type IN (
                    'auto_topup_requested', 'auto_topup_disabled', 'topup_succeeded',
                    'topup_failed', 'balance_alert', 'spend_limit_reached',
                    'credits_granted', 'credits_expired', 'refund_issued',
                    'invoice_issued', 'invoice_paid',
                    'auto_topup_capped', 'topup_reversed', 'funds_reversed', 'grant_voided'));
