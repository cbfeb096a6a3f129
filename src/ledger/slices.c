/*
 * The available amount of an account, kept in slices.
 *
 * Invariants (checked by billing.verify()):
 *  - sum(slices) = available = balance - holds (+ credit limit when postpaid);
 *  - only slice 0 can be negative, and then every other slice is zero.
 * The second one makes the fast path exact: a slice that covers a request
 * is part of a total that covers it too.
 *
 * Fast path: take an unlocked slice that covers the amount (SKIP LOCKED), so
 * concurrent requests of one account lock different rows; when the slice
 * this backend tries first covers it but is locked, wait for that one row.
 * Exact path (no slice covers it): lock every slice, decide on the exact
 * total, then spread the rest over all slices while the account is at or
 * above its low-balance threshold, or keep it in slice 0 below it, so that
 * every later request validates against the exact amount on one row.
 *
 * The account gate, a heavyweight lock per account held to commit, keeps the
 * two paths from deadlocking: whoever touches a slice holds it in share
 * mode, the exact path in exclusive mode, so the exact path never waits for
 * a slice row while it holds others. A fast path only tries the share mode
 * and runs in a subtransaction, so that a failed attempt (a row SKIP LOCKED
 * locked but then found short) leaves no row lock behind when it makes way
 * for the exact path.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "billing.h"
#include "errors.h"
#include "ledger/ledger.h"
#include "money.h"
#include "spi_plan.h"

static const Oid types_acct_amount_slice[] = {INT8OID, INT8OID, INT4OID};
static const Oid types_acct_slice[] = {INT8OID, INT4OID};

int
slice_home(void)
{
	return MyProcPid % billing_balance_slices;
}

/* the advisory lock tag of an account's gate; field 4 keeps it apart from
 * pg_advisory_lock()'s keys (1 and 2) */
#define GATE_TAG_KIND 0xB111

static void
gate_tag(LOCKTAG *tag, int64 account_id)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) ((uint64) account_id >> 32),
						 (uint32) account_id, GATE_TAG_KIND);
}

/* Takes the gate in mode, held to commit; false when dont_wait and busy. */
static bool
gate(int64 account_id, LOCKMODE mode, bool dont_wait)
{
	LOCKTAG		tag;

	gate_tag(&tag, account_id);
	return LockAcquire(&tag, mode, false, dont_wait) != LOCKACQUIRE_NOT_AVAIL;
}

/* Gives back the share a failed fast path took (only that one acquisition). */
static void
gate_release_share(int64 account_id)
{
	LOCKTAG		tag;

	gate_tag(&tag, account_id);
	LockRelease(&tag, ShareLock, false);
}

/* Runs one attempt in a subtransaction; keeps what it did only on success. */
static bool
attempt_in_subxact(bool (*attempt) (void *arg, bool wait_home), void *arg, bool wait_home)
{
	MemoryContext mcxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	bool		taken;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(mcxt);
	taken = attempt(arg, wait_home);
	if (taken)
		ReleaseCurrentSubTransaction();
	else
		RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(mcxt);
	CurrentResourceOwner = owner;
	return taken;
}

bool
available_try_fast(int64 account_id, bool (*attempt) (void *arg, bool wait_home), void *arg)
{
	if (!gate(account_id, ShareLock, true))
		return false;			/* an exact path runs or waits: queue behind it */
	if (attempt_in_subxact(attempt, arg, false) || attempt_in_subxact(attempt, arg, true))
		return true;
	gate_release_share(account_id);
	return false;
}

bool
slice_take_home(int64 account_id, int64 amount)
{
	static SPIPlanPtr plan;
	Datum		v[3] = {Int64GetDatum(account_id), Int64GetDatum(amount), Int32GetDatum(slice_home())};

	plan_exec(&plan,
			  "UPDATE billing.account_slices SET available_micros = available_micros - $2"
			  " WHERE account_id = $1 AND slice = $3 AND available_micros >= $2",
			  3, types_acct_amount_slice, v, NULL, false, 0);
	return SPI_processed == 1;
}

typedef struct TakeArgs
{
	int64		account_id;
	int64		amount;
} TakeArgs;

static bool
take_attempt(void *arg, bool wait_home)
{
	static SPIPlanPtr plan;
	TakeArgs   *a = (TakeArgs *) arg;
	Datum		v[3] = {Int64GetDatum(a->account_id), Int64GetDatum(a->amount),
	Int32GetDatum(slice_home())};

	if (wait_home)
		return slice_take_home(a->account_id, a->amount);
	plan_exec(&plan, SLICE_TAKE_SQL("$1", "$2", "$3"),
			  3, types_acct_amount_slice, v, NULL, false, 0);
	return SPI_processed == 1;
}

static bool
take_fast(int64 account_id, int64 amount)
{
	TakeArgs	a = {account_id, amount};

	return available_try_fast(account_id, take_attempt, &a);
}

/*
 * Takes the gate in exclusive mode and locks every slice of the account;
 * returns the exact total and the count.
 */
static int64
lock_all(int64 account_id, int *nslices)
{
	static SPIPlanPtr plan;
	Datum		v[1] = {Int64GetDatum(account_id)};
	int64		total = 0;

	gate(account_id, ExclusiveLock, false);
	plan_exec(&plan,
			  "SELECT available_micros FROM billing.account_slices"
			  " WHERE account_id = $1 ORDER BY slice FOR UPDATE",
			  1, types_acct_amount_slice, v, NULL, false, 0);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_BILLING_NOT_FOUND),
				 errmsg("account " INT64_FORMAT " does not exist", account_id)));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		total = money_add(total,
						  DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
													  SPI_tuptable->tupdesc, 1, &isnull)));
	}
	*nslices = (int) SPI_processed;
	return total;
}

/*
 * With every slice locked: lays total out again (see the file comment).
 * The threshold is computed before the locks are taken: it reads the
 * ledger, and a threshold a few milliseconds old only decides the layout.
 */
static void
spread(int64 account_id, int64 total, int nslices, int64 threshold)
{
	static SPIPlanPtr plan;
	int64		each = 0;
	Datum		v[3];

	if (total > 0 && nslices > 1 && total >= threshold)
		each = total / nslices;
	v[0] = Int64GetDatum(account_id);
	v[1] = Int64GetDatum(total - each * (nslices - 1));
	v[2] = Int64GetDatum(each);
	plan_exec(&plan,
			  "UPDATE billing.account_slices"
			  "   SET available_micros = CASE WHEN slice = 0 THEN $2 ELSE $3 END"
			  " WHERE account_id = $1",
			  3, (Oid[]) {INT8OID, INT8OID, INT8OID}, v, NULL, false, 0);
}

static void
raise_not_covered(const Account *acct, int64 needed, int64 available)
{
	const char *cur = acct->currency;

	ereport(ERROR,
			(errcode(ERRCODE_BILLING_PAYMENT_REQUIRED),
			 acct->postpaid ? errmsg("credit limit exceeded") : errmsg("insufficient balance"),
			 errdetail("Request needs %s %s; %s %s is available.",
					   money_format(needed), cur, money_format(available), cur),
			 acct->postpaid ? errhint("Pay open invoices or raise the credit limit.") :
			 acct->auto_topup_enabled ? errhint("Add funds or switch to postpaid billing.") :
			 errhint("Add funds, enable auto top-up, or switch to postpaid billing.")));
}

void
available_take(const Account *acct, int64 amount)
{
	Assert(amount >= 0);
	/* a zero amount still needs a non-negative total: only the exact path knows */
	if (amount > 0 && take_fast(acct->account_id, amount))
		return;
	available_take_exact(acct, amount);
}

void
available_take_exact(const Account *acct, int64 amount)
{
	int			nslices;
	int64		threshold;
	int64		total;

	threshold = low_balance_threshold(acct->account_id);
	total = lock_all(acct->account_id, &nslices);
	if (total < amount)
		raise_not_covered(acct, amount, total);
	spread(acct->account_id, total - amount, nslices, threshold);
}

void
available_adjust(int64 account_id, int64 delta)
{
	static SPIPlanPtr pick_plan;
	static SPIPlanPtr debt_plan;
	static SPIPlanPtr add_plan;
	Datum		v[3] = {Int64GetDatum(account_id), Int64GetDatum(delta), Int32GetDatum(slice_home())};
	int			slice = 0;
	Datum		picked;
	bool		isnull;

	if (delta == 0)
		return;
	if (delta < 0)
	{
		/* a debit that may overdraw: a covering slice, or all of them */
		if (!take_fast(account_id, -delta))
			available_rebalance(account_id, delta);
		return;
	}

	/*
	 * A credit goes to any unlocked slice, unless slice 0 holds a debt: then
	 * to slice 0, so that the debt is never hidden behind a positive slice.
	 * Only an exact path creates a debt, and the share gate keeps it out
	 * until this transaction ends.
	 */
	gate(account_id, ShareLock, false);
	plan_exec(&pick_plan,
			  "SELECT COALESCE("
			  "       (SELECT slice FROM billing.account_slices"
			  "         WHERE account_id = $1 AND slice = $2 FOR UPDATE SKIP LOCKED),"
			  "       (SELECT slice FROM billing.account_slices WHERE account_id = $1"
			  "         ORDER BY slice LIMIT 1 FOR UPDATE SKIP LOCKED))",
			  2, types_acct_slice, (Datum[]) {v[0], v[2]}, NULL, false, 0);
	picked = spi_col(1, &isnull);
	if (!isnull)
		slice = DatumGetInt32(picked);
	if (slice != 0)
	{
		plan_exec(&debt_plan,
				  "SELECT available_micros < 0 FROM billing.account_slices"
				  " WHERE account_id = $1 AND slice = 0",
				  1, types_acct_slice, v, NULL, false, 0);
		if (SPI_processed == 1 && DatumGetBool(spi_col(1, NULL)))
			slice = 0;
	}
	v[2] = Int32GetDatum(slice);
	plan_exec(&add_plan,
			  "UPDATE billing.account_slices SET available_micros = available_micros + $2"
			  " WHERE account_id = $1 AND slice = $3",
			  3, types_acct_amount_slice, v, NULL, false, 0);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_BILLING_NOT_FOUND),
				 errmsg("account " INT64_FORMAT " does not exist", account_id)));
}

void
available_rebalance(int64 account_id, int64 delta)
{
	int64		threshold = low_balance_threshold(account_id);
	int			nslices;
	int64		total = lock_all(account_id, &nslices);

	spread(account_id, money_add(total, delta), nslices, threshold);
}

int64
available_total(int64 account_id)
{
	static SPIPlanPtr plan;
	Datum		v[1] = {Int64GetDatum(account_id)};

	plan_exec(&plan,
			  "SELECT COALESCE(pg_catalog.sum(available_micros), 0)::bigint"
			  "  FROM billing.account_slices WHERE account_id = $1",
			  1, types_acct_amount_slice, v, NULL, false, 0);
	return spi_int64(1);
}

/*
 * Spend over the window, from the latest SPEND_SAMPLE usage entries at most:
 * a busy account has far more, and scanning them all with every slice locked
 * would stall it. When the sample does not reach back over the whole window,
 * the spend is extrapolated from the sample's rate (exactly, in numeric).
 */
#define SPEND_SAMPLE 1000

int64
low_balance_threshold(int64 account_id)
{
	static SPIPlanPtr plan;
	TimestampTz now = GetCurrentTimestamp();
	int64		window = (int64) billing_low_balance_window * USECS_PER_SEC;
	Datum		v[4];
	int64		spend;

	v[0] = Int64GetDatum(account_id);
	v[1] = TimestampTzGetDatum(now - window);
	v[2] = Int64GetDatum(window);
	v[3] = TimestampTzGetDatum(now);
	plan_exec(&plan,
			  "SELECT (CASE WHEN pg_catalog.count(*) < " CppAsString2(SPEND_SAMPLE)
			  "            THEN COALESCE(-pg_catalog.sum(amount_micros), 0)"
			  "            ELSE LEAST(-pg_catalog.sum(amount_micros)::numeric * $3"
			  "                       / GREATEST(EXTRACT(EPOCH FROM $4 - pg_catalog.min(created_at))"
			  "                                  * 1000000, 1),"
			  "                       9223372036854775807) END)::bigint"
			  "  FROM (SELECT amount_micros, created_at FROM billing.ledger"
			  "         WHERE account_id = $1 AND kind = 'usage' AND created_at >= $2"
			  "         ORDER BY created_at DESC LIMIT " CppAsString2(SPEND_SAMPLE) ") s",
			  4, (Oid[]) {INT8OID, TIMESTAMPTZOID, INT8OID, TIMESTAMPTZOID}, v, NULL, false, 0);
	spend = spi_int64(1);
	return Max(money_mul(spend, billing_low_balance_factor),
			   (int64) billing_low_balance_floor_micros);
}
