/*
 * Spend limits (docs/limits.md): what is left of a limit in its period is a
 * second amount that admission takes from, kept in slices with the
 * discipline of the account's (slices.c) and a gate of its own (GATE_LIMIT,
 * keyed by limit_id).
 *
 * Invariant: sum(available_micros) = limit - usage charged in the slices'
 * period - holds of the unfinished requests the limit applies to.
 *
 * Fast path: take from an unlocked slice whose fast budget covers the
 * amount and whose period has not ended. Exact path (no budget covers it,
 * or the period ended): lock every slice under the exclusive gate, refill
 * when the period ended (limit - holds: nothing is charged in a period
 * before its first exact pass, since every take and every settlement of an
 * ended period comes here), decide on the exact total, then lay the rest
 * out with a budget of half of it. A fast take therefore never leaves a
 * limit with nothing: only the exact path can, and it writes the
 * spend_limit_reached event (once per period, spend_limits.reached_period_start).
 *
 * Order of locks: the account's gate and slices first (the insufficient
 * balance refusal comes first), then the limits by limit_id.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "args.h"
#include "cache.h"
#include "direct.h"
#include "errors.h"
#include "events.h"
#include "jsonout.h"
#include "ledger/ledger.h"
#include "ledger/slices.h"
#include "money.h"
#include "spi_plan.h"

typedef struct SpendLimit
{
	int64		limit_id;
	char	   *scope;			/* NULL: the whole account */
	char	   *period;
	int64		limit_micros;
} SpendLimit;

/* a limit's state under the exact path */
typedef struct SpendState
{
	int64		total;
	int			nslices;
	int64		limit_micros;
	TimestampTz start;
	TimestampTz end;
	bool		reached;		/* its event of this period was written */
} SpendState;

/* The limits that apply to a request of scope, in limit_id order. */
static int
limits_read(int64 account_id, const char *scope, SpendLimit **out)
{
	static SPIPlanPtr plan;
	SpendLimit	   *l;

	plan_run(&plan,
			 "SELECT limit_id, scope, period, limit_micros FROM billing.spend_limits"
			 " WHERE account_id = $1 AND (scope IS NULL OR scope = $2) ORDER BY limit_id",
			 false, 0, PLAN_ARGS(ARG_INT8(account_id), ARG_TEXT(scope)));
	l = palloc(sizeof(SpendLimit) * Max(SPI_processed, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		bool		isnull;

		l[i].limit_id = DatumGetInt64(SPI_getbinval(t, d, 1, &isnull));
		l[i].scope = SPI_getvalue(t, d, 2);
		l[i].period = SPI_getvalue(t, d, 3);
		l[i].limit_micros = DatumGetInt64(SPI_getbinval(t, d, 4, &isnull));
	}
	*out = l;
	return (int) SPI_processed;
}

/*
 * limits_read() cached per backend for (account, scope), while the direct
 * path holds (direct.h: no Citus, so that every write to spend_limits is on
 * this node). The trigger spend_limits_changed drops it at every INSERT,
 * DELETE and change of limit_micros, and the account's gate, taken before,
 * took in the invalidations of every such change committed before it.
 */
#define LIMITS_CACHE_KEY 300	/* digits, ':', a scope of 256 one-byte characters */
#define LIMITS_CACHE_MAX 10000

typedef struct LimitsEntry
{
	char		key[LIMITS_CACHE_KEY];
	int			n;
	SpendLimit *limits;
} LimitsEntry;

static HTAB *limits_cache = NULL;
static MemoryContext limits_cxt = NULL;
static Oid	limits_cache_relid = InvalidOid;

static void
limits_cache_reset(Datum arg, Oid relid)
{
	if (limits_cache != NULL && (!OidIsValid(relid) || relid == limits_cache_relid))
	{
		limits_cache = NULL;
		MemoryContextReset(limits_cxt);
	}
}

/* A copy of n limits in the current context. */
static SpendLimit *
limits_copy(const SpendLimit *from, int n)
{
	SpendLimit *l = palloc(sizeof(SpendLimit) * Max(n, 1));

	for (int i = 0; i < n; i++)
	{
		l[i] = from[i];
		l[i].scope = from[i].scope ? pstrdup(from[i].scope) : NULL;
		l[i].period = pstrdup(from[i].period);
	}
	return l;
}

/* limits_read() through the cache; the answer is a copy, which an invalidation leaves alone. */
static int
limits_applying(int64 account_id, const char *scope, SpendLimit **out)
{
	char		key[LIMITS_CACHE_KEY];
	LimitsEntry *e;
	bool		found;
	MemoryContext old;
	int			n;

	/* a scope too long for a key (of multibyte characters) goes uncached */
	if (!direct_is_open() ||
		snprintf(key, sizeof(key), INT64_FORMAT "%s%s", account_id,
				 scope ? ":" : "", scope ? scope : "") >= (int) sizeof(key))
		return limits_read(account_id, scope, out);
	if (limits_cache == NULL || hash_get_num_entries(limits_cache) >= LIMITS_CACHE_MAX)
	{
		static bool registered = false;
		HASHCTL		ctl;

		if (!registered)
		{
			CacheRegisterRelcacheCallback(limits_cache_reset, (Datum) 0);
			limits_cxt = AllocSetContextCreate(CacheMemoryContext, "billing spend limits",
											   ALLOCSET_SMALL_SIZES);
			registered = true;
		}
		MemoryContextReset(limits_cxt);
		limits_cache_relid = cache_relid("spend_limits");
		ctl.keysize = LIMITS_CACHE_KEY;
		ctl.entrysize = sizeof(LimitsEntry);
		ctl.hcxt = limits_cxt;
		limits_cache = hash_create("billing spend limits", 64, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	e = hash_search(limits_cache, key, HASH_FIND, NULL);
	if (e != NULL)
	{
		*out = limits_copy(e->limits, e->n);
		return e->n;
	}
	n = limits_read(account_id, scope, out);
	/* the query may have taken in an invalidation that dropped the cache */
	if (limits_cache == NULL)
		return n;
	e = hash_search(limits_cache, key, HASH_ENTER, &found);
	old = MemoryContextSwitchTo(limits_cxt);
	e->n = n;
	e->limits = limits_copy(*out, n);
	MemoryContextSwitchTo(old);
	return n;
}

/* A fast move of a limit's available amount by delta (< 0 a take). */
typedef struct LimitMove
{
	int64		account_id;
	int64		limit_id;
	int64		delta;
	TimestampTz now;
} LimitMove;

#define LIMIT_SLICE_WHERE \
	" WHERE account_id = $1 AND limit_id = $2 AND period_end > $5"
#define LIMIT_TAKE_SET \
	"UPDATE billing.limit_slices SET available_micros = available_micros + $3," \
	"       fast_micros = fast_micros + $3"
#define LIMIT_CREDIT_SET \
	"UPDATE billing.limit_slices SET available_micros = available_micros + $3"
/* the slice: home when unlocked (and covering, for a take), else any such */
#define LIMIT_PICK(cover) \
	" AND slice = COALESCE(" \
	"   (SELECT slice FROM billing.limit_slices" LIMIT_SLICE_WHERE " AND slice = $4" cover \
	"     FOR UPDATE SKIP LOCKED)," \
	"   (SELECT slice FROM billing.limit_slices" LIMIT_SLICE_WHERE cover \
	"     ORDER BY slice LIMIT 1 FOR UPDATE SKIP LOCKED))"
#define LIMIT_COVERS " AND fast_micros >= -$3"

static bool
limit_attempt(void *arg, bool wait_home)
{
	static SPIPlanPtr plans[4];
	static const char *const sql[4] = {
		LIMIT_TAKE_SET LIMIT_SLICE_WHERE LIMIT_PICK(LIMIT_COVERS),
		LIMIT_TAKE_SET LIMIT_SLICE_WHERE " AND slice = $4" LIMIT_COVERS,
		LIMIT_CREDIT_SET LIMIT_SLICE_WHERE LIMIT_PICK(""),
		LIMIT_CREDIT_SET LIMIT_SLICE_WHERE " AND slice = $4"
	};
	LimitMove  *m = (LimitMove *) arg;
	int			which = (m->delta > 0 ? 2 : 0) + (wait_home ? 1 : 0);

	plan_run(&plans[which], sql[which], false, 0,
			 PLAN_ARGS(ARG_INT8(m->account_id), ARG_INT8(m->limit_id), ARG_INT8(m->delta),
					   ARG_INT4(slices_home()), ARG_TSTZ(m->now)));
	return SPI_processed == 1;
}

/*
 * The exact path's lock: the limit's gate in exclusive mode and every slice;
 * refills an ended period. except_request is a request whose hold is not
 * the limit's yet (the one being admitted), 0 for none. False when the
 * limit was removed meanwhile.
 */
static bool
limit_lock(int64 account_id, const SpendLimit *l, int64 except_request, TimestampTz now,
		   SpendState *st)
{
	static SPIPlanPtr lock_plan;
	static SPIPlanPtr refill_plan;
	bool		isnull;
	Datum		reached;

	slices_gate_lock(l->limit_id, GATE_LIMIT, ExclusiveLock);
	plan_run(&lock_plan,
			 "SELECT s.available_micros, s.period_start, s.period_end, l.limit_micros,"
			 "       l.reached_period_start IS NOT DISTINCT FROM s.period_start"
			 "  FROM billing.limit_slices s JOIN billing.spend_limits l USING (account_id, limit_id)"
			 " WHERE s.account_id = $1 AND s.limit_id = $2 ORDER BY s.slice FOR UPDATE OF s",
			 false, 0, PLAN_ARGS(ARG_INT8(account_id), ARG_INT8(l->limit_id)));
	if (SPI_processed == 0)
		return false;
	st->total = 0;
	for (uint64 i = 0; i < SPI_processed; i++)
		st->total = money_add(st->total,
							  DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
														  SPI_tuptable->tupdesc, 1, &isnull)));
	st->nslices = (int) SPI_processed;
	st->start = DatumGetTimestampTz(spi_col(2, NULL));
	st->end = DatumGetTimestampTz(spi_col(3, NULL));
	st->limit_micros = spi_int64(4);
	reached = spi_col(5, NULL);
	st->reached = DatumGetBool(reached);
	if (st->end > now)
		return true;

	/* the period ended: a new one starts with the holds still in flight */
	plan_run(&refill_plan,
			 "SELECT p.starts_at, p.ends_at, billing._holds($3, $4, $5)"
			 "  FROM billing._limit_period($1, $2) p",
			 false, 0,
			 PLAN_ARGS(ARG_TEXT(l->period), ARG_TSTZ(now), ARG_INT8(account_id), ARG_TEXT(l->scope),
					   ARG_ID(except_request)));
	st->start = DatumGetTimestampTz(spi_col(1, NULL));
	st->end = DatumGetTimestampTz(spi_col(2, NULL));
	st->total = money_add(st->limit_micros, -spi_int64(3));
	st->reached = false;
	return true;
}

/*
 * With every slice locked: lays rest out again in the state's period
 * (slices_layout). Half of what is left is fast budget: each exact pass
 * halves the room, so a limit far from reached rarely sees one.
 */
static void
limit_lay_out(int64 account_id, const SpendLimit *l, const SpendState *st, int64 rest, int64 request)
{
	static SPIPlanPtr plan;
	SliceLayout layout = slices_layout(rest, rest > 0 ? rest / 2 : 0, st->nslices, request);

	plan_run(&plan,
			 "UPDATE billing.limit_slices SET" SLICES_LAYOUT_SET ","
			 "       period_start = $6, period_end = $7"
			 " WHERE account_id = $1 AND limit_id = $5",
			 false, 0,
			 PLAN_ARGS(ARG_INT8(account_id), ARG_INT8(layout.home), ARG_INT8(layout.each),
					   ARG_INT8(layout.budgeted), ARG_INT8(l->limit_id),
					   ARG_TSTZ(st->start), ARG_TSTZ(st->end)));
}

/* The first move of a period that leaves nothing of the limit writes its event. */
static void
limit_reached(int64 account_id, const SpendLimit *l, const SpendState *st, int64 rest)
{
	static SPIPlanPtr plan;
	StringInfoData buf;

	if (rest > 0 || st->reached)
		return;
	plan_run(&plan,
			 "UPDATE billing.spend_limits SET reached_period_start = $3"
			 " WHERE account_id = $1 AND limit_id = $2",
			 false, 0, PLAN_ARGS(ARG_INT8(account_id), ARG_INT8(l->limit_id), ARG_TSTZ(st->start)));
	initStringInfo(&buf);
	json_begin(&buf);
	json_add_str(&buf, "scope", l->scope);
	json_add_str(&buf, "period", l->period);
	json_add_int(&buf, "limit_micros", st->limit_micros);
	json_add_time(&buf, "period_start", st->start, false);
	json_add_time(&buf, "resets_at", st->end, false);
	json_end(&buf);
	event_emit(account_id, "spend_limit_reached", buf.data);
}

/* What is left of a limit now and when its period ends, read without locks. */
static int64
limit_left(int64 account_id, const SpendLimit *l, int64 except_request, TimestampTz *end)
{
	static SPIPlanPtr plan;

	plan_run(&plan,
			 "SELECT CASE WHEN s.period_end > pg_catalog.clock_timestamp() THEN s.avail"
			 "            ELSE x.limit_micros - billing._holds($1, $3, $4) END,"
			 "       CASE WHEN s.period_end > pg_catalog.clock_timestamp() THEN s.period_end"
			 "            ELSE (SELECT ends_at FROM billing._limit_period(x.period,"
			 "                                  pg_catalog.clock_timestamp())) END"
			 "  FROM billing.spend_limits x,"
			 "       LATERAL (SELECT pg_catalog.sum(available_micros)::bigint AS avail,"
			 "                       pg_catalog.max(period_end) AS period_end"
			 "                  FROM billing.limit_slices"
			 "                 WHERE account_id = $1 AND limit_id = $2) s"
			 " WHERE x.account_id = $1 AND x.limit_id = $2",
			 false, 0,
			 PLAN_ARGS(ARG_INT8(account_id), ARG_INT8(l->limit_id), ARG_TEXT(l->scope),
					   ARG_ID(except_request)));
	*end = DatumGetTimestampTz(spi_col(2, NULL));
	return spi_int64(1);
}

static const char *
period_adjective(const char *period)
{
	return strcmp(period, "day") == 0 ? "daily" : strcmp(period, "week") == 0 ? "weekly" : "monthly";
}

/*
 * PB402 for limit refused (its exact total left, its period ending at end),
 * naming among it and the limits after it the one with the least left (the
 * limits before it covered the request).
 */
static void
raise_limit_reached(const Account *acct, const SpendLimit *limits, int n, int refused, int64 left,
					TimestampTz end, int64 needed, int64 except_request)
{
	static SPIPlanPtr time_plan;
	const SpendLimit *named = &limits[refused];
	const char *cur = acct->currency;
	char	   *resets;
	char	   *whose;

	for (int j = refused + 1; j < n; j++)
	{
		TimestampTz e;
		int64		lj = limit_left(acct->account_id, &limits[j], except_request, &e);

		if (lj < left)
		{
			named = &limits[j];
			left = lj;
			end = e;
		}
	}
	plan_run(&time_plan, "SELECT billing._local_time($1)", false, 0, PLAN_ARGS(ARG_TSTZ(end)));
	resets = spi_text(1);
	whose = named->scope ? psprintf("scope \"%s\"", named->scope) : "the account";
	ereport(ERROR,
			(errcode(ERRCODE_BILLING_PAYMENT_REQUIRED),
			 errmsg("spend limit reached"),
			 errdetail("Request needs %s %s; %s %s is left of the %s limit of %s %s for %s.",
					   money_format(needed), cur, money_format(Max(left, 0)), cur,
					   period_adjective(named->period), money_format(named->limit_micros), cur,
					   whose),
			 errhint("Raise the limit, or retry after %s.", resets)));
}

/*
 * The exact path of limits[i]: moves its total by delta, refusing (check)
 * a take it does not cover.
 */
static void
limit_exact(const Account *acct, const SpendLimit *limits, int n, int i, int64 except_request,
			int64 delta, bool check, TimestampTz now)
{
	SpendState	st;
	int64		rest;

	if (!limit_lock(acct->account_id, &limits[i], except_request, now, &st))
		return;
	if (check && st.total < -delta)
		raise_limit_reached(acct, limits, n, i, st.total, st.end, -delta, except_request);
	rest = money_add(st.total, delta);
	limit_lay_out(acct->account_id, &limits[i], &st, rest, check ? -delta : 0);
	if (delta < 0)
		limit_reached(acct->account_id, &limits[i], &st, rest);
}

/* Moves every limit that applies by delta; check: refuse what one does not cover. */
static void
limits_move(const Account *acct, const char *scope, int64 except_request, int64 delta, bool check)
{
	SpendLimit	   *limits;
	int			n;
	TimestampTz now;

	/* every caller holds the account's gate once it moved money (delta != 0) */
	if (delta == 0 || !account_has_limits(acct->account_id))
		return;
	n = limits_applying(acct->account_id, scope, &limits);
	now = GetCurrentTimestamp();
	for (int i = 0; i < n; i++)
	{
		LimitMove	m = {acct->account_id, limits[i].limit_id, delta, now};

		if (delta < 0 && direct_is_open() &&
			slices_take_limit_direct(acct->account_id, limits[i].limit_id, -delta, now))
			continue;
		if (!slices_try_fast(limits[i].limit_id, GATE_LIMIT, limit_attempt, &m))
			limit_exact(acct, limits, n, i, except_request, delta, check, now);
	}
}

void
limits_admit(const Account *acct, const char *scope, int64 request_id, int64 amount)
{
	Assert(amount >= 0);
	limits_move(acct, scope, request_id, -amount, true);
}

void
limits_settle(const Account *acct, const char *scope, int64 request_id, int64 delta)
{
	/* the request's own hold is still the limit's: nothing to leave out */
	limits_move(acct, scope, 0, delta, false);
}

/*
 * billing.set_spend_limit: sets, changes or (NULL) removes one limit.
 * Under the account's exclusive gate, so that admissions in flight have
 * committed and their holds are counted, and later ones see the limit
 * (account_has_limits).
 */
PG_FUNCTION_INFO_V1(billing_set_spend_limit);
Datum
billing_set_spend_limit(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr find_plan;
	static SPIPlanPtr delete_plan;
	static SPIPlanPtr update_plan;
	static SPIPlanPtr insert_plan;
	int64		account_id;
	bool		removing = PG_ARGISNULL(1);
	int64		limit_micros = removing ? 0 : PG_GETARG_INT64(1);
	SpendLimit		l;
	Account		acct;
	SpendState	st;
	TimestampTz now = GetCurrentTimestamp();

	args_require(fcinfo, 1);
	account_id = PG_GETARG_INT64(0);
	if (limit_micros < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("limit_micros must not be negative"),
				 errdetail("Got " INT64_FORMAT " micros.", limit_micros),
				 errhint("Use NULL to remove a limit, 0 to refuse everything that costs money.")));
	l.period = args_text(fcinfo, 2);
	if (l.period == NULL || (strcmp(l.period, "day") != 0 && strcmp(l.period, "week") != 0 &&
							 strcmp(l.period, "month") != 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid spend limit period \"%s\"", l.period ? l.period : "NULL"),
				 errhint("Use \"day\", \"week\" or \"month\".")));
	/* NULL: a limit of the whole account */
	l.scope = args_text_bounded(fcinfo, 3, "scope", ARGS_KEY_MAX);
	l.limit_micros = limit_micros;

	SPI_connect();
	account_load(account_id, &acct, true);
	slices_gate_lock(account_id, GATE_ACCOUNT, ExclusiveLock);
	plan_run(&find_plan,
			 "SELECT limit_id FROM billing.spend_limits"
			 " WHERE account_id = $1 AND scope IS NOT DISTINCT FROM $2 AND period = $3",
			 false, 0, PLAN_ARGS(ARG_INT8(account_id), ARG_TEXT(l.scope), ARG_TEXT(l.period)));
	if (SPI_processed == 1)
	{
		l.limit_id = spi_int64(1);
		if (removing)
		{
			slices_gate_lock(l.limit_id, GATE_LIMIT, ExclusiveLock);
			plan_run(&delete_plan,
					 "WITH s AS (DELETE FROM billing.limit_slices WHERE account_id = $1 AND limit_id = $2)"
					 " DELETE FROM billing.spend_limits WHERE account_id = $1 AND limit_id = $2",
					 false, 0, PLAN_ARGS(ARG_INT8(account_id), ARG_INT8(l.limit_id)));
		}
		else if (limit_lock(account_id, &l, 0, now, &st))
		{
			int64		rest = money_add(st.total, money_add(limit_micros, -st.limit_micros));

			/* a limit raised above what was spent may be reached again */
			plan_run(&update_plan,
					 "UPDATE billing.spend_limits SET limit_micros = $3,"
					 "       reached_period_start = CASE WHEN $4 THEN NULL ELSE reached_period_start END"
					 " WHERE account_id = $1 AND limit_id = $2",
					 false, 0,
					 PLAN_ARGS(ARG_INT8(account_id), ARG_INT8(l.limit_id), ARG_INT8(limit_micros),
							   ARG_BOOL(rest > 0)));
			limit_lay_out(account_id, &l, &st, rest, 0);
		}
	}
	else if (!removing)
	{
		/* a new limit starts from what its period has charged and holds */
		plan_run(&insert_plan,
				 "WITH p AS (SELECT * FROM billing._limit_period($3, pg_catalog.clock_timestamp())),"
				 " l AS (INSERT INTO billing.spend_limits (account_id, scope, period, limit_micros)"
				 "       VALUES ($1, $2, $3, $4) RETURNING limit_id),"
				 " s AS (INSERT INTO billing.limit_slices (account_id, limit_id, slice,"
				 "              available_micros, period_start, period_end)"
				 "       SELECT $1, l.limit_id, g, 0, p.starts_at, p.ends_at"
				 "         FROM l, p, pg_catalog.generate_series(0, $5 - 1) g)"
				 " SELECT l.limit_id, p.starts_at, p.ends_at,"
				 "        $4 - billing._limit_spent($1, $2, p.starts_at) - billing._holds($1, $2, NULL)"
				 "   FROM l, p",
				 false, 0,
				 PLAN_ARGS(ARG_INT8(account_id), ARG_TEXT(l.scope), ARG_TEXT(l.period),
						   ARG_INT8(limit_micros), ARG_INT4(billing_balance_slices)));
		l.limit_id = spi_int64(1);
		st.start = DatumGetTimestampTz(spi_col(2, NULL));
		st.end = DatumGetTimestampTz(spi_col(3, NULL));
		st.nslices = billing_balance_slices;
		limit_lay_out(account_id, &l, &st, spi_int64(4), 0);
	}
	SPI_finish();
	PG_RETURN_VOID();
}
