-- The request lifecycle: holds, the cost_estimate -> cost flip, fail,
-- cancel, expiry, the plain-UPDATE path, price changes in flight, overruns.
SET client_min_messages = warning;
-- regress.try with request ids as N: other tests make requests too
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE sql AS $$
    SELECT regexp_replace(regress.try(sql), 'request \d+', 'request N') $$;

SELECT billing.set_model('rq-video', 'video', 'vendo', 'Vendo Video', 'vendo-v3');
SELECT billing.set_price('rq-video', '[
  {"type":"output","metric":"second","unit_price_micros":30000,"conditions":{"resolution":"720p","audio":false}},
  {"type":"output","metric":"second","unit_price_micros":50000,"conditions":{"resolution":"1080p"}}]') > 0 AS priced;
SELECT billing.create_account('rq-dave') AS dave \gset
SELECT billing.add_funds(:dave, 2000000) > 0 AS funded;

-- begin: the estimate (8 s at 0.05) is held
SELECT billing.begin_request(:dave, 'rq-video', '{"duration_seconds":8,"resolution":"1080p"}') AS r1 \gset
SELECT :'r1'::jsonb - 'request_id' - '{metadata,request_id}'::text[] AS begun,
       (:'r1'::jsonb #> '{metadata}') - 'request_id' AS metadata;
SELECT (:'r1'::jsonb ->> 'request_id')::bigint AS id1 \gset
SELECT billing.balance(:dave) ->> 'held_micros' AS held, billing.balance(:dave) -> 'available' AS available;
SELECT billing.response_metadata(:id1) ? 'cost' AS has_cost,
       billing.response_metadata(:id1) ->> 'cost_estimate' AS cost_estimate;

-- complete: 7.6 s bills as 8 s; the flip; the hold is gone
SELECT billing.complete_request(:id1, '{"duration_seconds":7.6,"resolution":"1080p"}',
                                '{"upstream_id":"job_123"}') - 'request_id' AS completed;
SELECT billing.response_metadata(:id1) ? 'cost_estimate' AS has_estimate,
       billing.response_metadata(:id1) ->> 'cost' AS cost;
SELECT billing.balance(:dave) ->> 'held_micros' AS held, billing.balance(:dave) -> 'available' AS available;
-- completing twice returns the first result and moves nothing
SELECT billing.complete_request(:id1, '{"duration_seconds":20,"resolution":"1080p"}') ->> 'cost' AS same_cost;
SELECT pg_temp.try(format('SELECT billing.cancel_request(%s)', :id1));
SELECT pg_temp.try(format('SELECT billing.fail_request(%s)', :id1));
SELECT count(*) AS usage_entries FROM billing.ledger WHERE request_id = :id1;

-- the plain-UPDATE path of a backend settles the same way
SELECT (billing.begin_request(:dave, 'rq-video', '{"duration_seconds":4,"resolution":"720p","audio":false}')
        ->> 'request_id')::bigint AS id2 \gset
UPDATE billing.requests SET status = 'in_progress', routing = '{"upstream_id":"job_200"}' WHERE request_id = :id2;
SELECT billing.response_metadata(:id2) - 'request_id' AS running;
UPDATE billing.requests SET status = 'completed',
       outputs = '{"duration_seconds":3.2,"resolution":"720p","audio":false}' WHERE request_id = :id2;
SELECT billing.response_metadata(:id2) - 'request_id' AS done;
SELECT amount_micros FROM billing.ledger WHERE request_id = :id2;

-- illegal transitions and edits are refused
SELECT pg_temp.try(format($$UPDATE billing.requests SET status = 'in_progress' WHERE request_id = %s$$, :id2));
SELECT (billing.begin_request(:dave, 'rq-video', '{"duration_seconds":2,"resolution":"1080p"}')
        ->> 'request_id')::bigint AS id3 \gset
UPDATE billing.requests SET status = 'in_progress' WHERE request_id = :id3;
SELECT pg_temp.try(format($$UPDATE billing.requests SET status = 'queued' WHERE request_id = %s$$, :id3));
SELECT pg_temp.try(format($$UPDATE billing.requests SET params = '{}' WHERE request_id = %s$$, :id3));
SELECT pg_temp.try(format($$UPDATE billing.requests SET hold_micros = 0 WHERE request_id = %s$$, :id3));
SELECT pg_temp.try(format($$UPDATE billing.requests SET cost_micros = 1 WHERE request_id = %s$$, :id3));
SELECT pg_temp.try(format($$UPDATE billing.requests SET status = 'completed' WHERE request_id = %s$$, :id3));
SELECT pg_temp.try(format($$UPDATE billing.requests SET status = 'completed', cost_micros = 1,
    outputs = '{"duration_seconds":2,"resolution":"1080p"}' WHERE request_id = %s$$, :id3));
SELECT pg_temp.try(format($$UPDATE billing.requests SET status = 'completed',
    outputs = '{"duration_seconds":2,"resolution":"4K"}' WHERE request_id = %s$$, :id3));
SELECT pg_temp.try(format($$UPDATE billing.requests SET status = 'done' WHERE request_id = %s$$, :id3));
SELECT pg_temp.try(format($$UPDATE billing.requests SET status = NULL WHERE request_id = %s$$, :id3));
SELECT pg_temp.try(format($$UPDATE billing.requests SET status = 'completed', routing = NULL,
    outputs = '{"duration_seconds":2,"resolution":"1080p"}' WHERE request_id = %s$$, :id3));
-- a partial charge cannot exceed the estimate (0.1 here)
SELECT pg_temp.try(format('SELECT billing.fail_request(%s, NULL, 100001)', :id3));
SELECT pg_temp.try(format('SELECT billing.fail_request(%s, NULL, 9223372036854775806)', :id3));
SELECT status, hold_micros, cost_micros FROM billing.requests WHERE request_id = :id3;

-- fail with an explicit partial charge; failing twice moves nothing
SELECT billing.fail_request(:id3, 'upstream timeout', 30000) - 'request_id' AS failed;
SELECT billing.fail_request(:id3, 'again', 99999) ->> 'cost' AS same_cost;
SELECT failure_reason, cost_micros FROM billing.requests WHERE request_id = :id3;
SELECT pg_temp.try(format('SELECT billing.fail_request(%s, NULL, -1)', :id3));

-- cancel charges nothing
SELECT (billing.begin_request(:dave, 'rq-video', '{"duration_seconds":1,"resolution":"1080p"}')
        ->> 'request_id')::bigint AS id4 \gset
SELECT billing.cancel_request(:id4) - 'request_id' AS cancelled;
SELECT billing.cancel_request(:id4) ->> 'cost_micros' AS cancel_again;
SELECT pg_temp.try(format($$SELECT billing.complete_request(%s, '{"duration_seconds":1,"resolution":"1080p"}')$$, :id4));

-- unknown requests
SELECT pg_temp.try('SELECT billing.complete_request(999999, ''{}'')');
SELECT pg_temp.try('SELECT billing.fail_request(999999)');
SELECT pg_temp.try('SELECT billing.cancel_request(999999)');
SELECT pg_temp.try('SELECT billing.response_metadata(999999)');
SELECT pg_temp.try(format($$SELECT billing.complete_request(%s, '[]')$$, :id4));
SELECT pg_temp.try('SELECT billing.complete_request(NULL, ''{}'')');
SELECT pg_temp.try(format('SELECT billing.complete_request(%s, NULL)', :id4));
SELECT pg_temp.try('SELECT billing.cancel_request(NULL)');
SELECT pg_temp.try('SELECT billing.response_metadata(NULL)');
SELECT pg_temp.try('SELECT billing.balance(NULL)');
SELECT pg_temp.try('SELECT billing.suggest_credit_limit(NULL)');

-- idempotent begin: one request, one hold
SELECT billing.begin_request(:dave, 'rq-video', '{"duration_seconds":2,"resolution":"1080p"}', 'job-k1') ->> 'request_id' AS k1 \gset
SELECT billing.begin_request(:dave, 'rq-video', '{"duration_seconds":2,"resolution":"1080p"}', 'job-k1') ->> 'request_id' = :'k1' AS same;
SELECT pg_temp.try(format($$SELECT billing.begin_request(%s, 'rq-video', '{"duration_seconds":3,"resolution":"1080p"}', 'job-k1')$$, :dave));
SELECT billing.balance(:dave) ->> 'held_micros' AS held_once;

-- a price change never reprices work in flight
SELECT (billing.begin_request(:dave, 'rq-video', '{"duration_seconds":2,"resolution":"1080p"}')
        ->> 'request_id')::bigint AS id5 \gset
SELECT billing.set_price('rq-video', '[{"type":"output","metric":"second","unit_price_micros":90000}]') > 0 AS repriced;
SELECT billing.complete_request(:id5, '{"duration_seconds":2,"resolution":"1080p"}') ->> 'cost' AS old_price;
SELECT billing.estimate('rq-video', '{"duration_seconds":2,"resolution":"1080p"}') ->> 'total_cost_micros' AS new_price;

-- expiry fails stale requests and releases their holds
SELECT billing.expire_requests(interval '1 hour') AS none_stale;
SELECT billing.expire_requests(interval '0') >= 1 AS expired;
SELECT status, failure_reason, cost_micros FROM billing.requests WHERE request_id = :k1;
SELECT pg_temp.try($$SELECT billing.expire_requests(interval '-1 second')$$);
SELECT billing.balance(:dave) ->> 'held_micros' AS held_none;

-- an overrun is charged in full; the account goes below zero, then 402
SELECT billing.create_account('rq-erin') AS erin \gset
SELECT billing.add_funds(:erin, 200000) > 0 AS funded;
SELECT (billing.begin_request(:erin, 'rq-video', '{"duration_seconds":2,"resolution":"1080p"}')
        ->> 'request_id')::bigint AS id6 \gset
SELECT billing.complete_request(:id6, '{"duration_seconds":3,"resolution":"1080p"}') ->> 'cost' AS overrun_cost;
SELECT billing.balance(:erin) ->> 'balance_micros' AS below_zero;
SELECT slice, available_micros FROM billing.account_slices
 WHERE account_id = :erin AND available_micros <> 0;
SELECT pg_temp.try(format($$SELECT billing.begin_request(%s, 'rq-video', '{"duration_seconds":1,"resolution":"1080p"}')$$, :erin));
SELECT billing.add_funds(:erin, 200000) > 0 AS funded;
SELECT billing.balance(:erin) ->> 'available_micros' AS back_to_positive;
SELECT billing.begin_request(:erin, 'rq-video', '{"duration_seconds":1,"resolution":"1080p"}') ->> 'status' AS admitted;

-- which statuses are finished: C's one definition (request_stage) and SQL's
-- (billing._request_open, billing._request_finished) agree
SELECT bool_and((billing._request_stage(s) < 2) = billing._request_open(s)
                AND (billing._request_stage(s) = 2) = billing._request_finished(s)) AS c_and_sql_agree
  FROM unnest(ARRAY['queued', 'in_progress', 'completed', 'failed', 'cancelled']) s;
SELECT billing._request_open('done') OR billing._request_finished('done') AS unknown_is_known;
SELECT regress.try($$SELECT billing._request_stage('done')$$);
-- inlined, billing._request_open matches the partial indexes, whose
-- predicates spell its list out (schema.sql); with sequential scans and
-- sorts off, each query has one index that serves it
CREATE FUNCTION pg_temp.plan_uses(query text, index_name text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    line text;
BEGIN
    SET LOCAL enable_seqscan = off;
    SET LOCAL enable_sort = off;
    FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || query LOOP
        IF line ~ ('\m' || index_name || '\M') THEN
            RETURN true;
        END IF;
    END LOOP;
    RETURN false;
END $$;
SELECT pg_temp.plan_uses($$SELECT r.hold_micros FROM billing.requests r
                            WHERE r.account_id = 1 AND billing._request_open(r.status)$$,
                         'requests_open') AS holds_use_requests_open,
       pg_temp.plan_uses($$SELECT x.account_id FROM billing.requests x
                            WHERE billing._request_open(x.status) AND x.created_at < now()
                            ORDER BY x.created_at$$,
                         'requests_open_age') AS expiry_uses_requests_open_age;

SELECT * FROM billing.verify();
