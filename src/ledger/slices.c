/*
 * The available amount of an account, kept in slices.
 *
 * Invariants (checked by billing.verify()):
 *  - sum(slices) = available = balance - holds (+ credit limit when postpaid);
 *  - only slice 0 can be negative, and then every other slice is zero;
 *  - 0 <= fast_micros <= max(available_micros, 0) in every slice.
 * The fast path takes only from fast_micros, a slice's share of a budget
 * set at the last exact pass: a slice that covers a request is part of a
 * total that covers it too.
 *
 * Fast path: take from an unlocked slice whose budget covers the amount
 * (SKIP LOCKED), so concurrent requests of one account lock different rows;
 * when the slice this backend tries first covers it but is locked, wait
 * for that one row. Credits add to available_micros only, never to a
 * budget. Exact path (no budget covers it): lock every slice, decide on the
 * exact total, then lay the rest out again (lay_out) with a new budget,
 * available_fast_budget(): what the fast path can take before the next exact pass
 * without the account falling below its low-balance threshold, however
 * that threshold rises with the spend it brings.
 *
 * balance() says "per_request" exactly when available_fast_budget() of the present
 * state is 0. While a slice still has budget b, the present state's budget
 * is at least b (the layout reserved room for everything taken and settled
 * since), so "per_request" means no slice has any: every request validates
 * against the exact amount on slice 0.
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

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "common/int.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "direct.h"
#include "errors.h"
#include "ledger/ledger.h"
#include "ledger/slices.h"
#include "money.h"
#include "pg_version_compat.h"
#include "settings.h"
#include "spi_plan.h"

char	   *billing_low_balance_floor_micros = NULL;
int			billing_low_balance_factor = 2;
int			billing_low_balance_window = 300;
int			billing_balance_slices = 16;

void
slices_init(void)
{
	money_define_setting("billing.low_balance_floor_micros",
						 "Lowest low-balance threshold; below its threshold an account validates every request exactly.",
						 &billing_low_balance_floor_micros, "1000000");
	settings_define_int("billing.low_balance_factor",
						"Multiple of recent spend that sets the low-balance threshold.",
						NULL, &billing_low_balance_factor, 2, 0, 1000, 0);
	settings_define_int("billing.low_balance_window",
						"Window of recent spend for the low-balance threshold.",
						NULL, &billing_low_balance_window, 300, 1, 86400, GUC_UNIT_S);
	settings_define_int("billing.balance_slices",
						"Slices a new account's available amount is split into.",
						"More slices let more requests of one account run at once.",
						&billing_balance_slices, 16, 1, 256, 0);
}

static const Oid types_acct_amount_slice[] = {INT8OID, INT8OID, INT4OID};
static const Oid types_acct_slice[] = {INT8OID, INT4OID};

int
slices_home(void)
{
	return MyProcPid % billing_balance_slices;
}

/*
 * Waits for this backend's home slice and takes amount from it when its
 * fast budget covers it; true when it did.
 */
static bool
take_home(int64 account_id, int64 amount)
{
	static SPIPlanPtr plan;
	Datum		v[3] = {Int64GetDatum(account_id), Int64GetDatum(amount), Int32GetDatum(slices_home())};

	plan_exec(&plan,
			  "UPDATE billing.account_slices SET available_micros = available_micros - $2,"
			  "       fast_micros = fast_micros - $2"
			  " WHERE account_id = $1 AND slice = $3 AND fast_micros >= $2",
			  3, types_acct_amount_slice, v, NULL, false, 0);
	return SPI_processed == 1;
}

/*
 * The fast-path take: amount ($2, > 0) out of an unlocked slice of account
 * $1 whose fast budget covers it, trying slice $3 first (one index probe;
 * COALESCE runs the scan of the others only when that one is locked or
 * short); one row when it took.
 */
#define AVAILABLE_TAKE_SQL \
	"UPDATE billing.account_slices SET available_micros = available_micros - $2," \
	"       fast_micros = fast_micros - $2" \
	" WHERE account_id = $1 AND slice = COALESCE(" \
	"       (SELECT slice FROM billing.account_slices" \
	"         WHERE account_id = $1 AND slice = $3" \
	"           AND fast_micros >= $2 FOR UPDATE SKIP LOCKED)," \
	"       (SELECT slice FROM billing.account_slices" \
	"         WHERE account_id = $1 AND fast_micros >= $2" \
	"         ORDER BY slice LIMIT 1 FOR UPDATE SKIP LOCKED))" \
	" RETURNING slice"

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
	Int32GetDatum(slices_home())};

	if (wait_home)
		return take_home(a->account_id, a->amount);
	plan_exec(&plan, AVAILABLE_TAKE_SQL,
			  3, types_acct_amount_slice, v, NULL, false, 0);
	return SPI_processed == 1;
}

static bool
take_fast(int64 account_id, int64 amount)
{
	TakeArgs	a = {account_id, amount};

	return slices_try_fast(account_id, GATE_ACCOUNT, take_attempt, &a);
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

	slices_gate_lock(account_id, GATE_ACCOUNT, ExclusiveLock);
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

/* billing._lock_available: lock_all() for a cold path in SQL. */
PG_FUNCTION_INFO_V1(billing_lock_available);
Datum
billing_lock_available(PG_FUNCTION_ARGS)
{
	int			nslices;
	int64		total;

	SPI_connect();
	total = lock_all(PG_GETARG_INT64(0), &nslices);
	SPI_finish();
	PG_RETURN_INT64(total);
}

/* Holds of the account's unfinished requests. */
static int64
holds_total(int64 account_id)
{
	static SPIPlanPtr plan;

	plan_exec(&plan, "SELECT billing._holds($1)",
			  1, types_acct_amount_slice, (Datum[]) {Int64GetDatum(account_id)}, NULL, false, 0);
	return spi_int64(1);
}

int64
available_fast_budget(int64 available, int64 threshold, int64 holds)
{
	int64		factor = billing_low_balance_factor;
	int64		reserve;

	if (available <= threshold)
		return 0;
	/* available > threshold >= 0: only the reserve can overflow */
	if (pg_mul_s64_overflow(holds, factor, &reserve) || reserve >= available - threshold)
		return 0;
	return (available - threshold - reserve) / (1 + factor);
}

SliceLayout
slices_layout(int64 rest, int64 budget, int nslices, int64 request)
{
	SliceLayout l = {rest, 0, 0};

	if (budget > 0)
	{
		l.budgeted = nslices;
		if (request > 0 && budget / request < l.budgeted)
			l.budgeted = Max(budget / request, 1);
		l.each = budget / l.budgeted;
		l.home = rest - l.each * (l.budgeted - 1);
	}
	return l;
}

/*
 * With every slice locked (after lock_all): lays rest out again
 * (slices_layout); debit (<= 0) is what the caller took, about to become
 * usage or a hold. The threshold and holds are read here, under the gate, so
 * that they count every charge committed so far.
 */
static void
lay_out(int64 account_id, int64 rest, int nslices, int64 request, int64 debit)
{
	static SPIPlanPtr plan;
	int64		threshold = available_threshold(account_id);
	int64		holds;
	int64		budget = 0;
	SliceLayout l;

	if (rest > threshold && !pg_sub_s64_overflow(holds_total(account_id), debit, &holds))
		budget = available_fast_budget(rest, threshold, holds);
	l = slices_layout(rest, budget, nslices, request);
	plan_run(&plan,
			 "UPDATE billing.account_slices SET" SLICES_LAYOUT_SET " WHERE account_id = $1",
			 false, 0,
			 PLAN_ARGS(ARG_INT8(account_id), ARG_INT8(l.home), ARG_INT8(l.each), ARG_INT8(l.budgeted)));
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

static void
take_exact(const Account *acct, int64 amount)
{
	int			nslices;
	int64		total = lock_all(acct->account_id, &nslices);

	if (total < amount)
		raise_not_covered(acct, amount, total);
	lay_out(acct->account_id, total - amount, nslices, amount, -amount);
}

/*
 * After the available amount moved by delta: the balance alerts it crossed.
 * Every caller holds the account's gate once it moved money (delta != 0).
 */
static void
after_change(const Account *acct, int64 delta)
{
	if (delta != 0 && account_has_alerts(acct->account_id))
		alerts_after_change(acct, delta, available_total(acct->account_id));
}

void
available_take(const Account *acct, int64 amount)
{
	Assert(amount >= 0);
	/* a zero amount still needs a non-negative total: only the exact path knows */
	if (!(amount > 0 && take_fast(acct->account_id, amount)))
		take_exact(acct, amount);
	after_change(acct, -amount);
}

void
available_take_exact(const Account *acct, int64 amount)
{
	take_exact(acct, amount);
	after_change(acct, -amount);
}

/*
 * A table of slices as the direct fast path sees it (direct.h): the key
 * columns before the slice (bigint), and the columns it reads and writes.
 */
typedef struct SliceTable
{
	DirectTable table;
	int			nprefix;
	int			slice;
	int			available;
	int			fast;
	int			period_end;		/* -1: slices without a period */
	int			ncolumns;
} SliceTable;

static const SliceTable account_slices = {
	DIRECT_SLICES, 1, DS_SLICE, DS_AVAILABLE, DS_FAST, -1, DS_COLUMNS
};
static const SliceTable limit_slices = {
	DIRECT_LIMIT_SLICES, 2, DLS_SLICE, DLS_AVAILABLE, DLS_FAST, DLS_PERIOD_END, DLS_COLUMNS
};

typedef struct DirectTake
{
	const SliceTable *st;
	int64		amount;
	TimestampTz now;			/* a slice's period must end after it */
	Snapshot	snap;
	TupleTableSlot *found;
	TupleTableSlot *locked;
} DirectTake;

/*
 * The direct take from one slice that the scan found: only when its budget
 * covers amount (and its period has not ended), and only that version,
 * locked without waiting (so it is the latest and covers amount still). A
 * slice locked, changed or short is left alone, and nothing is locked then.
 */
static bool
take_direct_row(DirectTake *dt)
{
	const SliceTable *st = dt->st;
	Relation	rel = direct_relation(st->table);
	Datum		v[DLS_COLUMNS];
	bool		n[DLS_COLUMNS];
	TM_FailureData tmfd;
	bool		isnull;

	if (DatumGetInt64(slot_getattr(dt->found, direct_attnum(st->table, st->fast), &isnull)) < dt->amount)
		return false;
	if (st->period_end >= 0 &&
		DatumGetTimestampTz(slot_getattr(dt->found, direct_attnum(st->table, st->period_end),
										 &isnull)) <= dt->now)
		return false;
	if (table_tuple_lock(rel, &dt->found->tts_tid, dt->snap, dt->locked, GetCurrentCommandId(true),
						 LockTupleExclusive, LockWaitSkip, 0, &tmfd) != TM_Ok)
		return false;
	for (int c = 0; c < st->ncolumns; c++)
		v[c] = slot_getattr(dt->locked, direct_attnum(st->table, c), &n[c]);
	v[st->available] = Int64GetDatum(DatumGetInt64(v[st->available]) - dt->amount);
	v[st->fast] = Int64GetDatum(DatumGetInt64(v[st->fast]) - dt->amount);
	Assert(DatumGetInt64(v[st->fast]) >= 0);
	direct_update(st->table, &dt->locked->tts_tid, v, n);
	return true;
}

/*
 * One scan of the primary key for the slices of prefix: slice home only,
 * or (home < 0) every slice but -home - 1 in slice order; takes from the
 * first it can.
 */
static bool
take_direct_scan(DirectTake *dt, const Datum *prefix, int home)
{
	const SliceTable *st = dt->st;
	ScanKeyData keys[3];
	IndexScanDesc scan;
	bool		taken = false;
	int			nkeys = st->nprefix + (home >= 0 ? 1 : 0);
	AttrNumber	slice_att = direct_attnum(st->table, st->slice);

	for (int k = 0; k < st->nprefix; k++)
		ScanKeyInit(&keys[k], k + 1, BTEqualStrategyNumber, F_INT8EQ, prefix[k]);
	ScanKeyInit(&keys[st->nprefix], st->nprefix + 1, BTEqualStrategyNumber, F_INT4EQ,
				Int32GetDatum(home));
	scan = index_beginscan_compat(direct_relation(st->table), direct_scan_index(st->table), dt->snap,
								  nkeys, 0);
	index_rescan(scan, keys, nkeys, NULL, 0);
	while (!taken && index_getnext_slot(scan, ForwardScanDirection, dt->found))
	{
		bool		isnull;

		if (home < 0 && DatumGetInt32(slot_getattr(dt->found, slice_att, &isnull)) == -home - 1)
			continue;
		taken = take_direct_row(dt);
	}
	index_endscan(scan);
	return taken;
}

/*
 * The direct fast path of a table of slices under the gate key of kind:
 * the gate in share mode without waiting, then the home slice, then the
 * others. False, with nothing taken and the gate given back, when none
 * could take amount.
 */
static bool
take_direct(const SliceTable *st, int64 key, uint16 kind, const Datum *prefix, int64 amount,
			TimestampTz now)
{
	Relation	rel = direct_relation(st->table);
	int			home = slices_home();
	DirectTake	dt = {st, amount, now};
	bool		taken;

	Assert(amount > 0);
	if (!slices_gate_try_share(key, kind))
		return false;
	/* what this transaction wrote so far, and every commit until now */
	CommandCounterIncrement();
	dt.snap = RegisterSnapshot(GetLatestSnapshot());
	dt.found = table_slot_create(rel, NULL);
	dt.locked = table_slot_create(rel, NULL);
	taken = take_direct_scan(&dt, prefix, home) || take_direct_scan(&dt, prefix, -home - 1);
	ExecDropSingleTupleTableSlot(dt.found);
	ExecDropSingleTupleTableSlot(dt.locked);
	UnregisterSnapshot(dt.snap);
	if (!taken)
		slices_gate_release_share(key, kind);
	return taken;
}

bool
available_take_direct(const Account *acct, int64 amount)
{
	Datum		prefix[1] = {Int64GetDatum(acct->account_id)};

	if (!take_direct(&account_slices, acct->account_id, GATE_ACCOUNT, prefix, amount, 0))
		return false;
	after_change(acct, -amount);
	return true;
}

bool
slices_take_limit_direct(int64 account_id, int64 limit_id, int64 amount, TimestampTz now)
{
	Datum		prefix[2] = {Int64GetDatum(account_id), Int64GetDatum(limit_id)};

	return take_direct(&limit_slices, limit_id, GATE_LIMIT, prefix, amount, now);
}

static void rebalance(int64 account_id, int64 delta);

static void
adjust(int64 account_id, int64 delta)
{
	static SPIPlanPtr pick_plan;
	static SPIPlanPtr debt_plan;
	static SPIPlanPtr add_plan;
	Datum		v[3] = {Int64GetDatum(account_id), Int64GetDatum(delta), Int32GetDatum(slices_home())};
	int			slice = 0;
	Datum		picked;
	bool		isnull;

	if (delta == 0)
		return;
	if (delta < 0)
	{
		/* a debit that may overdraw: a covering slice, or all of them */
		if (!take_fast(account_id, -delta))
			rebalance(account_id, delta);
		return;
	}

	/*
	 * A credit goes to any unlocked slice, unless slice 0 holds a debt: then
	 * to slice 0, so that the debt is never hidden behind a positive slice.
	 * Only an exact path creates a debt, and the share gate keeps it out
	 * until this transaction ends.
	 */
	slices_gate_lock(account_id, GATE_ACCOUNT, ShareLock);
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
available_adjust(const Account *acct, int64 delta)
{
	adjust(acct->account_id, delta);
	after_change(acct, delta);
}

static void
rebalance(int64 account_id, int64 delta)
{
	int			nslices;
	int64		total = lock_all(account_id, &nslices);

	/* a debit may be an overrun about to be posted as usage */
	lay_out(account_id, money_add(total, delta), nslices, 0, Min(delta, 0));
}

void
available_rebalance(const Account *acct, int64 delta)
{
	rebalance(acct->account_id, delta);
	after_change(acct, delta);
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
 * The spend and the threshold saturate at PG_INT64_MAX: a huge spend means
 * exact validation, never an error.
 */
#define SPEND_SAMPLE 1000

int64
available_threshold(int64 account_id)
{
	static SPIPlanPtr plan;
	TimestampTz now = GetCurrentTimestamp();
	int64		window = (int64) billing_low_balance_window * USECS_PER_SEC;
	Datum		v[4];
	int64		threshold;

	v[0] = Int64GetDatum(account_id);
	v[1] = TimestampTzGetDatum(now - window);
	v[2] = Int64GetDatum(window);
	v[3] = TimestampTzGetDatum(now);
	plan_exec(&plan,
			  "SELECT GREATEST(LEAST(CASE WHEN pg_catalog.count(*) < " CppAsString2(SPEND_SAMPLE)
			  "                           THEN COALESCE(-pg_catalog.sum(amount_micros), 0)"
			  "                           ELSE -pg_catalog.sum(amount_micros)::numeric * $3"
			  "                                / GREATEST(EXTRACT(EPOCH FROM $4 - pg_catalog.min(created_at))"
			  "                                           * 1000000, 1) END,"
			  "                      9223372036854775807), 0)::bigint"
			  "  FROM (SELECT amount_micros, created_at FROM billing.ledger"
			  "         WHERE account_id = $1 AND kind = 'usage' AND created_at >= $2"
			  "         ORDER BY created_at DESC LIMIT " CppAsString2(SPEND_SAMPLE) ") s",
			  4, (Oid[]) {INT8OID, TIMESTAMPTZOID, INT8OID, TIMESTAMPTZOID}, v, NULL, false, 0);
	if (pg_mul_s64_overflow(spi_int64(1), billing_low_balance_factor, &threshold))
		threshold = PG_INT64_MAX;
	return Max(threshold, money_setting(billing_low_balance_floor_micros));
}
