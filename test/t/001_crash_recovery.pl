# Crash recovery: the server is killed (immediate stop, no shutdown
# checkpoint) while several sessions charge, add funds, run the request
# lifecycle, grant credits and refund part of what they charged. After
# restart every acknowledged operation must be there, every balance must
# equal the sum of its entries, billing.verify() must be clean, and retrying
# an acknowledged idempotency key must move no money.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

# hard bound on the whole test
alarm(300);

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
$node->append_conf('postgresql.conf', "max_connections = 40\n");
$node->start;

my $params  = '{"n":1,"size":"1024x1024"}';
my $outputs = '{"images":[{"width":1024,"height":1024}]}';
my $unit    = 10000;    # micros per image

$node->safe_psql('postgres', qq{
	SET client_min_messages = warning;
	CREATE EXTENSION billing;
	SELECT billing.set_model('crash-img', 'image', 'prov', 'Provider', 'img-1');
	SELECT billing.set_price('crash-img',
		'[{"type":"output","metric":"image","unit_price_micros":$unit,"unit_size":1}]',
		NULL, now() - interval '1 day');
});
my @accounts;
for my $name ('crash-a', 'crash-b')
{
	my $id = $node->safe_psql('postgres', "SELECT billing.create_account('$name')");
	$node->safe_psql('postgres', "SELECT billing.add_funds($id, 1000000000000)");
	push @accounts, $id;
}
my %funded = map { $_ => 1000000000000 } @accounts;

# One worker = a shell loop of psql calls; a line is appended to its ack
# file only after psql reported success, i.e. after the commit was
# acknowledged to the client.
my $worker = <<'EOS';
kind=$1; w=$2; acct=$3; ack=$4; params=$5; outputs=$6
q() { psql -X -At -v ON_ERROR_STOP=1 -c "$1" 2>/dev/null; }
i=0
while :; do
	i=$((i + 1)); key="$kind-$w-$i"
	case $kind in
	charge)
		out=$(q "SELECT billing.charge($acct, 'crash-img', '$params', '$outputs', '{}', '$key')->>'request_id'") \
			&& echo "$key $out" >>"$ack" ;;
	funds)
		out=$(q "SELECT billing.add_funds($acct, 1000000, '$key')") && echo "$key $out" >>"$ack" ;;
	grants)
		out=$(q "SELECT billing.grant_credits($acct, 1000000, NULL, 'paid', '$key')") && echo "$key $out" >>"$ack" ;;
	lifecycle)
		rid=$(q "SELECT billing.begin_request($acct, 'crash-img', '$params', '$key')->>'request_id'") || continue
		echo "$key begun $rid" >>"$ack"
		q "SELECT billing.complete_request($rid, '$outputs')" >/dev/null && echo "$key done $rid" >>"$ack" ;;
	refund)
		rid=$(q "SELECT billing.charge($acct, 'crash-img', '$params', '$outputs', '{}', '$key')->>'request_id'") || continue
		out=$(q "SELECT billing.refund_request($rid, 4000, 'crash test', '$key')->>'refund_id'") \
			&& echo "$key $rid $out" >>"$ack" ;;
	esac
done
EOS

my $dir = PostgreSQL::Test::Utils::tempdir();
my @plan = (
	[ 'charge', 1, $accounts[0] ], [ 'charge', 2, $accounts[0] ],
	[ 'charge', 3, $accounts[1] ], [ 'lifecycle', 4, $accounts[0] ],
	[ 'lifecycle', 5, $accounts[1] ], [ 'funds', 6, $accounts[1] ],
	[ 'grants', 7, $accounts[0] ], [ 'refund', 8, $accounts[0] ],
);
local $ENV{PGHOST}     = $node->host;
local $ENV{PGPORT}     = $node->port;
local $ENV{PGDATABASE} = 'postgres';
my @harnesses;
for my $p (@plan)
{
	my ($kind, $w, $acct) = @$p;
	push @harnesses, IPC::Run::start(
		[ 'bash', '-c', $worker, 'worker', $kind, $w, $acct, "$dir/ack-$w", $params, $outputs ],
		'<', \undef, '>', '/dev/null', '2>', '/dev/null',
		IPC::Run::timeout(120));
}

sub ack_lines
{
	my ($w) = @_;
	open(my $fh, '<', "$dir/ack-$w") or return ();
	my @lines = grep { /^\S+ \S+( \d+)?$/ } map { chomp; $_ } <$fh>;
	close($fh);
	return @lines;
}

sub acked_total { my $n = 0; $n += scalar(ack_lines($_->[1])) for @plan; return $n; }

# let the load build up, then pull the plug mid-load
my $deadline = time() + 60;
sleep(1) while acked_total() < 300 && time() < $deadline;
my $before_crash = acked_total();
ok($before_crash >= 300, "load running before the crash ($before_crash acknowledged)");
$node->stop('immediate');
$_->kill_kill for @harnesses;
$node->start;
ok($node->log_contains('database system was not properly shut down; automatic recovery in progress'),
	'the restart replayed the WAL');

# read what was acknowledged before the crash
my (%charged, %funds, %grants, %begun, %done, %refunded);
for my $p (@plan)
{
	my ($kind, $w, $acct) = @$p;
	for my $line (ack_lines($w))
	{
		my ($key, $a, $b) = split / /, $line;
		if    ($kind eq 'charge') { $charged{$key} = [ $acct, $a ]; }
		elsif ($kind eq 'funds')  { $funds{$key}   = [ $acct, $a ]; }
		elsif ($kind eq 'grants') { $grants{$key}  = [ $acct, $a ]; }
		elsif ($kind eq 'refund') { $refunded{$key} = [ $acct, $a, $b ]; }
		elsif ($a eq 'begun')     { $begun{$key}   = [ $acct, $b ]; }
		else                      { $done{$key}    = [ $acct, $b ]; }
	}
}
note(sprintf("acknowledged: %d charges, %d funds, %d grants, %d begun, %d completed, %d refunds",
	scalar(keys %charged), scalar(keys %funds), scalar(keys %grants), scalar(keys %begun),
	scalar(keys %done), scalar(keys %refunded)));

# a VALUES list of (account, key, id) for the checks below
sub vals
{
	my ($h) = @_;
	return "VALUES (0::bigint, ''::text, 0::bigint)" unless %$h;
	return 'VALUES ' . join(',', map { "($h->{$_}[0]::bigint, '$_', $h->{$_}[1]::bigint)" } sort keys %$h);
}

my $sql = sub { $node->safe_psql('postgres', $_[0]) };

is($sql->("SELECT count(*) FROM (" . vals(\%charged) . ") a(account_id, key, request_id)
	WHERE key <> '' AND NOT EXISTS (
		SELECT FROM billing.requests r JOIN billing.ledger l
			ON l.account_id = r.account_id AND l.request_id = r.request_id AND l.kind = 'usage'
		WHERE r.account_id = a.account_id AND r.idempotency_key = a.key
		  AND r.request_id = a.request_id AND r.status = 'completed'
		  AND r.cost_micros = $unit AND l.amount_micros = -$unit)"),
	'0', 'every acknowledged charge survived with its usage entry');

is($sql->("SELECT count(*) FROM (" . vals(\%funds) . ") a(account_id, key, entry_id)
	WHERE key <> '' AND NOT EXISTS (
		SELECT FROM billing.ledger l
		WHERE l.account_id = a.account_id AND l.entry_id = a.entry_id
		  AND l.idempotency_key = a.key AND l.amount_micros = 1000000)"),
	'0', 'every acknowledged add_funds survived');

is($sql->("SELECT count(*) FROM (" . vals(\%grants) . ") a(account_id, key, grant_id)
	WHERE key <> '' AND NOT EXISTS (
		SELECT FROM billing.grants g JOIN billing.ledger l
			ON l.account_id = g.account_id AND l.entry_id = g.entry_id
		WHERE g.account_id = a.account_id AND g.grant_id = a.grant_id
		  AND g.idempotency_key = a.key AND l.kind = 'grant' AND l.amount_micros = 1000000)"),
	'0', 'every acknowledged grant_credits survived with its ledger entry');

is($sql->("SELECT count(*) FROM (" . vals(\%begun) . ") a(account_id, key, request_id)
	WHERE key <> '' AND NOT EXISTS (
		SELECT FROM billing.requests r
		WHERE r.request_id = a.request_id AND r.idempotency_key = a.key)"),
	'0', 'every acknowledged begin_request survived');

is($sql->("SELECT count(*) FROM (" . vals(\%done) . ") a(account_id, key, request_id)
	WHERE key <> '' AND NOT EXISTS (
		SELECT FROM billing.requests r
		WHERE r.request_id = a.request_id AND r.status = 'completed' AND r.cost_micros = $unit)"),
	'0', 'every acknowledged complete_request survived');

ok(scalar(keys %refunded) > 0, 'refunds were acknowledged before the crash');
is($sql->("SELECT count(*) FROM (VALUES "
	. join(',', map { "($refunded{$_}[0]::bigint, '$_', $refunded{$_}[1]::bigint, $refunded{$_}[2]::bigint)" }
		sort keys %refunded)
	. ") a(account_id, key, request_id, refund_id)
	WHERE NOT EXISTS (
		SELECT FROM billing.refunds f JOIN billing.ledger l
			ON l.account_id = f.account_id AND l.entry_id = f.entry_id AND l.kind = 'refund'
		WHERE f.account_id = a.account_id AND f.refund_id = a.refund_id AND f.idempotency_key = a.key
		  AND f.request_id = a.request_id AND f.amount_micros = 4000 AND l.amount_micros = 4000)"),
	'0', 'every acknowledged refund survived with its refund entry');

is($sql->('SELECT count(*) FROM billing.verify()'), '0', 'billing.verify() is clean after recovery');

# balance = funding + acknowledged-or-not committed movements, and equals the
# ledger; holds = estimates of the requests still open
for my $acct (@accounts)
{
	is($sql->("SELECT (billing.balance($acct)->>'balance_micros')::bigint
		= (SELECT sum(amount_micros) FROM billing.ledger WHERE account_id = $acct)"),
		't', "balance of account $acct equals the sum of its entries");
	is($sql->("SELECT (billing.balance($acct)->>'held_micros')::bigint
		= (SELECT coalesce(sum(hold_micros), 0) FROM billing.requests
		   WHERE account_id = $acct AND status IN ('queued', 'in_progress'))"),
		't', "holds of account $acct equal the holds of its open requests");
	is($sql->("SELECT (SELECT coalesce(sum(-amount_micros), 0) FROM billing.ledger
			WHERE account_id = $acct AND kind = 'usage')
		= (SELECT coalesce(sum(cost_micros), 0) FROM billing.requests
			WHERE account_id = $acct AND status = 'completed')"),
		't', "usage of account $acct equals the cost of its completed requests");
}

# retrying every acknowledged key returns the first result and moves nothing
my $state = "SELECT string_agg(account_id || ':' || (billing.balance(account_id)->>'balance_micros')
	|| ':' || (billing.balance(account_id)->>'available_micros'), ',' ORDER BY account_id)
	|| '/' || (SELECT count(*) FROM billing.ledger) || '/' || (SELECT count(*) FROM billing.requests)
	FROM billing.accounts";
my $before = $sql->($state);
my $retry = join("\n",
	(map { "SELECT billing.charge($charged{$_}[0], 'crash-img', '$params', '$outputs', '{}', '$_')->>'request_id' = '$charged{$_}[1]';" } sort keys %charged),
	(map { "SELECT billing.add_funds($funds{$_}[0], 1000000, '$_') = $funds{$_}[1];" } sort keys %funds),
	(map { "SELECT billing.grant_credits($grants{$_}[0], 1000000, NULL, 'paid', '$_') = $grants{$_}[1];" } sort keys %grants),
	(map { "SELECT billing.begin_request($begun{$_}[0], 'crash-img', '$params', '$_')->>'request_id' = '$begun{$_}[1]';" } sort keys %begun),
	(map { "SELECT billing.refund_request($refunded{$_}[1], 4000, 'crash test', '$_')->>'refund_id' = '$refunded{$_}[2]';" } sort keys %refunded));
my $answers = $sql->($retry);
my @wrong = grep { $_ ne 't' } split /\n/, $answers;
is(scalar(@wrong), 0, 'every retried key returned its first result');
is($sql->($state), $before, 'retrying acknowledged keys moved no money');
is($sql->('SELECT count(*) FROM billing.verify()'), '0', 'billing.verify() is clean after the retries');

$node->stop;
done_testing();
