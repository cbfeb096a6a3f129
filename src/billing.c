/* billing: module entry point and settings. */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "pgtime.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"

#include "billing.h"
#include "money.h"

PG_MODULE_MAGIC;

int			billing_low_balance_floor_micros = 1000000;
int			billing_low_balance_factor = 2;
int			billing_low_balance_window = 300;
int			billing_balance_slices = 16;
int			billing_auto_topup_max_failures = 3;
int			billing_auto_topup_max_per_day = 10;
char	   *billing_catalog_currency = NULL;
char	   *billing_timezone = NULL;
int			billing_invoice_due_days = 30;
int			billing_credit_limit_floor_micros = 10000000;
int			billing_credit_limit_cap_micros = 1000000000;

void		_PG_init(void);

/*
 * GUC check hooks: a bad value is refused by SET itself (22023), not later
 * by the function that reads it.
 */
static bool
check_catalog_currency(char **newval, void **extra, GucSource source)
{
	if (money_currency_valid(*newval))
		return true;
	GUC_check_errdetail("A currency is three upper-case letters, an ISO 4217 code such as \"USD\".");
	return false;
}

/*
 * A zone name as core's TimeZone check loads it (pg_tzset), so that
 * AT TIME ZONE accepts it too; core's check_timezone() also takes numeric
 * offsets and intervals, which AT TIME ZONE does not.
 */
static bool
check_billing_timezone(char **newval, void **extra, GucSource source)
{
	pg_tz	   *tz = pg_tzset(*newval);

	if (tz == NULL)
	{
		GUC_check_errdetail("\"%s\" is not a time zone name known to PostgreSQL (see pg_timezone_names).",
							*newval);
		return false;
	}
	if (!pg_tz_acceptable(tz))
	{
		GUC_check_errmsg("time zone \"%s\" appears to use leap seconds", *newval);
		GUC_check_errdetail("PostgreSQL does not support leap seconds.");
		return false;
	}
	return true;
}

void
_PG_init(void)
{
	DefineCustomIntVariable("billing.low_balance_floor_micros",
							"Lowest low-balance threshold, in micros.",
							"Below its threshold an account validates every request exactly.",
							&billing_low_balance_floor_micros, 1000000, 0, INT_MAX,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("billing.low_balance_factor",
							"Multiple of recent spend that sets the low-balance threshold.",
							NULL,
							&billing_low_balance_factor, 2, 0, 1000,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("billing.low_balance_window",
							"Window of recent spend for the low-balance threshold.",
							NULL,
							&billing_low_balance_window, 300, 1, 86400,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("billing.balance_slices",
							"Slices a new account's available amount is split into.",
							"More slices let more requests of one account run at once.",
							&billing_balance_slices, 16, 1, 256,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("billing.auto_topup_max_failures",
							"Consecutive failed auto top-ups after which auto top-up turns off.",
							NULL,
							&billing_auto_topup_max_failures, 3, 1, 100,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("billing.auto_topup_max_per_day",
							"Most auto top-ups requested for one account in 24 hours.",
							NULL,
							&billing_auto_topup_max_per_day, 10, 1, 1000,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("billing.catalog_currency",
							   "Currency of new prices.",
							   NULL,
							   &billing_catalog_currency, "USD",
							   PGC_SUSET, 0, check_catalog_currency, NULL, NULL);
	DefineCustomStringVariable("billing.timezone",
							   "Time zone in which invoice months begin and end.",
							   NULL,
							   &billing_timezone, "UTC",
							   PGC_SUSET, 0, check_billing_timezone, NULL, NULL);
	DefineCustomIntVariable("billing.invoice_due_days",
							"Days from the end of an invoiced month to its due date.",
							NULL,
							&billing_invoice_due_days, 30, 0, 365,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("billing.credit_limit_floor_micros",
							"Lowest credit limit billing.suggest_credit_limit() suggests.",
							NULL,
							&billing_credit_limit_floor_micros, 10000000, 0, INT_MAX,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("billing.credit_limit_cap_micros",
							"Highest credit limit billing.suggest_credit_limit() suggests.",
							NULL,
							&billing_credit_limit_cap_micros, 1000000000, 0, INT_MAX,
							PGC_SUSET, 0, NULL, NULL, NULL);

	MarkGUCPrefixReserved("billing");
}

void
require_args(FunctionCallInfo fcinfo, int nargs)
{
	for (int i = 0; i < nargs; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("argument %d of %s must not be null", i + 1,
							get_func_name(fcinfo->flinfo->fn_oid))));
}
