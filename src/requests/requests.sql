-- The request lifecycle (README.md, Requests and their metadata).

CREATE OR REPLACE FUNCTION billing.begin_request(account_id bigint, model text, params jsonb,
                                      idempotency_key text DEFAULT NULL, scope text DEFAULT NULL)
RETURNS jsonb LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_begin_request';

CREATE OR REPLACE FUNCTION billing.complete_request(request_id bigint, outputs jsonb, routing jsonb DEFAULT '{}')
RETURNS jsonb LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_complete_request';

CREATE OR REPLACE FUNCTION billing.fail_request(request_id bigint, reason text DEFAULT NULL,
                                     charge_micros bigint DEFAULT 0)
RETURNS jsonb LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_fail_request';

CREATE OR REPLACE FUNCTION billing.cancel_request(request_id bigint)
RETURNS jsonb LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_cancel_request';

CREATE OR REPLACE FUNCTION billing.charge(account_id bigint, model text, params jsonb, outputs jsonb,
                               routing jsonb DEFAULT '{}', idempotency_key text DEFAULT NULL,
                               scope text DEFAULT NULL)
RETURNS jsonb LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_charge';

CREATE OR REPLACE FUNCTION billing.response_metadata(request_id bigint)
RETURNS jsonb LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_response_metadata';

-- Internal: which statuses of a request are unfinished (its hold is held)
-- and which finished: the one definition for SQL (C's is request_stage in
-- requests/requests.c, which billing._request_stage exposes so that
-- regress `requests` checks the two agree). SQL functions with a body, no
-- SET clause and IMMUTABLE, so the planner inlines them: a query with
-- billing._request_open(status) matches the partial indexes requests_open
-- and requests_open_age, whose predicates must spell the list out
-- (schema.sql; regress `requests` checks they are used).
CREATE OR REPLACE FUNCTION billing._request_open(status text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN status IN ('queued', 'in_progress');

CREATE OR REPLACE FUNCTION billing._request_finished(status text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN status IN ('completed', 'failed', 'cancelled');

CREATE OR REPLACE FUNCTION billing._request_stage(status text) RETURNS integer
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'billing_request_stage';

-- Settles every state change, from the functions above or a plain UPDATE.
CREATE OR REPLACE FUNCTION billing.requests_transition() RETURNS trigger
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'billing_requests_transition';

CREATE OR REPLACE TRIGGER requests_transition BEFORE UPDATE ON billing.requests
    FOR EACH ROW EXECUTE FUNCTION billing.requests_transition();

-- Fails stale unfinished requests; requests being settled right now are skipped.
CREATE OR REPLACE FUNCTION billing.expire_requests(older_than interval)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cutoff timestamptz;
    acct bigint;
    n integer;
    total integer := 0;
BEGIN
    IF older_than IS NULL OR older_than < interval '0' THEN
        RAISE EXCEPTION 'older_than must be a non-negative interval'
            USING ERRCODE = '22023';
    END IF;
    PERFORM billing._require_writable('billing.expire_requests()');
    BEGIN
        cutoff := pg_catalog.now() - older_than;
    EXCEPTION WHEN datetime_field_overflow THEN
        RETURN 0;   -- before any time there is: no request is that old
    END;
    -- one account at a time: on Citus each statement then runs on the
    -- account's shard, where FOR UPDATE is possible
    FOR acct IN SELECT DISTINCT x.account_id FROM billing.requests x
                 WHERE billing._request_open(x.status) AND x.created_at < cutoff LOOP
        UPDATE billing.requests r SET status = 'failed', failure_reason = 'expired'
         WHERE r.account_id = acct
           AND r.request_id IN (SELECT x.request_id FROM billing.requests x
                                 WHERE x.account_id = acct AND billing._request_open(x.status)
                                   AND x.created_at < cutoff
                                 FOR UPDATE SKIP LOCKED);
        GET DIAGNOSTICS n = ROW_COUNT;
        total := total + n;
    END LOOP;
    RETURN total;
END $$;
