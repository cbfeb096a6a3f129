/*
 * Refunds of requests and manual corrections of a balance (docs/refunds.md).
 * Cold paths: each moves money with every slice locked, as add_funds does.
 * What a request has had back is kept in billing.refunds and read only by
 * refunds and response_metadata (request_refunded, requests.c), so settling
 * a request costs nothing more.
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
#include "requests/requests.h"
#include "money.h"
#include "spi_plan.h"

/*
 * The refund an idempotency key already names, or 0. Refuses (PB409) the
 * key when it was used for another request, amount or reason (requested is
 * the amount asked for, NULL for all that was left).
 */
static int64
refund_replay(int64 account_id, const char *key, int64 request_id, const int64 *requested,
			  const char *reason)
{
	static SPIPlanPtr plan;

	plan_run(&plan,
			 "SELECT refund_id, request_id = $3 AND requested_micros IS NOT DISTINCT FROM $4"
			 "       AND reason IS NOT DISTINCT FROM $5"
			 "  FROM billing.refunds WHERE account_id = $1 AND idempotency_key = $2",
			 false, 0,
			 PLAN_ARGS(ARG_INT8(account_id), ARG_TEXT(key), ARG_INT8(request_id),
					   requested ? ARG_INT8(*requested) : ARG_NULL(INT8OID), ARG_TEXT(reason)));
	return args_key_replay(key, "Refund", "made");
}

/*
 * Whether the usage a request was charged accrued while its account was
 * postpaid. The entry was posted after the request began: the scan walks
 * the account's entries from that moment and stops at the first match.
 */
static bool
usage_postpaid(int64 account_id, int64 request_id, Datum began)
{
	static SPIPlanPtr plan;

	plan_run(&plan,
			 "SELECT postpaid FROM billing.ledger"
			 " WHERE account_id = $1 AND created_at >= $3 AND kind = 'usage' AND request_id = $2"
			 " ORDER BY created_at LIMIT 1",
			 false, 0,
			 PLAN_ARGS(ARG_INT8(account_id), ARG_INT8(request_id), ARG_DATUM(TIMESTAMPTZOID, began)));
	if (SPI_processed == 0)
		elog(ERROR, "request " INT64_FORMAT " was charged but has no usage entry", request_id);
	return DatumGetBool(spi_col(1, NULL));
}

/* Refuses (PB409 or 22023) a refund of amount when the request cannot give it back. */
static void
refund_check(const Account *acct, int64 request_id, const char *status, int64 charged,
			 int64 refunded, int64 amount, bool all)
{
	const char *cur = acct->currency;
	int64		left = charged - refunded;

	if (request_stage(status) != REQUEST_FINISHED)
		ereport(ERROR,
				(errcode(ERRCODE_BILLING_CONFLICT),
				 errmsg("request " INT64_FORMAT " is %s", request_id, status),
				 errdetail("Only what a finished request was charged can be refunded.")));
	if (charged == 0)
		ereport(ERROR,
				(errcode(ERRCODE_BILLING_CONFLICT),
				 errmsg("request " INT64_FORMAT " was charged nothing", request_id),
				 errdetail("The request is %s without a charge.", status)));
	if (left == 0)
		ereport(ERROR,
				(errcode(ERRCODE_BILLING_CONFLICT),
				 errmsg("request " INT64_FORMAT " has been refunded in full", request_id),
				 errdetail("It was charged %s %s and has had all of it back.",
						   money_format(charged), cur)));
	if (all)
		return;
	money_require_positive(amount, "amount_micros");
	if (amount > left)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("refund of %s %s exceeds what is left to refund of request " INT64_FORMAT,
						money_format(amount), cur, request_id),
				 errdetail("The request was charged %s %s and has had %s %s back: %s %s is left.",
						   money_format(charged), cur, money_format(refunded), cur,
						   money_format(left), cur)));
}

/* The refund object of refund_id, as JSON text in the context "upper". */
static char *
refund_json(const Account *acct, int64 refund_id, MemoryContext upper)
{
	static SPIPlanPtr plan;
	int64		request_id;
	int64		amount;
	int64		refunded;
	char	   *reason;
	MemoryContext old;
	StringInfoData buf;

	plan_run(&plan,
			 "SELECT f.request_id, f.amount_micros, f.reason,"
			 "       (SELECT pg_catalog.sum(x.amount_micros)::bigint FROM billing.refunds x"
			 "         WHERE x.account_id = f.account_id AND x.request_id = f.request_id)"
			 "  FROM billing.refunds f WHERE f.account_id = $1 AND f.refund_id = $2",
			 false, 0, PLAN_ARGS(ARG_INT8(acct->account_id), ARG_INT8(refund_id)));
	request_id = spi_int64(1);
	amount = spi_int64(2);
	reason = spi_text(3);
	refunded = spi_int64(4);

	old = MemoryContextSwitchTo(upper);
	initStringInfo(&buf);
	json_begin(&buf);
	json_add_str(&buf, "object", "refund");
	json_add_int(&buf, "refund_id", refund_id);
	json_add_int(&buf, "request_id", request_id);
	json_add_int(&buf, "account_id", acct->account_id);
	json_add_int(&buf, "amount_micros", amount);
	json_add_money(&buf, "amount", amount);
	json_add_str(&buf, "currency", acct->currency);
	json_add_int(&buf, "refunded_micros", refunded);
	json_add_str(&buf, "reason", reason);
	json_end(&buf);
	MemoryContextSwitchTo(old);
	return buf.data;
}

PG_FUNCTION_INFO_V1(billing_refund_request);
Datum
billing_refund_request(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr lock_plan;
	static SPIPlanPtr insert_plan;
	int64		request_id;
	bool		all = PG_ARGISNULL(1);
	int64		amount = all ? 0 : PG_GETARG_INT64(1);
	char	   *reason = args_text(fcinfo, 2);
	char	   *key = args_text(fcinfo, 3);
	MemoryContext upper = CurrentMemoryContext;
	Account		acct;
	int64		account_id;
	char	   *status;
	int64		charged;
	Datum		began;
	int64		refund_id = 0;
	bool		issued = false;
	char	   *result;

	args_require(fcinfo, 1);
	request_id = PG_GETARG_INT64(0);
	args_check_idempotency_key(key);
	SPI_connect();
	/*
	 * The request row serializes the refunds of one request: each one sees
	 * what the others gave back (a finished request is never updated, so
	 * the lock holds up nobody else).
	 */
	account_id = request_account(request_id);
	plan_run(&lock_plan,
			 "SELECT account_id, status, COALESCE(cost_micros, 0), created_at FROM billing.requests"
			 " WHERE account_id = $2 AND request_id = $1 FOR NO KEY UPDATE",
			 false, 0, PLAN_ARGS(ARG_INT8(request_id), ARG_INT8(account_id)));
	status = spi_text(2);
	charged = spi_int64(3);
	began = spi_col(4, NULL);
	account_load(account_id, &acct, true);
	if (key)
		refund_id = refund_replay(account_id, key, request_id, all ? NULL : &amount, reason);
	if (refund_id == 0)
	{
		int64		refunded = request_refunded(account_id, request_id);
		bool		postpaid;
		int64		entry_id;

		refund_check(&acct, request_id, status, charged, refunded, amount, all);
		if (all)
			amount = charged - refunded;
		postpaid = usage_postpaid(account_id, request_id, began);
		/*
		 * A refund of prepaid usage gives prepaid money back: on an account
		 * that is postpaid now it joins the prepaid credit kept for the
		 * invoices, as the balance did at the switch (docs/invoices.md). The
		 * account row is locked first, the order of set_billing_type, which
		 * then waits and counts this refund; the type is read under that
		 * lock, so a switch that committed meanwhile decides.
		 */
		if (!postpaid)
			ledger_keep_credit(account_id, amount, true);
		entry_id = ledger_post(account_id, "refund", amount, postpaid, request_id, 0, 0, NULL, reason);
		available_rebalance(&acct, amount);
		plan_run(&insert_plan,
				 "INSERT INTO billing.refunds (account_id, request_id, amount_micros, requested_micros,"
				 "       reason, idempotency_key, entry_id)"
				 " VALUES ($1, $2, $3, $4, $5, $6, $7)"
				 " ON CONFLICT (account_id, idempotency_key) WHERE idempotency_key IS NOT NULL"
				 " DO NOTHING RETURNING refund_id",
				 false, 0,
				 PLAN_ARGS(ARG_INT8(account_id), ARG_INT8(request_id), ARG_INT8(amount),
						   all ? ARG_NULL(INT8OID) : ARG_INT8(amount), ARG_TEXT(reason), ARG_TEXT(key),
						   ARG_INT8(entry_id)));
		if (SPI_processed == 1)
		{
			refund_id = spi_int64(1);
			issued = true;
		}
		else
		{
			/*
			 * A concurrent refund of another request took the key first (one
			 * of this request would have waited for the row lock above and
			 * replayed): this raises PB409 and rolls the entry back.
			 */
			refund_replay(account_id, key, request_id, all ? NULL : &amount, reason);
			elog(ERROR, "idempotency key \"%s\" names no refund", key);
		}
	}
	result = refund_json(&acct, refund_id, upper);
	/* the event carries the refund object; a replay writes none */
	if (issued)
		event_emit(account_id, "refund_issued", result);
	SPI_finish();
	PG_RETURN_DATUM(jsonb_from_text(result));
}

/* The adjustment an idempotency key already names, or 0; PB409 for other arguments. */
static int64
adjust_replay(int64 account_id, const char *key, int64 amount, const char *reason)
{
	static SPIPlanPtr plan;

	plan_run(&plan,
			 "SELECT entry_id, amount_micros = $3 AND reason = $4"
			 "  FROM billing.adjustments WHERE account_id = $1 AND idempotency_key = $2",
			 false, 0, PLAN_ARGS(ARG_INT8(account_id), ARG_TEXT(key), ARG_INT8(amount), ARG_TEXT(reason)));
	return args_key_replay(key, "Adjustment entry", "posted");
}

PG_FUNCTION_INFO_V1(billing_adjust_balance);
Datum
billing_adjust_balance(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr lock_plan;
	static SPIPlanPtr insert_plan;
	int64		account_id;
	int64		amount;
	char	   *reason = args_text(fcinfo, 2);
	char	   *key = args_text(fcinfo, 3);
	Account		acct;
	int64		entry_id = 0;

	args_require(fcinfo, 2);
	account_id = PG_GETARG_INT64(0);
	amount = PG_GETARG_INT64(1);
	if (amount == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("amount_micros must not be zero"),
				 errdetail("A credit is positive, a debit negative.")));
	if (reason == NULL || reason[strspn(reason, " \t\r\n")] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("an adjustment needs a reason")));
	args_check_idempotency_key(key);
	SPI_connect();
	account_load(account_id, &acct, true);
	if (key)
	{
		/* keyed adjustments of an account one at a time: a replay sees the first */
		plan_run(&lock_plan, "SELECT FROM billing.accounts WHERE account_id = $1 FOR NO KEY UPDATE",
				 false, 0, PLAN_ARGS(ARG_INT8(account_id)));
		entry_id = adjust_replay(account_id, key, amount, reason);
	}
	if (entry_id == 0)
	{
		if (amount < 0)
			available_take_exact(&acct, money_mul(amount, -1));
		else
			available_rebalance(&acct, amount);
		entry_id = ledger_post(account_id, "adjustment", amount, acct.postpaid, 0, 0, 0, NULL, reason);
		plan_run(&insert_plan,
				 "INSERT INTO billing.adjustments (account_id, entry_id, amount_micros, reason,"
				 "       idempotency_key) VALUES ($1, $2, $3, $4, $5)",
				 false, 0,
				 PLAN_ARGS(ARG_INT8(account_id), ARG_INT8(entry_id), ARG_INT8(amount), ARG_TEXT(reason),
						   ARG_TEXT(key)));
	}
	SPI_finish();
	PG_RETURN_INT64(entry_id);
}
