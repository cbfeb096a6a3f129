/* The append-only ledger and balances: add_funds, balance, and the entry points of SQL. */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "args.h"
#include "direct.h"
#include "errors.h"
#include "jsonout.h"
#include "ledger/ledger.h"
#include "ledger/slices.h"
#include "money.h"
#include "spi_plan.h"


int64
ledger_post(int64 account_id, const char *kind, int64 amount, bool postpaid,
			int64 request_id, int64 topup_id, int64 invoice_id,
			const char *key, const char *reference)
{
	return ledger_post_grant(account_id, kind, amount, postpaid, request_id, topup_id, invoice_id,
							 0, key, reference);
}

int64
ledger_post_grant(int64 account_id, const char *kind, int64 amount, bool postpaid,
				  int64 request_id, int64 topup_id, int64 invoice_id, int64 grant_id,
				  const char *key, const char *reference)
{
	static SPIPlanPtr plan;

	ledger_check_entry(kind, amount);
	/* a key already used returns no row: the caller looks at the first entry */
	plan_run(&plan,
			 "INSERT INTO billing.ledger (account_id, kind, amount_micros, postpaid,"
			 "       request_id, topup_id, invoice_id, idempotency_key, reference, grant_id)"
			 " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
			 " ON CONFLICT (account_id, idempotency_key) WHERE idempotency_key IS NOT NULL"
			 " DO NOTHING RETURNING entry_id",
			 false, 0,
			 PLAN_ARGS(ARG_INT8(account_id), ARG_TEXT(kind), ARG_INT8(amount), ARG_BOOL(postpaid),
					   ARG_ID(request_id), ARG_ID(topup_id), ARG_ID(invoice_id), ARG_TEXT(key),
					   ARG_TEXT(reference), ARG_ID(grant_id)));
	return SPI_processed == 1 ? spi_int64(1) : 0;
}

int64
ledger_post_direct(int64 account_id, const char *kind, int64 amount, bool postpaid,
				   int64 request_id)
{
	Datum		v[DL_COLUMNS];
	bool		n[DL_COLUMNS];
	int64		entry_id;

	ledger_check_entry(kind, amount);
	entry_id = direct_next_id(DIRECT_LEDGER);
	for (int c = 0; c < DL_COLUMNS; c++)
		n[c] = true;
	v[DL_ACCOUNT_ID] = Int64GetDatum(account_id);
	v[DL_ENTRY_ID] = Int64GetDatum(entry_id);
	v[DL_KIND] = CStringGetTextDatum(kind);
	v[DL_AMOUNT] = Int64GetDatum(amount);
	v[DL_POSTPAID] = BoolGetDatum(postpaid);
	v[DL_REQUEST_ID] = Int64GetDatum(request_id);
	/* the defaults of schema.sql */
	v[DL_CREATED_AT] = TimestampTzGetDatum(GetCurrentTimestamp());
	v[DL_CREATED_BY] = CStringGetTextDatum(GetUserNameFromId(GetSessionUserId(), false));
	n[DL_ACCOUNT_ID] = n[DL_ENTRY_ID] = n[DL_KIND] = n[DL_AMOUNT] = n[DL_POSTPAID] =
		n[DL_REQUEST_ID] = n[DL_CREATED_AT] = n[DL_CREATED_BY] = false;
	direct_insert(DIRECT_LEDGER, v, n);
	return entry_id;
}

/* The first add_funds with this key, or PB409 when it credited another amount. */
static int64
funds_replay(int64 account_id, const char *key, int64 amount)
{
	static SPIPlanPtr plan;

	plan_run(&plan,
			 "SELECT entry_id, kind = 'funds' AND amount_micros = $3 FROM billing.ledger"
			 " WHERE account_id = $1 AND idempotency_key = $2",
			 false, 1, PLAN_ARGS(ARG_INT8(account_id), ARG_TEXT(key), ARG_INT8(amount)));
	return args_key_replay(key, "Entry", "posted");
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
	account_require_prepaid(&acct, _("Funds are added to prepaid accounts only."),
							_("Postpaid usage is settled with billing.mark_invoice_paid()."));
	if (key)
		entry_id = funds_replay(account_id, key, amount);
	if (entry_id == 0)
	{
		entry_id = ledger_post(account_id, "funds", amount, false, 0, 0, 0, key, reference);
		if (entry_id != 0)
			available_rebalance(&acct, amount);
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
	int64		account_id;

	args_require(fcinfo, 3);
	external_id = PG_GETARG_TEXT_PP(0);
	billing_type = text_to_cstring(PG_GETARG_TEXT_PP(1));
	currency = text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (!args_length_ok(VARDATA_ANY(external_id), VARSIZE_ANY_EXHDR(external_id), ARGS_KEY_MAX))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("external_id must have 1 to %d characters", ARGS_KEY_MAX)));
	check_billing_type(billing_type);
	if (!money_currency_valid(currency))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid currency \"%s\"", currency),
				 errhint("Use an ISO 4217 code such as \"USD\".")));

	SPI_connect();
	plan_run(&insert_plan,
			 "INSERT INTO billing.accounts (external_id, billing_type, currency)"
			 " VALUES ($1, $2, $3) RETURNING account_id",
			 false, 0,
			 PLAN_ARGS(ARG_DATUM(TEXTOID, PointerGetDatum(external_id)), ARG_TEXT(billing_type),
					   ARG_TEXT(currency)));
	account_id = spi_int64(1);
	/* the cluster-wide unique key (schema.sql); a taken external_id fails here */
	plan_run(&external_plan,
			 "INSERT INTO billing.external_ids (external_id, account_id) VALUES ($1, $2)",
			 false, 0, PLAN_ARGS(ARG_DATUM(TEXTOID, PointerGetDatum(external_id)), ARG_INT8(account_id)));
	plan_run(&slices_plan,
			 "INSERT INTO billing.account_slices (account_id, slice, available_micros)"
			 " SELECT $1, s, 0 FROM pg_catalog.generate_series(0, $2 - 1) s",
			 false, 0, PLAN_ARGS(ARG_INT8(account_id), ARG_INT4(billing_balance_slices)));
	SPI_finish();
	PG_RETURN_INT64(account_id);
}

/*
 * billing._move: a money movement = a ledger entry + the same change of
 * available; of a grant (credits.sql) when grant_id is given.
 */
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
	int64		grant_id = PG_ARGISNULL(6) ? 0 : PG_GETARG_INT64(6);
	Account		acct;
	int64		entry_id;

	args_require(fcinfo, 3);
	kind = text_to_cstring(PG_GETARG_TEXT_PP(2));
	SPI_connect();
	account_load(account_id, &acct, false);
	entry_id = ledger_post_grant(account_id, kind, amount, acct.postpaid, 0, topup_id, invoice_id,
								 grant_id, NULL, reference);
	available_rebalance(&acct, amount);
	SPI_finish();
	PG_RETURN_INT64(entry_id);
}

/* billing._adjust_available: a change of credit limit, not of money. */
PG_FUNCTION_INFO_V1(billing_adjust_available);
Datum
billing_adjust_available(PG_FUNCTION_ARGS)
{
	Account		acct;

	SPI_connect();
	/* the callers in SQL have checked the account (billing._account) */
	account_load(PG_GETARG_INT64(0), &acct, false);
	available_rebalance(&acct, PG_GETARG_INT64(1));
	SPI_finish();
	PG_RETURN_VOID();
}

void
ledger_keep_credit(int64 account_id, int64 delta, bool if_postpaid)
{
	static SPIPlanPtr plan;

	if (delta == 0)
		return;
	plan_run(&plan,
			 "UPDATE billing.accounts SET prepaid_credit_micros = prepaid_credit_micros + $2"
			 " WHERE account_id = $1 AND (NOT $3 OR billing_type = 'postpaid')",
			 false, 0, PLAN_ARGS(ARG_INT8(account_id), ARG_INT8(delta), ARG_BOOL(if_postpaid)));
}

/* billing._keep_credit: the kept prepaid credit moves, for invoicing's SQL. */
PG_FUNCTION_INFO_V1(billing_keep_credit);
Datum
billing_keep_credit(PG_FUNCTION_ARGS)
{
	SPI_connect();
	ledger_keep_credit(PG_GETARG_INT64(0), PG_GETARG_INT64(1), false);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * balance()'s "credits" and "limits" (billing._credits, billing._limits) and
 * auto top-up's target and month (billing._topup_month), as a jsonb object.
 * Two statements: on Citus a statement on the account's row runs on its
 * shard, where the functions could not query further, so they run in one
 * that names no table.
 */
static Datum
balance_credits(int64 account_id)
{
	static SPIPlanPtr plan;
	static SPIPlanPtr settings_plan;
	Datum		settings;

	plan_run(&settings_plan,
			 "SELECT pg_catalog.jsonb_build_object("
			 "        'auto_topup_target_micros', a.auto_topup_target_micros,"
			 "        'auto_topup_month_cap_micros', a.auto_topup_max_per_month_micros)"
			 "  FROM billing.accounts a WHERE a.account_id = $1",
			 false, 0, PLAN_ARGS(ARG_INT8(account_id)));
	settings = SPI_datumTransfer(spi_col(1, NULL), false, -1);
	plan_run(&plan, "SELECT pg_catalog.jsonb_build_object('credits', billing._credits($1),"
			 "                                 'limits', billing._limits($1),"
			 "        'auto_topup_month_micros',"
			 "        (SELECT m.used_micros FROM billing._topup_month($1, pg_catalog.now()) m))"
			 "       OPERATOR(pg_catalog.||) $2",
			 false, 0, PLAN_ARGS(ARG_INT8(account_id), ARG_DATUM(JSONBOID, settings)));
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
	plan_run(&plan,
			 "SELECT a.available_micros, a.held_micros, p.unbilled_micros, p.unpaid_micros,"
			 "       p.credit_micros"
			 "  FROM billing._available_position($1) a, billing._postpaid_position($1) p",
			 false, 0, PLAN_ARGS(ARG_INT8(account_id)));
	available = spi_int64(1);
	held = spi_int64(2);
	unbilled = spi_int64(3);
	unpaid = spi_int64(4);
	kept = spi_int64(5);
	credit = acct.postpaid ? acct.credit_limit : 0;
	balance = money_add(money_add(available, held), -credit);
	threshold = available_threshold(account_id);
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
				 available_fast_budget(available, threshold, held) > 0 ? "fast_path" : "per_request");
	json_add_bool(&buf, "auto_topup", acct.auto_topup_enabled);
	json_add_time(&buf, "overdue_since", acct.overdue_since, !acct.overdue);
	json_end(&buf);
	SPI_finish();
	PG_RETURN_DATUM(DirectFunctionCall2(jsonb_concat, jsonb_from_text(buf.data), credits));
}
