/* Accounts, the append-only ledger, balances. */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/jsonb.h"

#include "args.h"
#include "cache.h"
#include "errors.h"
#include "jsonout.h"
#include "ledger/ledger.h"
#include "money.h"
#include "spi_plan.h"

static const Oid types_int8[] = {INT8OID};

/*
 * Accounts are read on every request and change rarely: they are cached per
 * backend and the cache is dropped on any write to billing.accounts (cache.c).
 */
typedef struct AccountEntry
{
	int64		account_id;
	Account		acct;
	bool		active;
	bool		has_limits;
	bool		has_alerts;
} AccountEntry;

/* a backend that touches more accounts than this starts its cache afresh */
#define ACCOUNT_CACHE_MAX 100000

static HTAB *accounts = NULL;
static Oid	accounts_relid = InvalidOid;
static bool citus_present = false;
/* writes to these drop the cache too: the account's has_limits, has_alerts */
static Oid	limits_relid = InvalidOid;
static Oid	alerts_relid = InvalidOid;

static void
account_cache_reset(Datum arg, Oid relid)
{
	if (accounts != NULL && (!OidIsValid(relid) || relid == accounts_relid ||
							 relid == limits_relid || relid == alerts_relid))
	{
		hash_destroy(accounts);
		accounts = NULL;
	}
}

/* (Re)creates the cache when it was dropped or has grown too large. */
static void
account_cache_prepare(void)
{
	static bool registered = false;
	HASHCTL		ctl;

	if (accounts != NULL && hash_get_num_entries(accounts) < ACCOUNT_CACHE_MAX)
		return;
	if (!registered)
		CacheRegisterRelcacheCallback(account_cache_reset, (Datum) 0);
	registered = true;
	if (accounts != NULL)
		hash_destroy(accounts);
	accounts_relid = cache_relid("accounts");
	citus_present = OidIsValid(get_extension_oid("citus", true));
	limits_relid = cache_relid("spend_limits");
	alerts_relid = cache_relid("balance_alerts");
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(AccountEntry);
	ctl.hcxt = CacheMemoryContext;
	accounts = hash_create("billing accounts", 256, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/*
 * On Citus, whether the account's row is in a shard of this node. Only such a
 * row is cached: the invalidations of a write reach the backends of the node
 * whose shard it changed (cache.c), so a node that reads the row from
 * another (the coordinator, a call not pushed down) reads it every time.
 */
static bool
account_row_local(int64 account_id)
{
	static SPIPlanPtr plan;
	Datum		v[1] = {Int64GetDatum(account_id)};

	plan_exec(&plan,
			  "SELECT CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_dist_partition p"
			  "                          WHERE p.logicalrelid = 'billing.accounts'::pg_catalog.regclass)"
			  " THEN pg_catalog.to_regclass(pg_catalog.format('billing.accounts_%s',"
			  "        pg_catalog.get_shard_id_for_distribution_column('billing.accounts', $1))) IS NOT NULL"
			  " ELSE true END",
			  1, types_int8, v, NULL, false, 1);
	return DatumGetBool(spi_col(1, NULL));
}

static AccountEntry *
account_fetch(int64 account_id)
{
	static SPIPlanPtr plan;
	static AccountEntry read;	/* valid until the next call */
	Datum		v[1] = {Int64GetDatum(account_id)};
	AccountEntry *e;

	account_cache_prepare();
	e = hash_search(accounts, &account_id, HASH_FIND, NULL);
	if (e != NULL)
		return e;

	plan_exec(&plan,
			  "SELECT billing_type = 'postpaid', currency, credit_limit_micros, auto_topup_enabled,"
			  "       auto_topup_threshold_micros, auto_topup_amount_micros, active,"
			  "       EXISTS (SELECT FROM billing.spend_limits l WHERE l.account_id = $1),"
			  "       EXISTS (SELECT FROM billing.balance_alerts b WHERE b.account_id = $1)"
			  "  FROM billing.accounts WHERE account_id = $1",
			  1, types_int8, v, NULL, false, 0);
	if (SPI_processed == 0)
		return NULL;
	read.account_id = account_id;
	read.acct.account_id = account_id;
	read.acct.postpaid = DatumGetBool(spi_col(1, NULL));
	strlcpy(read.acct.currency, spi_text(2), sizeof(read.acct.currency));
	read.acct.credit_limit = spi_int64(3);
	read.acct.auto_topup_enabled = DatumGetBool(spi_col(4, NULL));
	read.acct.auto_topup_threshold = spi_int64(5);
	read.acct.auto_topup_amount = spi_int64(6);
	read.active = DatumGetBool(spi_col(7, NULL));
	read.has_limits = DatumGetBool(spi_col(8, NULL));
	read.has_alerts = DatumGetBool(spi_col(9, NULL));
	if (citus_present && !account_row_local(account_id))
		return &read;
	/* the queries may have taken in an invalidation that dropped the cache */
	account_cache_prepare();
	e = hash_search(accounts, &account_id, HASH_ENTER, NULL);
	*e = read;
	return e;
}

void
account_load(int64 account_id, Account *acct, bool active_only)
{
	AccountEntry *e = account_fetch(account_id);

	if (e == NULL || (active_only && !e->active))
		ereport(ERROR,
				(errcode(ERRCODE_BILLING_NOT_FOUND),
				 errmsg("account " INT64_FORMAT " does not exist or is disabled", account_id)));
	*acct = e->acct;
}

bool
account_has_limits(int64 account_id)
{
	AccountEntry *e = account_fetch(account_id);

	return e != NULL && e->has_limits;
}

bool
account_has_alerts(int64 account_id)
{
	AccountEntry *e = account_fetch(account_id);

	return e != NULL && e->has_alerts;
}

int64
ledger_post(int64 account_id, const char *kind, int64 amount, bool postpaid,
			int64 request_id, int64 topup_id, int64 invoice_id,
			const char *key, const char *reference)
{
	static SPIPlanPtr plan;
	Datum		v[9];
	char		n[9] = "         ";

	ledger_check_entry(kind, amount);
	v[0] = Int64GetDatum(account_id);
	v[1] = CStringGetTextDatum(kind);
	v[2] = Int64GetDatum(amount);
	v[3] = BoolGetDatum(postpaid);
	v[4] = Int64GetDatum(request_id);
	n[4] = request_id ? ' ' : 'n';
	v[5] = Int64GetDatum(topup_id);
	n[5] = topup_id ? ' ' : 'n';
	v[6] = Int64GetDatum(invoice_id);
	n[6] = invoice_id ? ' ' : 'n';
	v[7] = key ? CStringGetTextDatum(key) : (Datum) 0;
	n[7] = key ? ' ' : 'n';
	v[8] = reference ? CStringGetTextDatum(reference) : (Datum) 0;
	n[8] = reference ? ' ' : 'n';
	/* a key already used returns no row: the caller looks at the first entry */
	plan_exec(&plan,
			  "INSERT INTO billing.ledger (account_id, kind, amount_micros, postpaid,"
			  "       request_id, topup_id, invoice_id, idempotency_key, reference)"
			  " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
			  " ON CONFLICT (account_id, idempotency_key) WHERE idempotency_key IS NOT NULL"
			  " DO NOTHING RETURNING entry_id",
			  9, (Oid[]) {INT8OID, TEXTOID, INT8OID, BOOLOID, INT8OID, INT8OID, INT8OID, TEXTOID, TEXTOID},
			  v, n, false, 0);
	return SPI_processed == 1 ? spi_int64(1) : 0;
}

/* The first add_funds with this key, or PB409 when it credited another amount. */
static int64
funds_replay(int64 account_id, const char *key, int64 amount)
{
	static SPIPlanPtr plan;
	Datum		v[2] = {Int64GetDatum(account_id), CStringGetTextDatum(key)};

	plan_exec(&plan,
			  "SELECT entry_id, amount_micros, kind FROM billing.ledger"
			  " WHERE account_id = $1 AND idempotency_key = $2",
			  2, (Oid[]) {INT8OID, TEXTOID}, v, NULL, false, 1);
	if (SPI_processed == 0)
		return 0;
	if (spi_int64(2) != amount || strcmp(spi_text(3), "funds") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_BILLING_CONFLICT),
				 errmsg("idempotency key \"%s\" was already used with other parameters", key),
				 errdetail("Entry " INT64_FORMAT " was posted with this key for " INT64_FORMAT " micros.",
						   spi_int64(1), spi_int64(2))));
	return spi_int64(1);
}

PG_FUNCTION_INFO_V1(billing_add_funds);
Datum
billing_add_funds(PG_FUNCTION_ARGS)
{
	int64		account_id = PG_GETARG_INT64(0);
	int64		amount = PG_GETARG_INT64(1);
	char	   *key = args_text(fcinfo, 2);
	char	   *reference = args_text(fcinfo, 3);
	Account		acct;
	int64		entry_id = 0;

	args_require(fcinfo, 2);
	money_require_positive(amount, "amount_micros");
	args_check_idempotency_key(key);
	SPI_connect();
	account_load(account_id, &acct, true);
	if (acct.postpaid)
		ereport(ERROR,
				(errcode(ERRCODE_BILLING_CONFLICT),
				 errmsg("account " INT64_FORMAT " is postpaid", account_id),
				 errdetail("Funds are added to prepaid accounts only."),
				 errhint("Postpaid usage is settled with billing.mark_invoice_paid().")));
	if (key)
		entry_id = funds_replay(account_id, key, amount);
	if (entry_id == 0)
	{
		entry_id = ledger_post(account_id, "funds", amount, false, 0, 0, 0, key, reference);
		if (entry_id != 0)
			available_rebalance(account_id, amount);
		else					/* a concurrent call with this key committed first */
			entry_id = funds_replay(account_id, key, amount);
	}
	SPI_finish();
	PG_RETURN_INT64(entry_id);
}

/* Refuses (22023) a billing type other than prepaid and postpaid. */
static void
check_billing_type(const char *billing_type)
{
	if (strcmp(billing_type, "prepaid") != 0 && strcmp(billing_type, "postpaid") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid billing type \"%s\"", billing_type),
				 errhint("Use \"prepaid\" or \"postpaid\".")));
}

/* billing._check_billing_type(billing_type): the same check for billing's SQL */
PG_FUNCTION_INFO_V1(billing_check_billing_type);
Datum
billing_check_billing_type(PG_FUNCTION_ARGS)
{
	check_billing_type(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(billing_create_account);
Datum
billing_create_account(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr insert_plan;
	static SPIPlanPtr external_plan;
	static SPIPlanPtr slices_plan;
	text	   *external_id;
	char	   *billing_type;
	char	   *currency;
	int			len;
	Datum		v[3];
	int64		account_id;

	args_require(fcinfo, 3);
	external_id = PG_GETARG_TEXT_PP(0);
	billing_type = text_to_cstring(PG_GETARG_TEXT_PP(1));
	currency = text_to_cstring(PG_GETARG_TEXT_PP(2));
	len = VARSIZE_ANY_EXHDR(external_id);
	if (len < 1 || len > 256)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("external_id must have 1 to 256 characters")));
	check_billing_type(billing_type);
	if (!money_currency_valid(currency))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid currency \"%s\"", currency),
				 errhint("Use an ISO 4217 code such as \"USD\".")));

	SPI_connect();
	v[0] = PointerGetDatum(external_id);
	v[1] = CStringGetTextDatum(billing_type);
	v[2] = CStringGetTextDatum(currency);
	plan_exec(&insert_plan,
			  "INSERT INTO billing.accounts (external_id, billing_type, currency)"
			  " VALUES ($1, $2, $3) RETURNING account_id",
			  3, (Oid[]) {TEXTOID, TEXTOID, TEXTOID}, v, NULL, false, 0);
	account_id = spi_int64(1);
	/* the cluster-wide unique key (schema.sql); a taken external_id fails here */
	v[1] = Int64GetDatum(account_id);
	plan_exec(&external_plan,
			  "INSERT INTO billing.external_ids (external_id, account_id) VALUES ($1, $2)",
			  2, (Oid[]) {TEXTOID, INT8OID}, v, NULL, false, 0);
	v[0] = Int64GetDatum(account_id);
	v[1] = Int32GetDatum(billing_balance_slices);
	plan_exec(&slices_plan,
			  "INSERT INTO billing.account_slices (account_id, slice, available_micros)"
			  " SELECT $1, s, 0 FROM pg_catalog.generate_series(0, $2 - 1) s",
			  2, (Oid[]) {INT8OID, INT4OID}, v, NULL, false, 0);
	SPI_finish();
	PG_RETURN_INT64(account_id);
}

/* billing._move: a money movement = a ledger entry + the same change of available. */
PG_FUNCTION_INFO_V1(billing_move);
Datum
billing_move(PG_FUNCTION_ARGS)
{
	int64		account_id = PG_GETARG_INT64(0);
	int64		amount = PG_GETARG_INT64(1);
	char	   *kind;
	char	   *reference = args_text(fcinfo, 3);
	int64		topup_id = PG_ARGISNULL(4) ? 0 : PG_GETARG_INT64(4);
	int64		invoice_id = PG_ARGISNULL(5) ? 0 : PG_GETARG_INT64(5);
	Account		acct;
	int64		entry_id;

	args_require(fcinfo, 3);
	kind = text_to_cstring(PG_GETARG_TEXT_PP(2));
	SPI_connect();
	account_load(account_id, &acct, false);
	entry_id = ledger_post(account_id, kind, amount, acct.postpaid, 0, topup_id, invoice_id,
						   NULL, reference);
	available_rebalance(account_id, amount);
	SPI_finish();
	PG_RETURN_INT64(entry_id);
}

/* billing._adjust_available: a change of credit limit, not of money. */
PG_FUNCTION_INFO_V1(billing_adjust_available);
Datum
billing_adjust_available(PG_FUNCTION_ARGS)
{
	SPI_connect();
	available_rebalance(PG_GETARG_INT64(0), PG_GETARG_INT64(1));
	SPI_finish();
	PG_RETURN_VOID();
}

/* balance()'s "credits" and "limits" (billing._credits, billing._limits), as a jsonb object. */
static Datum
balance_credits(int64 account_id)
{
	static SPIPlanPtr plan;

	plan_exec(&plan, "SELECT pg_catalog.jsonb_build_object('credits', billing._credits($1),"
			  "                                 'limits', billing._limits($1))",
			  1, types_int8, (Datum[]) {Int64GetDatum(account_id)}, NULL, false, 0);
	return SPI_datumTransfer(spi_col(1, NULL), false, -1);
}

PG_FUNCTION_INFO_V1(billing_balance);
Datum
billing_balance(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan;
	int64		account_id = PG_GETARG_INT64(0);
	Account		acct;
	int64		available,
				held,
				unbilled,
				unpaid,
				kept,
				balance,
				credit,
				threshold;
	Datum		credits;
	StringInfoData buf;
	MemoryContext upper = CurrentMemoryContext;

	args_require(fcinfo, 1);
	SPI_connect();
	account_load(account_id, &acct, true);
	/*
	 * One statement, so one snapshot: exact for every committed transaction.
	 * Unbilled usage is a matter of invoice periods, defined once in SQL
	 * (invoice.sql).
	 */
	plan_exec(&plan,
			  "SELECT a.available_micros, a.held_micros, p.unbilled_micros, p.unpaid_micros,"
			  "       p.credit_micros"
			  "  FROM billing._available_position($1) a, billing._postpaid_position($1) p",
			  1, types_int8, (Datum[]) {Int64GetDatum(account_id)}, NULL, false, 0);
	available = spi_int64(1);
	held = spi_int64(2);
	unbilled = spi_int64(3);
	unpaid = spi_int64(4);
	kept = spi_int64(5);
	credit = acct.postpaid ? acct.credit_limit : 0;
	balance = money_add(money_add(available, held), -credit);
	threshold = low_balance_threshold(account_id);
	credits = balance_credits(account_id);

	MemoryContextSwitchTo(upper);
	initStringInfo(&buf);
	json_begin(&buf);
	json_add_str(&buf, "object", "balance");
	json_add_int(&buf, "account_id", account_id);
	json_add_str(&buf, "billing_type", acct.postpaid ? "postpaid" : "prepaid");
	json_add_str(&buf, "currency", acct.currency);
	json_add_int(&buf, "balance_micros", balance);
	json_add_int(&buf, "held_micros", held);
	json_add_int(&buf, "available_micros", available);
	json_key(&buf, "available");
	json_begin(&buf);
	json_add_money(&buf, "amount", available);
	json_add_str(&buf, "currency", acct.currency);
	json_end(&buf);
	json_add_int(&buf, "credit_limit_micros", acct.credit_limit);
	json_add_int(&buf, "unbilled_micros", unbilled);
	json_add_int(&buf, "unpaid_invoices_micros", unpaid);
	json_add_int(&buf, "prepaid_credit_micros", kept);
	json_add_int(&buf, "low_balance_threshold_micros", threshold);
	json_add_str(&buf, "validation",
				 fast_budget(available, threshold, held) > 0 ? "fast_path" : "per_request");
	json_add_bool(&buf, "auto_topup", acct.auto_topup_enabled);
	json_end(&buf);
	SPI_finish();
	PG_RETURN_DATUM(DirectFunctionCall2(jsonb_concat, jsonb_from_text(buf.data), credits));
}
