# A streaming hot standby (docs/operations.md): the reads of billing answer
# on the standby as on the primary at the replayed point; every function
# that writes refuses with 25006 and the session goes on; after promotion
# the new primary takes over: the same balances, keys that replay, open
# requests that settle, ids and events that continue.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

alarm(300);

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION billing');
$primary->safe_psql('postgres', slurp_file('test/fill.sql'));
my $pre  = $primary->safe_psql('postgres', "SELECT account_id FROM billing.accounts WHERE external_id = 'fill-pre'");
my $post = $primary->safe_psql('postgres', "SELECT account_id FROM billing.accounts WHERE external_id = 'fill-post'");
my $done = $primary->safe_psql('postgres', "SELECT request_id FROM billing.requests WHERE idempotency_key = 'fill-c-1'");
my $open = $primary->safe_psql('postgres', "SELECT request_id FROM billing.requests WHERE idempotency_key = 'fill-running'");
# contract prices (docs/pricing.md): fill-pre on a book with a discount
$primary->safe_psql('postgres', "SELECT billing.create_price_book('fill-book')");
$primary->safe_psql('postgres', "SELECT billing.assign_price_book($pre, 'fill-book')");
my $discount = $primary->safe_psql('postgres', "SELECT billing.set_discount('fill-book', 900000)");
my $funds = $primary->safe_psql('postgres', "SELECT entry_id FROM billing.ledger WHERE idempotency_key = 'fill-pay-1'");
my $grant = $primary->safe_psql('postgres', "SELECT grant_id FROM billing.grants WHERE idempotency_key = 'fill-grant-1'");
my $topup = $primary->safe_psql('postgres', "SELECT min(topup_id) FROM billing.topups WHERE status = 'succeeded'");

$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;
# more work after the base backup, which the standby receives by streaming
$primary->safe_psql('postgres', "SELECT billing.charge($pre, 'fill-img', '{}', '{\"images\":[{}]}', '{}', 'after-backup')");
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));

# the reads, equal on both
my $window = "'2025-01-01', '2100-01-01'";
my %reads = (
	'balance' => "SELECT billing.balance(a) - 'computed_at' FROM unnest(ARRAY[$pre, $post]) a",
	'estimate' => "SELECT billing.estimate('fill-vid', '{\"duration_seconds\":6}')",
	'effective_cost' => "SELECT billing.effective_cost('fill-img', '{\"images\":[{},{}]}')",
	'response_metadata' => "SELECT billing.response_metadata(r) FROM unnest(ARRAY[$done, $open]) r",
	'usage' => "SELECT * FROM billing.usage($pre, $window)",
	'statement' => "SELECT * FROM billing.statement($post, $window)",
	'catalog' => "SELECT * FROM billing.catalog ORDER BY 1, 2",
	'verify' => "SELECT count(*) FROM billing.verify()",
	'events_after' => "SELECT event_id, type, payload FROM billing.events_after(NULL, 1000)",
	'suggest_credit_limit' => "SELECT billing.suggest_credit_limit($post)",
	'estimate_account' => "SELECT billing.estimate('fill-img', '{\"n\":2}', $pre)",
	'account_catalog' => "SELECT * FROM billing.account_catalog($pre)",
	'margin' => "SELECT * FROM billing.margin($pre, $window, '{model,provider}')",
	'list_invoices' => "SELECT * FROM billing.list_invoices($post)",
	'invoice_document' => "SELECT billing.invoice_document(i.invoice_id) FROM billing.invoices i WHERE i.account_id = $post");
for my $name (sort keys %reads)
{
	my $on_primary = $primary->safe_psql('postgres', $reads{$name});
	isnt($on_primary, '', "$name answers on the primary");
	is($standby->safe_psql('postgres', $reads{$name}), $on_primary, "$name answers on the standby as on the primary");
}

# every function that writes: 25006, and the session's next statement runs
my @writes = (
	"billing.create_account('standby-new')",
	"billing.add_funds($pre, 1000)",
	"billing.charge($pre, 'fill-img', '{}', '{\"images\":[{}]}')",
	"billing.charge($pre, 'fill-img', '{}', '{\"images\":[{}]}', '{}', 'standby-key')",
	"billing.begin_request($pre, 'fill-vid', '{\"duration_seconds\":2}')",
	"billing.complete_request($open, '{\"duration_seconds\":8}')",
	"billing.fail_request($open, 'gone')",
	"billing.cancel_request($open)",
	"billing.refund_request($done, 1000, 'standby')",
	"billing.adjust_balance($pre, 1000, 'standby')",
	"billing.grant_credits($pre, 1000, now() + interval '1 day')",
	"billing.expire_credits()",
	"billing.set_spend_limit($pre, 1000, 'day')",
	"billing.set_balance_alerts($pre, '{1000}')",
	"billing.configure_auto_topup($pre, 1000, 5000)",
	"billing.set_billing_type($pre, 'postpaid')",
	"billing.set_credit_limit($post, 1000, 'standby')",
	"billing.set_model('standby-img', 'image', 'acme', 'Acme')",
	"billing.set_price('fill-img', '[{\"type\":\"output\",\"metric\":\"image\",\"unit_price_micros\":1}]')",
	"billing.close_period('2025-04-01')",
	"billing.expire_requests('1 second')",
	"billing.rollup_usage()",
	"billing.create_price_book('standby-book')",
	"billing.set_discount('fill-book', 800000, 'fill-img')",
	"billing.end_discount($discount)",
	"billing.assign_price_book($post, 'fill-book')",
	"billing.set_price('fill-img', '[{\"type\":\"output\",\"metric\":\"image\",\"unit_price_micros\":1}]', NULL, now(), 'fill-book')",
	"billing.set_provider_cost('fill-img', 'acme', '[{\"type\":\"output\",\"metric\":\"image\",\"unit_price_micros\":1}]')",
	"billing.set_minimum_commitment($post, 10000, '2030-01-01')",
	"billing.reverse_topup($topup, 1000)",
	"billing.reverse_funds($funds, 1000)",
	"billing.void_grant($grant, 1000)",
	"billing.configure_auto_topup($pre, 1000, 5000, true, 10000, 1000000)",
	"billing.void_invoice((SELECT max(invoice_id) FROM billing.invoices), 'standby')",
	"billing.issue_credit_note((SELECT max(invoice_id) FROM billing.invoices), 10000, 'standby')",
	"billing.set_overdue_policy($post, 0)",
	"billing.mark_overdue()",
	"billing.set_billing_details($post, '{\"legal_name\":\"Standby Ltd\"}')");
my $script = "\\set VERBOSITY verbose\n" . join('', map { "SELECT $_;\nSELECT 'next ran';\n" } @writes);
my ($out, $err);
$standby->psql('postgres', $script, stdout => \$out, stderr => \$err, on_error_stop => 0);
my @refused = ($err =~ /ERROR:  25006: /g);
my @ran     = ($out =~ /^next ran$/mg);
is(scalar @refused, scalar @writes, 'every writing function refuses with 25006 on the standby')
  or diag($err);
is(scalar @ran, scalar @writes, 'after each refusal the session goes on');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM billing.verify()'), '0', 'verify() is clean on the standby');

# promotion: the new primary takes over
my $before = $standby->safe_psql('postgres', $reads{balance});
my $max_request = $standby->safe_psql('postgres', 'SELECT max(request_id) FROM billing.requests');
my $cursor = $standby->safe_psql('postgres', 'SELECT max(event_id) FROM billing.events_after(NULL, 1000)');
$primary->stop;
$standby->promote;
is($standby->safe_psql('postgres', $reads{balance}), $before, 'after promotion the balances are those replayed');
is( $standby->safe_psql('postgres',
		"SELECT billing.charge($pre, 'fill-img', '{}', '{\"images\":[{}]}', '{}', 'after-backup') ->> 'request_id'"),
	$standby->safe_psql('postgres', "SELECT request_id FROM billing.requests WHERE idempotency_key = 'after-backup'"),
	'a key used on the old primary replays');
is($standby->safe_psql('postgres', "SELECT billing.complete_request($open, '{\"duration_seconds\":8}') ->> 'status'"),
	'completed', 'a request left open settles');
cmp_ok($standby->safe_psql('postgres', "SELECT billing.charge($pre, 'fill-img', '{}', '{\"images\":[{}]}') ->> 'request_id'"),
	'>', $max_request, 'new request ids continue');
$standby->safe_psql('postgres', "SELECT billing.grant_credits($pre, 1000, now() + interval '1 day')");
is($standby->safe_psql('postgres', "SELECT count(*) FROM billing.events_after($cursor) WHERE type = 'credits_granted'"),
	'1', 'a worker\'s events_after cursor goes on');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM billing.verify()'), '0', 'verify() is clean after promotion');

done_testing();
