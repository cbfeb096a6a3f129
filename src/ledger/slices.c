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
 * concurrent requests of one account lock different rows. Exact path (no
 * slice covers it): lock every slice in slice order, decide on the exact
 * total, then spread the rest over all slices while the account is at or
 * above its low-balance threshold, or keep it in slice 0 below it, so that
 * every later request validates against the exact amount on one row.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
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

static bool
take_fast(int64 account_id, int64 amount)
{
	static SPIPlanPtr plan;
	Datum		v[3] = {Int64GetDatum(account_id), Int64GetDatum(amount), Int32GetDatum(slice_home())};

	plan_exec(&plan, SLICE_TAKE_SQL("$1", "$2", "$3"),
			  3, types_acct_amount_slice, v, NULL, false, 0);
	return SPI_processed == 1;
}

/* Locks every slice of the account; returns the exact total and the count. */
static int64
lock_all(int64 account_id, int *nslices)
{
	static SPIPlanPtr plan;
	Datum		v[1] = {Int64GetDatum(account_id)};
	int64		total = 0;

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

/* With every slice locked: lays total out again (see the file comment). */
static void
spread(int64 account_id, int64 total, int nslices)
{
	static SPIPlanPtr plan;
	int64		each = 0;
	Datum		v[3];

	if (total > 0 && nslices > 1 && total >= low_balance_threshold(account_id))
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
	int			nslices;
	int64		total;

	Assert(amount >= 0);
	/* a zero amount still needs a non-negative total: only the exact path knows */
	if (amount > 0 && take_fast(acct->account_id, amount))
		return;
	total = lock_all(acct->account_id, &nslices);
	if (total < amount)
		raise_not_covered(acct, amount, total);
	spread(acct->account_id, total - amount, nslices);
}

void
available_adjust(int64 account_id, int64 delta)
{
	static SPIPlanPtr pick_plan;
	static SPIPlanPtr debt_plan;
	static SPIPlanPtr add_plan;
	Datum		v[3] = {Int64GetDatum(account_id), Int64GetDatum(delta), Int32GetDatum(slice_home())};
	int			slice = 0;
	int			nslices;
	int64		total;
	Datum		picked;
	bool		isnull;

	if (delta == 0)
		return;
	if (delta < 0)
	{
		/* a debit that may overdraw: a covering slice, or all of them */
		if (take_fast(account_id, -delta))
			return;
		total = lock_all(account_id, &nslices);
		spread(account_id, money_add(total, delta), nslices);
		return;
	}

	/*
	 * A credit goes to any unlocked slice, unless slice 0 holds a debt: then
	 * to slice 0, so that the debt is never hidden behind a positive slice.
	 * The debt is read after the chosen slice is locked, in a statement of
	 * its own: an exact path that could still create a debt needs that lock,
	 * so it either committed before the read or runs after this credit.
	 */
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
	int			nslices;
	int64		total = lock_all(account_id, &nslices);

	spread(account_id, money_add(total, delta), nslices);
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
#define SPEND_SAMPLE 10000

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
