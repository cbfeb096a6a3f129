-- slices: the fast path's budget per slice (src/ledger/slices.c). Upgraded
-- accounts start with no budget: their next request validates exactly and
-- lays the slices out again.
ALTER TABLE billing.account_slices ADD COLUMN IF NOT EXISTS fast_micros bigint NOT NULL DEFAULT 0;
