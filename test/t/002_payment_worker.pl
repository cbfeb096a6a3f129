# The auto top-up loop against a real cluster: charges take an account below
# its threshold, billing appends an auto_topup_requested event to its event
# log, the example payment worker (examples/payment_worker/payment_worker, libpq) reads it
# with the cursor it keeps in a file and settles it with
# billing.complete_topup(), and the balance is credited exactly once. A
# worker restarted later goes on from its cursor. Then the failure path:
# consecutive failures turn auto top-up off.
# Runs from the tree root, with the extension installed and the worker built.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $worker = 'examples/payment_worker/payment_worker';
die "$worker is not built: run make programs first\n" unless -x $worker;

my $node = PostgreSQL::Test::Cluster->new('topup');
$node->init;
$node->start;
my $connstr = $node->connstr('postgres');
my $cursor = $node->basedir . '/worker.cursor';

$node->safe_psql('postgres', q{
    CREATE EXTENSION billing;
    SELECT billing.set_model('tap-img', 'image', 'acme', 'Acme Imaging');
    SELECT billing.set_price('tap-img', '[{"type":"output","metric":"image","unit_price_micros":1000000}]');
    SELECT billing.create_account('tap-account');
    SELECT billing.add_funds(1, 10000000);
    SELECT billing.configure_auto_topup(1, 5000000, 20000000);
    -- n images at 1.00 USD each
    CREATE FUNCTION tap_charge(n int) RETURNS bigint LANGUAGE sql AS $$
        SELECT (billing.charge(1, 'tap-img', jsonb_build_object('n', n),
                jsonb_build_object('images', (SELECT jsonb_agg('{"width":1024,"height":1024}'::jsonb)
                                                FROM generate_series(1, n)))) ->> 'cost_micros')::bigint $$;
});

sub available
{
	return $node->safe_psql('postgres',
		q{SELECT billing.balance(1) ->> 'available_micros'});
}

sub topups
{
	return $node->safe_psql('postgres',
		q{SELECT string_agg(topup_id || ':' || status, ',' ORDER BY topup_id) FROM billing.topups});
}

# Starts the worker; returns once it listens.
sub start_worker
{
	my ($out, $err, @args) = @_;
	my $h = IPC::Run::start([ $worker, @args, '--cursor', $cursor, '--timeout', '120', $connstr ],
		'>', $out, '2>', $err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	$h->pump until $$out =~ /^listening$/m;
	return $h;
}

# --- success: one top-up, credited once
my ($out, $err) = ('', '');
my $h = start_worker(\$out, \$err, '--max-events', '1');
is($node->safe_psql('postgres', 'SELECT tap_charge(6)'), '6000000', 'charge 6.00 of 10.00');
$h->finish;
is($h->result(0), 0, 'worker stopped after one event') or diag $err;
like($out,
	qr/^event: auto_topup_requested \{"clamped": false, "topup_id": 1, "amount_micros": 20000000, "target_micros": null, "available_micros": 4000000\}$/m,
	'the worker read the auto_topup_requested event');
like($out, qr/^completed: .*"status": "succeeded".*$/m, 'the worker completed it');
like($out, qr/"payment_reference": "pay_1"/, 'with its payment reference');
is(topups(), '1:succeeded', 'one top-up, succeeded');
is(available(), '24000000', 'balance credited: 4.00 + 20.00');
is($node->safe_psql('postgres',
	q{SELECT count(*) || ' ' || sum(amount_micros) || ' ' || min(reference) FROM billing.ledger WHERE kind = 'auto_topup'}),
	'1 20000000 pay_1', 'one auto_topup ledger entry');

# completing it again, as a second worker would, moves no money
$node->safe_psql('postgres', q{SELECT billing.complete_topup(1, true, 'pay_1')});
is(available(), '24000000', 'a second completion credits nothing');

# a worker started later goes on from its cursor: it settles the top-up
# requested while none ran, and not the first again (--max-events 0: the
# backlog, then stop)
$node->safe_psql('postgres', 'SELECT tap_charge(20)');
is(topups(), '1:succeeded,2:pending', 'a top-up requested while no worker listens');
($out, $err) = ('', '');
$h = start_worker(\$out, \$err, '--max-events', '0');
$h->finish;
is($h->result(0), 0, 'catch-up worker stopped') or diag $err;
like($out, qr/^completed: (?=.*"topup_id": 2,)(?=.*"status": "succeeded").*$/m, 'it settled the missed top-up');
is(() = $out =~ /^completed:/mg, 1, 'and only that one');
is(available(), '24000000', '4.00 + 20.00 again');

# --- failures: every payment declined; the third failure turns auto top-up off
($out, $err) = ('', '');
$h = start_worker(\$out, \$err, '--fail-every', '1');
$node->safe_psql('postgres', 'SELECT tap_charge(20)');    # 24 -> 4
for my $id (3 .. 5)
{
	$node->poll_query_until('postgres',
		"SELECT status = 'failed' FROM billing.topups WHERE topup_id = $id")
	  or die "top-up $id was not failed by the worker";
	# after a failure, the next charge below the threshold asks again
	$node->safe_psql('postgres', 'SELECT tap_charge(1)') if $id < 5;
}
$h->pump until $out =~ /^event: auto_topup_disabled \{"reason": "failures", "failures": 3, "topup_id": 5\}$/m;
ok(1, 'auto_topup_disabled in the event log, read by the worker');
$h->kill_kill;
is(() = $out =~ /"status": "failed"/g, 3, 'three top-ups failed');
is($node->safe_psql('postgres',
	'SELECT auto_topup_enabled || \' \' || auto_topup_failures FROM billing.accounts WHERE account_id = 1'),
	'false 3', 'auto top-up is off after billing.auto_topup_max_failures (3) failures');
is(available(), '2000000', 'no money from failed top-ups');
$node->safe_psql('postgres', 'SELECT tap_charge(1)');
is(topups(), '1:succeeded,2:succeeded,3:failed,4:failed,5:failed',
	'off: a charge below the threshold requests nothing');

# the worker was killed: restarted, it settles nothing twice
($out, $err) = ('', '');
$h = start_worker(\$out, \$err, '--max-events', '0');
$h->finish;
is($h->result(0), 0, 'restarted worker stopped') or diag $err;
is(() = $out =~ /^completed:/mg, 0, 'nothing settled again after the restart');

# --- the daily guard refuses in the server log too
my $log_offset = -s $node->logfile;
my ($stdout, $stderr);
$node->psql('postgres', q{
    SET billing.auto_topup_max_per_day = 5;
    SELECT billing.configure_auto_topup(1, 5000000, 20000000);
}, stdout => \$stdout, stderr => \$stderr);
like($stderr, qr/WARNING:  auto top-up refused: daily limit reached/, 'the client is warned');
ok($node->log_contains(
	qr/LOG:  auto top-up refused: daily limit reached\n.*DETAIL:  Account 1 requested 5 top-ups/,
	$log_offset), 'the refusal is in the server log');
is(topups(), '1:succeeded,2:succeeded,3:failed,4:failed,5:failed', 'and nothing was requested');

# --- reload to a target (docs/topup.md), a chargeback, and the monthly cap
$node->safe_psql('postgres', q{
    SELECT billing.create_account('tap-two');
    SELECT billing.add_funds(2, 21004000);
    SELECT billing.configure_auto_topup(2, 25000000, 10000000, true, 50000000, 29000000);
});
is($node->safe_psql('postgres', q{SELECT amount_micros FROM billing.topups WHERE account_id = 2}),
	'29000000', 'a top-up to the target: 50.00 - 21.004, rounded up');
$h = start_worker(\$out, \$err, '--chargeback-every', '1', '--max-events', '4');
$h->finish;
is($h->result(0), 0, 'chargeback worker stopped after four events') or diag $err;
like($out, qr/^reload: top-up 6 of 29000000 micros to the target 50000000 .*clamped no/m,
	'the worker saw the reload to the target');
like($out, qr/^reversed: (?=.*"source": "topup")(?=.*"amount_micros": 29000000).*$/m,
	'and took the payment back');
like($out, qr/^event: auto_topup_disabled .*"reason": "reversal"/m, 'which turned auto top-up off');
is($node->safe_psql('postgres', q{SELECT (billing.balance(2) ->> 'available_micros') || ' '
                                         || (billing.balance(2) ->> 'auto_topup')}),
	'21004000 false', 'the money is gone again, auto top-up off');
$log_offset = -s $node->logfile;
$node->psql('postgres', q{
    SELECT billing.configure_auto_topup(2, 25000000, 10000000, true, 50000000, 29000000);
}, stdout => \$stdout, stderr => \$stderr);
like($stderr, qr/WARNING:  auto top-up refused: monthly cap reached/,
	'a reversal gives nothing back to the month: the cap refuses');
ok($node->log_contains(
	qr/LOG:  auto top-up refused: monthly cap reached\n.*DETAIL:  Account 2 has a cap of 29 a month, 29 of it used/,
	$log_offset), 'the cap\'s refusal is in the server log');

is($node->safe_psql('postgres', 'SELECT count(*) FROM billing.verify()'), '0', 'billing.verify() holds');

$node->stop;
done_testing();
