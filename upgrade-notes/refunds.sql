-- refunds and corrections (0.1.0 -> 0.2.0): tables, indexes and columns.
-- Idempotent. Function bodies come from src/**/*.sql.

-- Entries posted before the upgrade do not know who made them; later ones
-- record the login role of their session.
ALTER TABLE billing.ledger ADD COLUMN IF NOT EXISTS created_by text NOT NULL DEFAULT '(before 0.2.0)';
ALTER TABLE billing.ledger ALTER COLUMN created_by SET DEFAULT SESSION_USER;

CREATE TABLE IF NOT EXISTS billing.refunds (
    account_id       bigint NOT NULL,
    refund_id        bigint GENERATED ALWAYS AS IDENTITY,
    request_id       bigint NOT NULL,
    amount_micros    bigint NOT NULL CHECK (amount_micros > 0),
    requested_micros bigint,
    reason           text,
    idempotency_key  text,
    entry_id         bigint NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    PRIMARY KEY (account_id, refund_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS refunds_idempotency ON billing.refunds (account_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS refunds_request ON billing.refunds (account_id, request_id);

CREATE TABLE IF NOT EXISTS billing.adjustments (
    account_id      bigint NOT NULL,
    entry_id        bigint NOT NULL,
    amount_micros   bigint NOT NULL CHECK (amount_micros <> 0),
    reason          text NOT NULL CHECK (pg_catalog.btrim(reason) <> ''),
    idempotency_key text,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    PRIMARY KEY (account_id, entry_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS adjustments_idempotency ON billing.adjustments (account_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Nothing for PUBLIC (security.sql revokes on every table at install).
REVOKE ALL ON billing.refunds, billing.adjustments FROM PUBLIC;
