-- The schema changes of 0.3.0 for a database at 0.2.0 (idempotent: the
-- update test runs this script twice). The re-runnable parts follow it and
-- bring every function, view, trigger and grant to 0.3.0, and mark every
-- table and sequence for pg_dump (src/backup.sql).

-- billing._limit_holds is now billing._holds, the one definition of what
-- is held (its arguments as before, scope and except_request optional)
DROP FUNCTION IF EXISTS billing._limit_holds(bigint, text, bigint);

-- billing._event_clock: the server and database event ids were last made on
CREATE SEQUENCE IF NOT EXISTS billing.event_clock MINVALUE -9223372036854775808 START 0;

-- SPEC section 20, part 2: provider costs, margin, minimum commitments
CREATE TABLE IF NOT EXISTS billing.provider_costs (
    cost_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model          text NOT NULL REFERENCES billing.models,
    provider       text NOT NULL,
    currency       text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    components     jsonb NOT NULL,
    effective_from timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE UNIQUE INDEX IF NOT EXISTS provider_costs_version
    ON billing.provider_costs (model, provider, effective_from);
ALTER TABLE billing.requests ADD COLUMN IF NOT EXISTS provider_cost_micros bigint;
ALTER TABLE billing.invoices ADD COLUMN IF NOT EXISTS true_up_micros bigint NOT NULL DEFAULT 0;
-- nothing settled before 0.3.0 has a provider cost: every rolled-up request
-- is uncosted (once: a second run must not count later ones again)
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_attribute
                    WHERE attrelid = 'billing.usage_rollup'::regclass AND attname = 'uncosted') THEN
        ALTER TABLE billing.usage_rollup
            ADD COLUMN provider_cost_sum numeric NOT NULL DEFAULT 0,
            ADD COLUMN uncosted bigint NOT NULL DEFAULT 0;
        UPDATE billing.usage_rollup SET uncosted = requests;
    END IF;
END $$;
CREATE TABLE IF NOT EXISTS billing.minimum_commitments (
    account_id      bigint NOT NULL,
    commitment_id   bigint GENERATED ALWAYS AS IDENTITY,
    amount_micros   bigint NOT NULL CHECK (amount_micros >= 0),
    effective_from  date NOT NULL,
    effective_until date CHECK (effective_until > effective_from),
    created_by      text NOT NULL DEFAULT SESSION_USER,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    PRIMARY KEY (account_id, commitment_id)
);
