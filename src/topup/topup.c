/*
 * Auto top-up (docs/topup.md).
 *
 * A charge that leaves a prepaid account's available amount below its
 * auto top-up threshold requests one top-up: a pending row in
 * billing.topups, announced with NOTIFY billing_topup (sent at commit) and
 * an auto_topup_requested event in the event log (docs/events.md).
 * The unique partial index topups_one_pending keeps it to one pending
 * top-up per account; a transaction-level advisory lock, only tried and
 * never waited for, picks one requester among concurrent charges so that
 * no charge blocks on another's top-up. A payment worker settles the
 * top-up with billing.complete_topup().
 *
 * Every query runs read-write (read_only = false): it then sees what this
 * transaction wrote earlier in the same function call, the charge's debit
 * above all, and in READ COMMITTED a snapshot taken after the locks.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "args.h"
#include "errors.h"
#include "events.h"
#include "jsonout.h"
#include "ledger/slices.h"
#include "money.h"
#include "settings.h"
#include "spi_plan.h"
#include "topup/topup.h"

int			billing_auto_topup_max_failures = 3;
int			billing_auto_topup_max_per_day = 10;

void
topup_init(void)
{
	settings_define_int("billing.auto_topup_max_failures",
						"Consecutive failed auto top-ups after which auto top-up turns off.",
						NULL, &billing_auto_topup_max_failures, 3, 1, 100, 0);
	settings_define_int("billing.auto_topup_max_per_day",
						"Most auto top-ups requested for one account in 24 hours.",
						NULL, &billing_auto_topup_max_per_day, 10, 1, 1000, 0);
}

#define TOPUP_CHANNEL "billing_topup"
/* failure_reason of a pending top-up cancelled by turning auto top-up off */
#define TOPUP_CANCELLED_REASON "auto top-up turned off"
#define TOPUP_MAX_REASON 1024

static void
require_non_negative(int64 amount, const char *what)
{
	if (amount < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be negative", what),
				 errdetail("Got " INT64_FORMAT " micros.", amount)));
}


/*
 * NOTIFY billing_topup (docs/topup.md): the event and the account, and for a
 * requested top-up (topup_id not 0) the top-up and its amount.
 */
static void
topup_notify(const char *event, int64 account_id, int64 topup_id, int64 amount)
{
	StringInfoData buf;

	initStringInfo(&buf);
	json_begin(&buf);
	json_add_str(&buf, "event", event);
	if (topup_id != 0)
		json_add_int(&buf, "topup_id", topup_id);
	json_add_int(&buf, "account_id", account_id);
	if (topup_id != 0)
		json_add_int(&buf, "amount_micros", amount);
	json_end(&buf);
	Async_Notify(TOPUP_CHANNEL, buf.data);
}

/*
 * A top-up's event in the log (docs/events.md): the top-up, one number, and
 * when text_key is not NULL one text (JSON null when text is NULL).
 */
static void
topup_event(int64 account_id, const char *event, int64 topup_id, const char *int_key,
			int64 value, const char *text_key, const char *text)
{
	StringInfoData buf;

	initStringInfo(&buf);
	json_begin(&buf);
	json_add_int(&buf, "topup_id", topup_id);
	json_add_int(&buf, int_key, value);
	if (text_key != NULL)
		json_add_str(&buf, text_key, text);
	json_end(&buf);
	event_emit(account_id, event, buf.data);
}

/*
 * A top-up requested: its NOTIFY and its event, with the available amount
 * it was asked at, the target (0: none) and whether the cap cut it.
 */
static void
notify_requested(int64 topup_id, int64 account_id, int64 amount, int64 available,
				 int64 target, bool clamped)
{
	StringInfoData buf;

	topup_notify("auto_topup_requested", account_id, topup_id, amount);
	initStringInfo(&buf);
	json_begin(&buf);
	json_add_int(&buf, "topup_id", topup_id);
	json_add_int(&buf, "amount_micros", amount);
	json_add_int(&buf, "available_micros", available);
	if (target > 0)
		json_add_int(&buf, "target_micros", target);
	else
		json_add_str(&buf, "target_micros", NULL);
	json_add_bool(&buf, "clamped", clamped);
	json_end(&buf);
	event_emit(account_id, "auto_topup_requested", buf.data);
}

/*
 * Auto top-up turned off by topup_id: its failure, the failures-th in a
 * row (reason "failures"), or its reversal (reason "reversal").
 */
static void
notify_disabled(int64 account_id, int64 topup_id, int failures, const char *reason)
{
	topup_notify("auto_topup_disabled", account_id, 0, 0);
	topup_event(account_id, "auto_topup_disabled", topup_id, "failures", failures, "reason", reason);
}

/*
 * The event of a finished top-up: topup_succeeded with its payment
 * reference, or topup_failed with its reason (JSON null when absent).
 */
static void
event_finished(int64 account_id, int64 topup_id, int64 amount, bool succeeded, const char *text)
{
	topup_event(account_id, succeeded ? "topup_succeeded" : "topup_failed", topup_id,
				"amount_micros", amount, succeeded ? "payment_reference" : "failure_reason", text);
}

/*
 * The per-day guard refused a top-up. Said to the server log (LOG always
 * reaches it) and to the client as a warning, so the refusal is never silent.
 */
static void
report_day_limit(int elevel, int64 account_id, int64 recent)
{
	ereport(elevel,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("auto top-up refused: daily limit reached"),
			 errdetail("Account " INT64_FORMAT " requested " INT64_FORMAT " top-ups in the last 24 hours;"
					   " billing.auto_topup_max_per_day is %d.",
					   account_id, recent, billing_auto_topup_max_per_day),
			 errhint("Look into the account's recent top-ups, or raise billing.auto_topup_max_per_day.")));
}

/*
 * The transaction-level advisory lock under which top-ups of the account are
 * requested. Its key is the whole account id and a kind of its own (field
 * 4; the account gate of slices.c uses another, pg_advisory_lock() 1 and 2),
 * the same on every node. With wait false, only tried: returns whether it
 * was taken.
 */
#define TOPUP_TAG_KIND 0xB112

static bool
request_lock(int64 account_id, bool wait)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) ((uint64) account_id >> 32),
						 (uint32) account_id, TOPUP_TAG_KIND);
	return LockAcquire(&tag, ExclusiveLock, false, !wait) != LOCKACQUIRE_NOT_AVAIL;
}

/*
 * Requests a top-up when the account is below its threshold and none is
 * pending: of the configured amount, or up to the target, cut to what the
 * monthly cap leaves. Runs inside an SPI connection.
 */
static void
topup_request(int64 account_id)
{
	static SPIPlanPtr pending_plan, state_plan, insert_plan;
	int64		threshold,
				amount,
				target,
				cap,
				recent,
				unit,
				available,
				want;
	bool		target_null,
				cap_null,
				capped_null,
				clamped = false;
	Datum		capped_month;
	TimestampTz now = GetCurrentTimestamp();

	/* the common case below the threshold: a top-up is already on its way */
	plan_run(&pending_plan,
			 "SELECT 1 FROM billing.topups WHERE account_id = $1 AND status = 'pending'",
			 false, 1, PLAN_ARGS(ARG_INT8(account_id)));
	if (SPI_processed > 0)
		return;

	/*
	 * One requester at a time per account. Whoever does not get the lock
	 * leaves the request to the holder: waiting here, with the charge's
	 * slices locked, could deadlock against the holder's next charge.
	 */
	if (!request_lock(account_id, false))
		return;

	/*
	 * Under the lock, with a fresh snapshot: the config and the day's count,
	 * then under a cap the month's pending and succeeded top-ups. Every
	 * insert of the account's top-ups runs under this lock, so the month's
	 * sum stays true until the insert below (completions only move a top-up
	 * from pending to succeeded or to failed, which counts no more).
	 */
	plan_run(&state_plan,
			 "SELECT a.auto_topup_threshold_micros, a.auto_topup_amount_micros,"
			 " a.auto_topup_target_micros, a.auto_topup_max_per_month_micros,"
			 " (SELECT pg_catalog.count(*) FROM billing.topups t"
			 "   WHERE t.account_id = a.account_id"
			 "     AND t.created_at > pg_catalog.clock_timestamp() - interval '24 hours'),"
			 " billing._minor_unit_micros(a.currency), a.auto_topup_capped_month"
			 " FROM billing.accounts a"
			 " WHERE a.account_id = $1 AND a.auto_topup_enabled AND a.billing_type = 'prepaid'",
			 false, 1, PLAN_ARGS(ARG_INT8(account_id)));
	if (SPI_processed == 0)
		return;
	threshold = spi_int64(1);
	amount = spi_int64(2);
	target = DatumGetInt64(spi_col(3, &target_null));
	cap = DatumGetInt64(spi_col(4, &cap_null));
	recent = spi_int64(5);
	unit = spi_int64(6);
	capped_month = spi_col(7, &capped_null);
	/* the state's row is read: this query replaces it */
	available = available_total(account_id);
	if (available >= threshold)
		return;

	if (recent >= billing_auto_topup_max_per_day)
	{
		report_day_limit(LOG, account_id, recent);
		report_day_limit(WARNING_CLIENT_ONLY, account_id, recent);
		return;
	}

	want = topup_amount(account_id, amount, target_null ? 0 : target, cap_null ? 0 : cap,
						available, unit, capped_null ? NULL : &capped_month, now, &clamped);
	if (want == 0)
		return;

	/* the index topups_one_pending makes a second pending top-up impossible */
	plan_run(&insert_plan,
			 "INSERT INTO billing.topups (account_id, amount_micros, cap_micros, created_at)"
			 " VALUES ($1, $2, $3, $4)"
			 " ON CONFLICT (account_id) WHERE status = 'pending' DO NOTHING"
			 " RETURNING topup_id",
			 false, 1,
			 PLAN_ARGS(ARG_INT8(account_id), ARG_INT8(want),
					   cap_null ? ARG_NULL(INT8OID) : ARG_INT8(cap), ARG_TSTZ(now)));
	if (SPI_processed > 0)
		notify_requested(spi_int64(1), account_id, want, available, target_null ? 0 : target, clamped);
}

void
topup_after_debit(const Account *acct)
{
	/* the cost of auto top-up for an account that does not use it: this test */
	if (!acct->auto_topup_enabled || acct->postpaid)
		return;

	SPI_connect();
	if (available_total(acct->account_id) < acct->auto_topup_threshold)
		topup_request(acct->account_id);
	SPI_finish();
}

/*
 * Turned off: a pending top-up is cancelled, so that no payment is taken
 * after the owner said stop. It does not count as a failure. The time is a
 * parameter: Citus refuses a volatile function (clock_timestamp()) in an
 * UPDATE of a distributed table.
 */
static void
cancel_pending(int64 account_id)
{
	static SPIPlanPtr cancel_plan;

	plan_run(&cancel_plan,
			 "UPDATE billing.topups SET status = 'failed', failure_reason = $2,"
			 " completed_at = $3"
			 " WHERE account_id = $1 AND status = 'pending'"
			 " RETURNING topup_id, amount_micros",
			 false, 0, PLAN_ARGS(ARG_INT8(account_id), ARG_TEXT(TOPUP_CANCELLED_REASON),
								 ARG_TSTZ(GetCurrentTimestamp())));
	/* at most one pending top-up (topups_one_pending) */
	if (SPI_processed > 0)
		event_finished(account_id, spi_int64(1), spi_int64(2), false, TOPUP_CANCELLED_REASON);
}

void
topup_lock(int64 account_id)
{
	request_lock(account_id, true);
}

void
topup_disable_for_reversal(int64 account_id, int64 topup_id)
{
	static SPIPlanPtr plan;

	plan_run(&plan,
			 "UPDATE billing.accounts SET auto_topup_enabled = false"
			 " WHERE account_id = $1 AND auto_topup_enabled RETURNING auto_topup_failures",
			 false, 0, PLAN_ARGS(ARG_INT8(account_id)));
	if (SPI_processed == 0)
		return;
	notify_disabled(account_id, topup_id, DatumGetInt32(spi_col(1, NULL)), "reversal");
	cancel_pending(account_id);
}

/* Refuses (22023) a target not above the threshold, or a cap not above 0 or below the amount. */
static void
check_target_cap(int64 threshold, int64 amount, bool target_null, int64 target,
				 bool cap_null, int64 cap)
{
	if (!target_null && target <= threshold)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("target_micros must be above threshold_micros"),
				 errdetail("Got a target of " INT64_FORMAT " and a threshold of " INT64_FORMAT " micros.",
						   target, threshold)));
	if (!cap_null && (cap <= 0 || cap < amount))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_per_month_micros must be above 0 and at least amount_micros"),
				 errdetail("Got a cap of " INT64_FORMAT " and an amount of " INT64_FORMAT " micros.",
						   cap, amount)));
}

/*
 * billing.configure_auto_topup(account_id, threshold_micros, amount_micros,
 * enabled DEFAULT true, target_micros DEFAULT NULL, max_per_month_micros
 * DEFAULT NULL) RETURNS void: sets the whole configuration.
 */
PG_FUNCTION_INFO_V1(billing_configure_auto_topup);
Datum
billing_configure_auto_topup(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr update_plan;
	int64		account_id,
				threshold,
				amount;
	bool		enabled;
	bool		target_null = PG_ARGISNULL(4),
				cap_null = PG_ARGISNULL(5);
	int64		target = target_null ? 0 : PG_GETARG_INT64(4),
				cap = cap_null ? 0 : PG_GETARG_INT64(5);
	Account		acct;

	args_require(fcinfo, 4);
	account_id = PG_GETARG_INT64(0);
	threshold = PG_GETARG_INT64(1);
	amount = PG_GETARG_INT64(2);
	enabled = PG_GETARG_BOOL(3);
	require_non_negative(threshold, "threshold_micros");
	if (enabled)
		money_require_positive(amount, "amount_micros");
	else
		require_non_negative(amount, "amount_micros");
	check_target_cap(threshold, amount, target_null, target, cap_null, cap);

	SPI_connect();
	account_load(account_id, &acct, true);
	/*
	 * Wait for a charge that is requesting a top-up right now: once it
	 * commits, its top-up is visible here and is cancelled when turning off.
	 * The charges that come after see the new setting.
	 */
	request_lock(account_id, true);
	if (enabled && acct.postpaid)
		ereport(ERROR,
				(errcode(ERRCODE_BILLING_CONFLICT),
				 errmsg("auto top-up is only for prepaid accounts"),
				 errdetail("Account " INT64_FORMAT " is postpaid.", account_id),
				 errhint("A postpaid account draws on its credit limit instead.")));

	/* turning it on starts a fresh count of consecutive failures */
	plan_run(&update_plan,
			 "UPDATE billing.accounts SET auto_topup_threshold_micros = $2,"
			 " auto_topup_amount_micros = $3,"
			 " auto_topup_failures = CASE WHEN $4 AND NOT auto_topup_enabled"
			 "   THEN 0 ELSE auto_topup_failures END,"
			 " auto_topup_enabled = $4, auto_topup_target_micros = $5,"
			 " auto_topup_max_per_month_micros = $6"
			 " WHERE account_id = $1",
			 false, 0,
			 PLAN_ARGS(ARG_INT8(account_id), ARG_INT8(threshold), ARG_INT8(amount), ARG_BOOL(enabled),
					   target_null ? ARG_NULL(INT8OID) : ARG_INT8(target),
					   cap_null ? ARG_NULL(INT8OID) : ARG_INT8(cap)));

	if (enabled)
	{
		/* already below the threshold: one top-up at once */
		acct.auto_topup_enabled = true;
		acct.auto_topup_threshold = threshold;
		acct.auto_topup_amount = amount;
		topup_after_debit(&acct);
	}
	else
		cancel_pending(account_id);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * The JSON of a top-up, built from its row only, so that a repeated call
 * gets the same. amount is its amount_micros, rendered as currency units.
 * The jsonb is in the caller's context, outside SPI.
 */
static Datum
topup_json(int64 account_id, int64 topup_id, int64 amount, const char *currency)
{
	static SPIPlanPtr plan;
	StringInfoData buf;
	bool		created_null,
				completed_null;
	TimestampTz created,
				completed;

	plan_run(&plan,
			 "SELECT status, payment_reference, failure_reason, created_at, completed_at"
			 "  FROM billing.topups WHERE account_id = $1 AND topup_id = $2",
			 false, 1, PLAN_ARGS(ARG_INT8(account_id), ARG_INT8(topup_id)));
	created = DatumGetTimestampTz(spi_col(4, &created_null));
	completed = DatumGetTimestampTz(spi_col(5, &completed_null));
	initStringInfo(&buf);
	json_begin(&buf);
	json_add_str(&buf, "object", "topup");
	json_add_int(&buf, "topup_id", topup_id);
	json_add_int(&buf, "account_id", account_id);
	json_add_str(&buf, "status", spi_text(1));
	json_add_int(&buf, "amount_micros", amount);
	json_key(&buf, "amount");
	json_begin(&buf);
	json_add_money(&buf, "amount", amount);
	json_add_str(&buf, "currency", currency);
	json_end(&buf);
	json_add_str(&buf, "payment_reference", spi_text(2));
	json_add_str(&buf, "failure_reason", spi_text(3));
	json_add_time(&buf, "created_at", created, created_null);
	json_add_time(&buf, "completed_at", completed, completed_null);
	json_end(&buf);
	return SPI_datumTransfer(jsonb_from_text(buf.data), false, -1);
}

/*
 * A finished top-up completed again: the same outcome returns the first
 * result, another one is refused (PB409) and moves no money.
 */
static void
check_repeat(int64 topup_id, bool succeeded, const char *reference,
			 const char *status, const char *first_reference, const char *first_reason)
{
	bool		had_succeeded = strcmp(status, "succeeded") == 0;

	if (had_succeeded && !succeeded)
		ereport(ERROR,
				(errcode(ERRCODE_BILLING_CONFLICT),
				 errmsg("top-up " INT64_FORMAT " has already succeeded", topup_id),
				 errdetail("Its amount was credited; it cannot fail now.")));
	if (!had_succeeded && succeeded)
		ereport(ERROR,
				(errcode(ERRCODE_BILLING_CONFLICT),
				 errmsg("top-up " INT64_FORMAT " has already failed", topup_id),
				 errdetail("It failed with \"%s\"; it cannot succeed now.",
						   first_reason ? first_reason : "no reason given"),
				 errhint("Refund the payment: the account was not credited with it.")));
	/* a second payment reference for one top-up means it was paid twice */
	if (succeeded && reference != NULL &&
		(first_reference == NULL || strcmp(reference, first_reference) != 0))
		ereport(ERROR,
				(errcode(ERRCODE_BILLING_CONFLICT),
				 errmsg("top-up " INT64_FORMAT " already succeeded with another payment",
						topup_id),
				 errdetail("It was credited once, with payment reference \"%s\".",
						   first_reference ? first_reference : ""),
				 errhint("Refund the second payment.")));
}

/*
 * billing.complete_topup(topup_id, succeeded, payment_reference DEFAULT NULL,
 * failure_reason DEFAULT NULL) RETURNS jsonb
 */
PG_FUNCTION_INFO_V1(billing_complete_topup);
Datum
billing_complete_topup(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr find_plan, lock_account_plan, lock_plan, finish_plan, failures_plan;
	int64		topup_id,
				account_id,
				amount;
	bool		succeeded;
	char	   *reference,
			   *reason,
			   *status;
	Account		acct;
	Datum		result;

	args_require(fcinfo, 2);
	topup_id = PG_GETARG_INT64(0);
	succeeded = PG_GETARG_BOOL(1);
	reference = args_text_bounded(fcinfo, 2, "payment_reference", ARGS_KEY_MAX);
	reason = args_text_bounded(fcinfo, 3, "failure_reason", TOPUP_MAX_REASON);
	if (succeeded && reason != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("failure_reason is only for a failed top-up")));

	SPI_connect();
	plan_run(&find_plan, "SELECT account_id FROM billing.topups WHERE topup_id = $1",
			 false, 1, PLAN_ARGS(ARG_INT8(topup_id)));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_BILLING_NOT_FOUND),
				 errmsg("top-up " INT64_FORMAT " does not exist", topup_id)));
	account_id = spi_int64(1);

	/*
	 * Lock order: account, top-up, slices. configure_auto_topup holds the
	 * account row when it cancels a pending top-up.
	 */
	plan_run(&lock_account_plan,
			 "SELECT 1 FROM billing.accounts WHERE account_id = $1 FOR NO KEY UPDATE",
			 false, 1, PLAN_ARGS(ARG_INT8(account_id)));
	account_load(account_id, &acct, true);

	plan_run(&lock_plan,
			 "SELECT amount_micros, status, payment_reference, failure_reason"
			 " FROM billing.topups WHERE account_id = $2 AND topup_id = $1 FOR UPDATE",
			 false, 1, PLAN_ARGS(ARG_INT8(topup_id), ARG_INT8(account_id)));
	amount = spi_int64(1);
	status = spi_text(2);
	if (strcmp(status, "pending") != 0)
	{
		check_repeat(topup_id, succeeded, reference, status, spi_text(3), spi_text(4));
		result = topup_json(account_id, topup_id, amount, acct.currency);
		SPI_finish();
		PG_RETURN_DATUM(result);
	}

	if (succeeded)
	{
		account_require_prepaid(&acct, _("A top-up credits a prepaid balance only."),
								_("Refund the payment, or complete the top-up as failed."));
		ledger_post(account_id, "auto_topup", amount, false, 0, topup_id, 0, NULL, reference);
		available_rebalance(&acct, amount);
	}

	/* the time as a parameter: Citus evaluates no volatile function in a SET */
	plan_run(&finish_plan,
			 "UPDATE billing.topups SET status = $4, payment_reference = $2,"
			 " failure_reason = $3, completed_at = $5"
			 " WHERE account_id = $6 AND topup_id = $1",
			 false, 0,
			 PLAN_ARGS(ARG_INT8(topup_id), ARG_TEXT(reference), ARG_TEXT(reason),
					   ARG_TEXT(succeeded ? "succeeded" : "failed"), ARG_TSTZ(GetCurrentTimestamp()),
					   ARG_INT8(account_id)));
	event_finished(account_id, topup_id, amount, succeeded, succeeded ? reference : reason);

	/* a success resets the consecutive failures; the last one allowed turns auto top-up off */
	plan_run(&failures_plan,
			 "UPDATE billing.accounts SET"
			 " auto_topup_failures = CASE WHEN $2 THEN 0 ELSE auto_topup_failures + 1 END,"
			 " auto_topup_enabled = auto_topup_enabled AND ($2 OR auto_topup_failures + 1 < $3)"
			 " WHERE account_id = $1"
			 " RETURNING auto_topup_enabled, auto_topup_failures",
			 false, 0,
			 PLAN_ARGS(ARG_INT8(account_id), ARG_BOOL(succeeded), ARG_INT4(billing_auto_topup_max_failures)));
	if (acct.auto_topup_enabled && !DatumGetBool(spi_col(1, NULL)))
		notify_disabled(account_id, topup_id, DatumGetInt32(spi_col(2, NULL)), "failures");

	result = topup_json(account_id, topup_id, amount, acct.currency);
	SPI_finish();
	PG_RETURN_DATUM(result);
}
