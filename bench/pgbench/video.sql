-- (1v): the video path, two transactions: begin_request holds the estimate of
-- 4 seconds, complete_request settles the outputs
SELECT billing.begin_request(:acct, 'bench-vid', '{"duration_seconds":4}') ->> 'request_id' AS rid \gset
SELECT billing.complete_request(:rid, '{"duration_seconds":4}');
