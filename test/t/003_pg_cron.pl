# pg_cron runs billing's periodic jobs (docs/invoices.md, "Scheduling"):
# the documented schedules are accepted, and scheduled jobs really run
# billing.close_period(), billing.expire_requests(), billing.expire_credits()
# and billing.rollup_usage() on a live cluster.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('cron');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_cron'
cron.database_name = 'postgres'
cron.use_background_workers = on
max_worker_processes = 16
});
$node->start;

$node->safe_psql('postgres', q{
CREATE EXTENSION pg_cron;
CREATE EXTENSION billing;
SELECT billing.set_model('cron-img', 'image', 'acme', 'Acme', 'acme-1');
SELECT billing.set_price('cron-img', '[{"type":"output","metric":"image","unit_price_micros":40000}]');
SELECT billing.create_account('cron', 'postpaid');
SELECT billing.set_credit_limit(1, 100000000, 'cron test');
SELECT billing.create_account('cron-credits');
SELECT billing.grant_credits(2, 500000, clock_timestamp() + interval '2 seconds');
});

# an unfinished request, to be expired
my $request = $node->safe_psql('postgres',
	q{SELECT billing.begin_request(1, 'cron-img', '{"n":1}') ->> 'request_id'});
like($request, qr/^\d+$/, 'a request is in flight');

# A month that ends during the test would move "last month" under it: first
# wait until a month ending within five minutes has ended.
sleep(1 + $node->safe_psql('postgres',
		q{SELECT GREATEST(0, ceil(EXTRACT(epoch FROM
		      date_trunc('month', now() + interval '5 minutes', 'UTC') - now())))}));

# Test only: postpaid usage dated in the last microsecond of last month (UTC,
# the default billing.timezone), as a settlement then would have posted it.
$node->safe_psql('postgres', q{
WITH r AS (
    INSERT INTO billing.requests (account_id, model, provider, status, params, outputs,
                                  cost_estimate_micros, cost_micros, currency, postpaid,
                                  created_at, completed_at)
    VALUES (1, 'cron-img', 'acme', 'completed', '{}', '{}', 40000, 40000, 'USD', true,
            date_trunc('month', now(), 'UTC') - interval '1 microsecond',
            date_trunc('month', now(), 'UTC') - interval '1 microsecond')
    RETURNING request_id, created_at)
INSERT INTO billing.ledger (account_id, kind, amount_micros, postpaid, request_id, created_at)
SELECT 1, 'usage', -40000, true, request_id, created_at FROM r;
SELECT billing._adjust_available(1, -40000);
});

# the production schedules of docs/invoices.md are valid pg_cron schedules
$node->safe_psql('postgres', q{
SELECT cron.schedule('billing-close-period', '5 * 1 * *', 'SELECT billing.close_period()');
SELECT cron.schedule('billing-expire-requests', '*/5 * * * *',
                     $$SELECT billing.expire_requests(interval '1 hour')$$);
SELECT cron.schedule('billing-expire-credits', '* * * * *', 'SELECT billing.expire_credits()');
SELECT cron.schedule('billing-rollup-usage', '* * * * *', 'SELECT billing.rollup_usage()');
});
is($node->safe_psql('postgres',
		q{SELECT string_agg(jobname || ' ' || schedule, ', ' ORDER BY jobname) FROM cron.job}),
	'billing-close-period 5 * 1 * *, billing-expire-credits * * * * *, billing-expire-requests */5 * * * *, billing-rollup-usage * * * * *',
	'documented schedules registered');

# the same commands every minute (pg_cron 1.4 knows no seconds), for the test
$node->safe_psql('postgres', q{
SELECT cron.schedule('billing-close-period', '* * * * *', 'SELECT billing.close_period()');
SELECT cron.schedule('billing-expire-requests', '* * * * *',
                     $$SELECT billing.expire_requests(interval '1 second')$$);
});
ok( $node->poll_query_until(
		'postgres',
		q{SELECT count(DISTINCT d.jobid) = 4
		    FROM cron.job_run_details d JOIN cron.job j USING (jobid)
		   WHERE j.jobname LIKE 'billing-%' AND d.status = 'succeeded'}),
	'the four jobs ran and succeeded');
# the rollup job takes in the whole ledger (a run may leave the newest
# entries to the next while other transactions were open), and the usage
# report of last month's request reads the rollup and still equals the ledger
ok( $node->poll_query_until(
		'postgres',
		q{SELECT rolled_up_to >= (SELECT max(entry_id) FROM billing.ledger WHERE kind = 'usage')
		    FROM billing.rollup_state}),
	'rollup_usage took in the usage');
is( $node->safe_psql('postgres',
		q{SELECT requests || ' ' || cost_micros
		    FROM billing.usage(1, date_trunc('month', now(), 'UTC') - interval '1 month',
		                       date_trunc('month', now(), 'UTC'), '{month,model}')
		  UNION ALL SELECT count(*)::text FROM billing.usage_rollup}),
	"1 40000
1", 'the report of the rolled-up month');
# the grant expired two seconds in: a run at that very minute may come first
ok( $node->poll_query_until(
		'postgres',
		q{SELECT count(*) = 1 FROM billing.ledger WHERE account_id = 2 AND kind = 'expiry'}),
	'expire_credits expired the grant');
is( $node->safe_psql('postgres',
		q{SELECT (billing.balance(2) ->> 'balance_micros') || ' ' || (billing.balance(2) -> 'credits')}),
	'0 []', 'the expired grant left the balance and the credits');
is( $node->safe_psql('postgres',
		q{SELECT count(*) FROM cron.job_run_details WHERE status = 'failed'}),
	'0', 'no job run failed');

is( $node->safe_psql('postgres',
		q{SELECT (period_start = (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '1 month')::date)
		         || ' ' || subtotal_micros || ' ' || status
		    FROM billing.invoices}),
	'true 40000 open', 'close_period issued last month\'s invoice');
# a run less than a second after the request began leaves it to the next one
ok( $node->poll_query_until(
		'postgres',
		"SELECT status || ' ' || failure_reason FROM billing.requests WHERE request_id = $request",
		'failed expired'),
	'expire_requests failed the stale request');
is($node->safe_psql('postgres', 'SELECT count(*) FROM billing.verify()'),
	'0', 'billing.verify() finds nothing');

# a later run of the close job issues nothing new
my $runs = $node->safe_psql('postgres',
	q{SELECT count(*) FROM cron.job_run_details d JOIN cron.job j USING (jobid)
	   WHERE j.jobname = 'billing-close-period' AND d.status = 'succeeded'});
ok( $node->poll_query_until(
		'postgres',
		qq{SELECT count(*) > $runs FROM cron.job_run_details d JOIN cron.job j USING (jobid)
		    WHERE j.jobname = 'billing-close-period' AND d.status = 'succeeded'}),
	'close job ran again');
is($node->safe_psql('postgres', 'SELECT count(*) FROM billing.invoices'),
	'1', 'idempotent: still one invoice');

$node->stop;
done_testing();
