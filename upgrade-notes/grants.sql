-- Credit grants (docs/credits.md): the grants table and the ledger's link to it.
ALTER TABLE billing.ledger ADD COLUMN IF NOT EXISTS grant_id bigint;

CREATE TABLE IF NOT EXISTS billing.grants (
    account_id      bigint NOT NULL,
    grant_id        bigint GENERATED ALWAYS AS IDENTITY,
    category        text NOT NULL CHECK (category IN ('promotional', 'paid')),
    amount_micros   bigint NOT NULL CHECK (amount_micros > 0),
    expires_at      timestamptz,
    entry_id        bigint NOT NULL,
    spent_entry_id  bigint,
    idempotency_key text CHECK (pg_catalog.length(idempotency_key) BETWEEN 1 AND 256),
    reference       text,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    PRIMARY KEY (account_id, grant_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS grants_idempotency ON billing.grants (account_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS grants_to_expire ON billing.grants (expires_at)
    WHERE spent_entry_id IS NULL AND expires_at IS NOT NULL;
REVOKE ALL ON billing.grants FROM PUBLIC;

-- The new functions come with src/ledger/credits.sql (CREATE OR REPLACE);
-- their tiers are granted by src/security.sql's list.
