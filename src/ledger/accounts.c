/*
 * Accounts as the hot paths read them: a backend-local cache of the account
 * row and of whether it has spend limits or balance alerts. And the one
 * check that an account exists and is active, for C (account_load, cached)
 * and for SQL (billing._account, the row, locked when asked).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"

#include "cache.h"
#include "errors.h"
#include "ledger/ledger.h"
#include "spi_plan.h"

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
	/* the price book (account_price_book) in [book_from, book_until); empty: not known */
	TimestampTz book_from;
	TimestampTz book_until;
	bool		has_book;
	char		book[65];
} AccountEntry;

/* a backend that touches more accounts than this starts its cache afresh */
#define ACCOUNT_CACHE_MAX 100000

static HTAB *accounts = NULL;
static Oid	accounts_relid = InvalidOid;
static bool citus_present = false;
static int	distributed = -1;	/* accounts_distributed(); -1: not known yet */
/* writes to these drop the cache too: the account's has_limits, has_alerts, book */
static Oid	limits_relid = InvalidOid;
static Oid	alerts_relid = InvalidOid;
static Oid	books_relid = InvalidOid;

static void
account_cache_reset(Datum arg, Oid relid)
{
	if (accounts != NULL && (!OidIsValid(relid) || relid == accounts_relid ||
							 relid == limits_relid || relid == alerts_relid ||
							 relid == books_relid))
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
	distributed = -1;
	limits_relid = cache_relid("spend_limits");
	alerts_relid = cache_relid("balance_alerts");
	books_relid = cache_relid("price_book_assignments");
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

	plan_run(&plan,
			 "SELECT CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_dist_partition p"
			 "                          WHERE p.logicalrelid = 'billing.accounts'::pg_catalog.regclass)"
			 " THEN pg_catalog.to_regclass(pg_catalog.format('billing.accounts_%s',"
			 "        pg_catalog.get_shard_id_for_distribution_column('billing.accounts', $1))) IS NOT NULL"
			 " ELSE true END",
			 false, 1, PLAN_ARGS(ARG_INT8(account_id)));
	return DatumGetBool(spi_col(1, NULL));
}

bool
accounts_distributed(void)
{
	static SPIPlanPtr plan;

	account_cache_prepare();
	if (distributed < 0)
	{
		if (!citus_present)
			distributed = 0;
		else
		{
			plan_exec(&plan, "SELECT billing._distributed()", 0, NULL, NULL, NULL, true, 1);
			distributed = DatumGetBool(spi_col(1, NULL));
		}
	}
	return distributed;
}

static AccountEntry *
account_fetch(int64 account_id)
{
	static SPIPlanPtr plan;
	static AccountEntry read;	/* valid until the next call */
	AccountEntry *e;

	account_cache_prepare();
	e = hash_search(accounts, &account_id, HASH_FIND, NULL);
	if (e != NULL)
		return e;

	plan_run(&plan,
			 "SELECT billing_type = 'postpaid', currency, credit_limit_micros, auto_topup_enabled,"
			 "       auto_topup_threshold_micros, auto_topup_amount_micros, active,"
			 "       EXISTS (SELECT FROM billing.spend_limits l WHERE l.account_id = $1),"
			 "       EXISTS (SELECT FROM billing.balance_alerts b WHERE b.account_id = $1),"
			 "       overdue_since"
			 "  FROM billing.accounts WHERE account_id = $1",
			 false, 0, PLAN_ARGS(ARG_INT8(account_id)));
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
	read.book_from = read.book_until = 0;
	read.acct.overdue_since = DatumGetTimestampTz(spi_col(10, &read.acct.overdue));
	read.acct.overdue = !read.acct.overdue;
	if (citus_present && !account_row_local(account_id))
		return &read;
	/* the queries may have taken in an invalidation that dropped the cache */
	account_cache_prepare();
	e = hash_search(accounts, &account_id, HASH_ENTER, NULL);
	*e = read;
	return e;
}

/* PB404: the account is unknown, or disabled where an active one is needed */
static void
account_refuse(int64 account_id, bool active_only)
{
	ereport(ERROR,
			(errcode(ERRCODE_BILLING_NOT_FOUND),
			 active_only ?
			 errmsg("account " INT64_FORMAT " does not exist or is disabled", account_id) :
			 errmsg("account " INT64_FORMAT " does not exist", account_id)));
}

void
account_load(int64 account_id, Account *acct, bool active_only)
{
	AccountEntry *e = account_fetch(account_id);

	if (e == NULL || (active_only && !e->active))
		account_refuse(account_id, active_only);
	*acct = e->acct;
}

/*
 * billing._account(account_id, for_update, active_only) RETURNS
 * billing.accounts: the account's row for the cold paths in SQL, locked
 * when for_update (read after the lock, so a change committed meanwhile
 * decides); PB404 as account_load() when it is unknown, or disabled and
 * active_only.
 */
PG_FUNCTION_INFO_V1(billing_account_row);
Datum
billing_account_row(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr read_plan,
				lock_plan;
	int64		account_id = PG_GETARG_INT64(0);
	bool		for_update = PG_GETARG_BOOL(1);
	bool		active_only = PG_GETARG_BOOL(2);
	Datum		row;

	SPI_connect();
	if (for_update)
		plan_run(&lock_plan,
				 "SELECT a, a.active FROM billing.accounts a WHERE a.account_id = $1 FOR UPDATE",
				 false, 0, PLAN_ARGS(ARG_INT8(account_id)));
	else
		plan_run(&read_plan, "SELECT a, a.active FROM billing.accounts a WHERE a.account_id = $1",
				 false, 0, PLAN_ARGS(ARG_INT8(account_id)));
	if (SPI_processed == 0 || (active_only && !DatumGetBool(spi_col(2, NULL))))
		account_refuse(account_id, active_only);
	row = SPI_datumTransfer(spi_col(1, NULL), false, -1);
	SPI_finish();
	PG_RETURN_DATUM(row);
}

void
account_require_prepaid(const Account *acct, const char *detail, const char *hint)
{
	if (acct->postpaid)
		ereport(ERROR,
				(errcode(ERRCODE_BILLING_CONFLICT),
				 errmsg("account " INT64_FORMAT " is postpaid", acct->account_id),
				 errdetail("%s", detail),
				 hint ? errhint("%s", hint) : 0));
}

/* billing._require_prepaid(acct, detail): account_require_prepaid of an account row. */
PG_FUNCTION_INFO_V1(billing_require_prepaid);
Datum
billing_require_prepaid(PG_FUNCTION_ARGS)
{
	HeapTupleHeader row = PG_GETARG_HEAPTUPLEHEADER(0);
	Account		acct = {0};
	bool		isnull;

	acct.account_id = DatumGetInt64(GetAttributeByName(row, "account_id", &isnull));
	acct.postpaid = strcmp(TextDatumGetCString(GetAttributeByName(row, "billing_type", &isnull)),
						   "postpaid") == 0;
	account_require_prepaid(&acct, text_to_cstring(PG_GETARG_TEXT_PP(1)), NULL);
	PG_RETURN_VOID();
}

void
account_require_not_overdue(const Account *acct)
{
	static SPIPlanPtr plan;

	if (!acct->overdue)
		return;
	/* the invoice the detail names is invoicing's rule (invoice.sql) */
	plan_run(&plan, "SELECT billing._overdue_detail($1)", false, 1,
			 PLAN_ARGS(ARG_INT8(acct->account_id)));
	ereport(ERROR,
			(errcode(ERRCODE_BILLING_PAYMENT_REQUIRED),
			 errmsg("payment overdue"),
			 errdetail("%s", spi_text(1)),
			 errhint("Pay open invoices.")));
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

char *
account_price_book(int64 account_id, TimestampTz at)
{
	static SPIPlanPtr plan;
	AccountEntry *e = account_fetch(account_id);
	AccountEntry found;
	bool		isnull;

	if (e == NULL)
		account_refuse(account_id, false);
	if (at < e->book_from || at >= e->book_until)
	{
		plan_run(&plan, "SELECT price_book, span_from, span_until FROM billing._book_at($1, $2)",
				 false, 1, PLAN_ARGS(ARG_INT8(account_id), ARG_TSTZ(at)));
		spi_col(1, &isnull);
		found.has_book = !isnull;
		found.book[0] = '\0';
		if (found.has_book)
			strlcpy(found.book, spi_text(1), sizeof(found.book));
		found.book_from = DatumGetTimestampTz(spi_col(2, NULL));
		found.book_until = DatumGetTimestampTz(spi_col(3, NULL));
		/* the query may have taken in an invalidation that dropped the cache */
		e = accounts ? hash_search(accounts, &account_id, HASH_FIND, NULL) : NULL;
		if (e == NULL)
			return found.has_book ? pstrdup(found.book) : NULL;
		e->has_book = found.has_book;
		memcpy(e->book, found.book, sizeof(e->book));
		e->book_from = found.book_from;
		e->book_until = found.book_until;
	}
	return e->has_book ? pstrdup(e->book) : NULL;
}
