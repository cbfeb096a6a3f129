/*
 * Reversals (docs/topup.md, "Chargebacks"): money a payment provider took
 * back, taken back in the ledger. reverse_topup, reverse_funds and
 * void_grant post one 'reversal' entry (< 0) and a row of billing.reversals
 * naming the source. Never refused for lack of funds: the money is already
 * gone, so the available amount may go below zero. Cold paths: the account
 * row, then the source, then every slice are locked, the order of
 * complete_topup, so that reversals of one source run one after another.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"

#include "args.h"
#include "errors.h"
#include "events.h"
#include "jsonout.h"
#include "ledger/ledger.h"
#include "ledger/slices.h"
#include "money.h"
#include "spi_plan.h"
#include "topup/topup.h"

#define REVERSAL_MAX_REASON 1024

typedef enum Source
{
	SOURCE_TOPUP,
	SOURCE_FUNDS,
	SOURCE_GRANT
} Source;

static const char *const source_names[] = {"topup", "funds", "grant"};
static const char *const source_events[] = {"topup_reversed", "funds_reversed", "grant_voided"};
/* the column of billing.reversals that names the source */
#define SOURCE_COLUMN(s) \
	((s) == SOURCE_TOPUP ? "topup_id" : (s) == SOURCE_FUNDS ? "funds_entry_id" : "grant_id")

/* What a source credited and has had taken back, read under its locks. */
typedef struct SourceState
{
	int64		credited;		/* a grant: less its expiries */
	int64		reversed;		/* its reversals so far */
	int64		remainder;		/* a grant: its unused remainder now */
} SourceState;

static const char *
source_label(Source source)
{
	return source == SOURCE_TOPUP ? "top-up" : source == SOURCE_FUNDS ? "funds entry" : "grant";
}

/*
 * The account of the source, or PB404; refuses (22023) an entry that is not
 * a funds entry. An entry is found by its id alone, a scan of the ledger's
 * key: reversals are rare and cold.
 */
static int64
source_account(Source source, int64 id)
{
	static SPIPlanPtr plans[3];
	static const char *const sql[] = {
		"SELECT account_id FROM billing.topups WHERE topup_id = $1",
		"SELECT account_id, kind FROM billing.ledger WHERE entry_id = $1",
		"SELECT account_id FROM billing.grants WHERE grant_id = $1",
	};

	plan_run(&plans[source], sql[source], false, 0, PLAN_ARGS(ARG_INT8(id)));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_BILLING_NOT_FOUND),
				 errmsg("%s " INT64_FORMAT " does not exist", source_label(source), id)));
	if (source == SOURCE_FUNDS && strcmp(spi_text(2), "funds") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ledger entry " INT64_FORMAT " is not a funds entry", id),
				 errdetail("It is a %s entry; reverse_funds takes back what add_funds credited.",
						   spi_text(2))));
	return spi_int64(1);
}

/*
 * Locks the source (after the account row) and reads what it credited and
 * has had taken back; refuses (PB409) a top-up that has not succeeded.
 */
static void
source_lock(Source source, int64 account_id, int64 id, SourceState *st)
{
	static SPIPlanPtr lock_plans[3];
	static SPIPlanPtr sum_plan;
	static const char *const sql[] = {
		"SELECT amount_micros, status, 0::bigint FROM billing.topups"
		" WHERE account_id = $1 AND topup_id = $2 FOR UPDATE",
		"SELECT amount_micros, 'succeeded', 0::bigint FROM billing.ledger"
		" WHERE account_id = $1 AND entry_id = $2 FOR UPDATE",
		"SELECT g.amount_micros + COALESCE((SELECT pg_catalog.sum(l.amount_micros) FROM billing.ledger l"
		"        WHERE l.account_id = $1 AND l.grant_id = $2 AND l.kind = 'expiry'), 0)::bigint,"
		"       'succeeded',"
		"       COALESCE((SELECT r.remaining_micros FROM billing._grant_remainders($1) r"
		"                  WHERE r.grant_id = $2), 0)"
		"  FROM billing.grants g WHERE g.account_id = $1 AND g.grant_id = $2 FOR UPDATE OF g",
	};
	char	   *status;

	plan_run(&lock_plans[source], sql[source], false, 0, PLAN_ARGS(ARG_INT8(account_id), ARG_INT8(id)));
	st->credited = spi_int64(1);
	status = spi_text(2);
	st->remainder = spi_int64(3);
	if (strcmp(status, "succeeded") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_BILLING_CONFLICT),
				 errmsg("top-up " INT64_FORMAT " is %s", id, status),
				 errdetail("Only the money of a succeeded top-up can be taken back.")));
	plan_run(&sum_plan,
			 "SELECT COALESCE(pg_catalog.sum(amount_micros), 0)::bigint FROM billing.reversals"
			 " WHERE account_id = $1 AND source = $2"
			 "   AND COALESCE(topup_id, funds_entry_id, grant_id) = $3",
			 false, 0, PLAN_ARGS(ARG_INT8(account_id), ARG_TEXT(source_names[source]), ARG_INT8(id)));
	st->reversed = spi_int64(1);
}

/*
 * The amount to take back: all that is left (a void: the unused remainder)
 * when all, else amount. PB409 when nothing is left whatever the amount;
 * 22023 for an amount not above 0 or above what is left.
 */
static int64
reversal_amount(Source source, int64 id, const Account *acct, const SourceState *st,
				bool all, int64 amount)
{
	const char *cur = acct->currency;
	int64		left = st->credited - st->reversed;

	if (left <= 0 || (all && source == SOURCE_GRANT && st->remainder <= 0))
		ereport(ERROR,
				(errcode(ERRCODE_BILLING_CONFLICT),
				 errmsg("%s " INT64_FORMAT " has nothing left to take back", source_label(source), id),
				 left <= 0
				 ? errdetail("It credited %s %s and %s %s of it was taken back already.",
							 money_format(st->credited), cur, money_format(st->reversed), cur)
				 : errdetail("Its unused remainder is 0; give an amount to take back spent money.")));
	if (all)
		return source == SOURCE_GRANT ? Min(st->remainder, left) : left;
	money_require_positive(amount, "amount_micros");
	if (amount > left)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("reversal of %s %s exceeds what is left of %s " INT64_FORMAT,
						money_format(amount), cur, source_label(source), id),
				 errdetail("It credited %s %s, %s %s was taken back: %s %s is left.",
						   money_format(st->credited), cur, money_format(st->reversed), cur,
						   money_format(left), cur)));
	return amount;
}

/*
 * The reversal an idempotency key already names, or 0; PB409 when it was
 * used for another source, amount (as given) or reason.
 */
static int64
reversal_replay(int64 account_id, const char *key, Source source, int64 id, bool all,
				int64 amount, const char *reason)
{
	static SPIPlanPtr plan;

	plan_run(&plan,
			 "SELECT reversal_id, source = $3 AND COALESCE(topup_id, funds_entry_id, grant_id) = $4"
			 "       AND requested_micros IS NOT DISTINCT FROM $5 AND reason IS NOT DISTINCT FROM $6"
			 "  FROM billing.reversals WHERE account_id = $1 AND idempotency_key = $2",
			 false, 0,
			 PLAN_ARGS(ARG_INT8(account_id), ARG_TEXT(key), ARG_TEXT(source_names[source]), ARG_INT8(id),
					   all ? ARG_NULL(INT8OID) : ARG_INT8(amount), ARG_TEXT(reason)));
	return args_key_replay(key, "Reversal", "made");
}

/* The reversal object of reversal_id, as JSON text in the context "upper". */
static char *
reversal_json(const Account *acct, Source source, int64 id, int64 reversal_id,
			  const SourceState *st, MemoryContext upper)
{
	static SPIPlanPtr plan;
	int64		entry_id,
				amount,
				reversed,
				available;
	char	   *reason;
	MemoryContext old;
	StringInfoData buf;

	plan_run(&plan,
			 "SELECT v.entry_id, v.amount_micros, v.reason,"
			 "       (SELECT pg_catalog.sum(x.amount_micros)::bigint FROM billing.reversals x"
			 "         WHERE x.account_id = v.account_id AND x.source = v.source"
			 "           AND COALESCE(x.topup_id, x.funds_entry_id, x.grant_id)"
			 "               = COALESCE(v.topup_id, v.funds_entry_id, v.grant_id))"
			 "  FROM billing.reversals v WHERE v.account_id = $1 AND v.reversal_id = $2",
			 false, 0, PLAN_ARGS(ARG_INT8(acct->account_id), ARG_INT8(reversal_id)));
	entry_id = spi_int64(1);
	amount = spi_int64(2);
	reason = spi_text(3);
	reversed = spi_int64(4);
	available = available_total(acct->account_id);

	old = MemoryContextSwitchTo(upper);
	initStringInfo(&buf);
	json_begin(&buf);
	json_add_str(&buf, "object", "reversal");
	json_add_int(&buf, "reversal_id", reversal_id);
	json_add_int(&buf, "account_id", acct->account_id);
	json_add_str(&buf, "source", source_names[source]);
	json_add_int(&buf, "source_id", id);
	json_add_int(&buf, "entry_id", entry_id);
	json_add_int(&buf, "amount_micros", amount);
	json_add_money(&buf, "amount", amount);
	json_add_str(&buf, "currency", acct->currency);
	json_add_int(&buf, "reversed_micros", reversed);
	json_add_int(&buf, "remaining_micros", st->credited - reversed);
	json_add_str(&buf, "reason", reason);
	json_add_int(&buf, "available_micros", available);
	json_end(&buf);
	MemoryContextSwitchTo(old);
	return buf.data;
}

/*
 * A reversal of the source id: arguments (amount, reason, key) at argno
 * amount_arg and after; disable (reverse_topup only) turns auto top-up off.
 */
static Datum
reverse(FunctionCallInfo fcinfo, Source source, int amount_arg, bool reason_needed, bool disable)
{
	static SPIPlanPtr lock_plan,
				insert_plans[3];
	MemoryContext upper = CurrentMemoryContext;
	int64		id = PG_GETARG_INT64(0);
	bool		all = PG_ARGISNULL(amount_arg);
	int64		amount = all ? 0 : PG_GETARG_INT64(amount_arg);
	char	   *reason = args_text_bounded(fcinfo, amount_arg + 1, "reason", REVERSAL_MAX_REASON);
	char	   *key = args_text(fcinfo, PG_NARGS() - 1);
	int64		account_id,
				reversal_id = 0;
	Account		acct;
	SourceState st;
	char	   *result;
	bool		made = false;

	if (reason_needed && reason == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a reversal needs a reason"),
				 errhint("The default is \"chargeback\".")));
	args_check_idempotency_key(key);

	SPI_connect();
	account_id = source_account(source, id);
	/* turning auto top-up off: its lock first, as configure_auto_topup takes it */
	if (disable)
		topup_lock(account_id);
	/* the order of complete_topup: account row, source, slices */
	plan_run(&lock_plan, "SELECT FROM billing.accounts WHERE account_id = $1 FOR NO KEY UPDATE",
			 false, 0, PLAN_ARGS(ARG_INT8(account_id)));
	/* a disabled account is reversed too */
	account_load(account_id, &acct, false);
	source_lock(source, account_id, id, &st);
	if (key)
		reversal_id = reversal_replay(account_id, key, source, id, all, amount, reason);
	if (reversal_id == 0)
	{
		int64		entry_id;

		amount = reversal_amount(source, id, &acct, &st, all, amount);
		if (disable)
			topup_disable_for_reversal(account_id, id);
		/*
		 * On an account that is postpaid now, a postpaid debit correction:
		 * the next invoice bills it (invoice.sql, reversals.invoice_id). A
		 * void names its grant: its unused remainder goes first
		 * (_grant_remainders).
		 */
		entry_id = ledger_post_grant(account_id, "reversal", -amount, acct.postpaid, 0, 0, 0,
									 source == SOURCE_GRANT ? id : 0, NULL, reason);
		available_rebalance(&acct, -amount);
		plan_run(&insert_plans[source],
				 psprintf("INSERT INTO billing.reversals (account_id, entry_id, source, %s,"
						  "       amount_micros, requested_micros, reason, idempotency_key)"
						  " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING reversal_id",
						  SOURCE_COLUMN(source)),
				 false, 0,
				 PLAN_ARGS(ARG_INT8(account_id), ARG_INT8(entry_id), ARG_TEXT(source_names[source]),
						   ARG_INT8(id), ARG_INT8(amount), all ? ARG_NULL(INT8OID) : ARG_INT8(amount),
						   ARG_TEXT(reason), ARG_TEXT(key)));
		reversal_id = spi_int64(1);
		made = true;
	}
	result = reversal_json(&acct, source, id, reversal_id, &st, upper);
	/* the event carries the reversal object; a replay writes none */
	if (made)
		event_emit(account_id, source_events[source], result);
	SPI_finish();
	return jsonb_from_text(result);
}

/*
 * billing.reverse_topup(topup_id, amount_micros DEFAULT NULL, reason DEFAULT
 * 'chargeback', disable_auto_topup DEFAULT true, idempotency_key DEFAULT NULL)
 */
PG_FUNCTION_INFO_V1(billing_reverse_topup);
Datum
billing_reverse_topup(PG_FUNCTION_ARGS)
{
	args_require(fcinfo, 1);
	args_require_arg(fcinfo, 3);
	PG_RETURN_DATUM(reverse(fcinfo, SOURCE_TOPUP, 1, true, PG_GETARG_BOOL(3)));
}

/* billing.reverse_funds(entry_id, amount_micros, reason, idempotency_key) */
PG_FUNCTION_INFO_V1(billing_reverse_funds);
Datum
billing_reverse_funds(PG_FUNCTION_ARGS)
{
	args_require(fcinfo, 1);
	PG_RETURN_DATUM(reverse(fcinfo, SOURCE_FUNDS, 1, true, false));
}

/* billing.void_grant(grant_id, amount_micros, reason DEFAULT NULL, idempotency_key) */
PG_FUNCTION_INFO_V1(billing_void_grant);
Datum
billing_void_grant(PG_FUNCTION_ARGS)
{
	args_require(fcinfo, 1);
	PG_RETURN_DATUM(reverse(fcinfo, SOURCE_GRANT, 1, false, false));
}
