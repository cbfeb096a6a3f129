-- The upgrade from 0.1.0, its last part: what needs this release's
-- functions and views, which the re-runnable parts before it have created,
-- or the tables of 0.2.0 (src/schema/0.2.0.sql).

-- The external ids of 0.1.0's accounts; the rollup's state.
INSERT INTO billing.external_ids (external_id, account_id)
SELECT external_id, account_id FROM billing.accounts ON CONFLICT DO NOTHING;
INSERT INTO billing.rollup_state DEFAULT VALUES ON CONFLICT DO NOTHING;

-- Unfinished requests of 0.1.0 get the version that priced them: the one in
-- force at their start for their admitted provider, by the one price choice
-- (billing._route_prices, as 0.1.0 would have settled). The transition
-- trigger freezes price_id, so it is off for this one statement; finished
-- requests keep NULL (they never settle again).
ALTER TABLE billing.requests DISABLE TRIGGER requests_transition;
UPDATE billing.requests r
   SET price_id = (SELECT p.price_id FROM billing._route_prices p
                    WHERE p.model = r.model AND p.provider = r.provider AND p.span @> r.created_at
                      AND p.price_book IS NULL)
 WHERE r.price_id IS NULL AND r.status IN ('queued', 'in_progress');
ALTER TABLE billing.requests ENABLE TRIGGER requests_transition;
