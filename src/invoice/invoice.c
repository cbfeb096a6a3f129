/*
 * Invoicing's settings. Invoicing itself is SQL (invoice.sql), which reads
 * them with billing._setting(); they are defined here, with their checks,
 * so that a bad value is refused when it is set rather than by
 * close_period() or suggest_credit_limit() later.
 */
#include "postgres.h"

#include "pgtime.h"
#include "utils/guc.h"

#include "invoice/invoice.h"
#include "money.h"
#include "settings.h"

char	   *billing_timezone = NULL;
int			billing_invoice_due_days = 30;
char	   *billing_credit_limit_floor_micros = NULL;
char	   *billing_credit_limit_cap_micros = NULL;
int			billing_overdue_grace_days = -1;
char	   *billing_seller_details = NULL;
char	   *billing_invoice_number_prefix = NULL;
char	   *billing_credit_note_number_prefix = NULL;

/* a number's prefix: up to 32 characters, none of them a control character */
static bool
check_number_prefix(char **newval, void **extra, GucSource source)
{
	for (const char *c = *newval; *c; c++)
		if ((unsigned char) *c < 0x20 || *c == 0x7f)
		{
			GUC_check_errdetail("A number's prefix has no control characters.");
			return false;
		}
	if (strlen(*newval) > 32)
	{
		GUC_check_errdetail("A number's prefix has at most 32 bytes.");
		return false;
	}
	return true;
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
invoice_init(void)
{
	settings_define_string("billing.timezone", "Time zone in which invoice months begin and end.",
						   NULL, &billing_timezone, "UTC", check_billing_timezone);
	settings_define_int("billing.invoice_due_days",
						"Days from the end of an invoiced month to its due date.",
						NULL, &billing_invoice_due_days, 30, 0, 365, 0);
	money_define_setting("billing.credit_limit_floor_micros",
						 "Lowest credit limit billing.suggest_credit_limit() suggests.",
						 &billing_credit_limit_floor_micros, "10000000");
	money_define_setting("billing.credit_limit_cap_micros",
						 "Highest credit limit billing.suggest_credit_limit() suggests.",
						 &billing_credit_limit_cap_micros, "1000000000");
	settings_define_int("billing.overdue_grace_days",
						"Days of grace after an invoice's due date before its account is overdue (-1: never).",
						"An account's own policy (billing.set_overdue_policy) comes first.",
						&billing_overdue_grace_days, -1, -1, 365, 0);
	settings_define_string("billing.seller_details",
						   "The seller on invoices: billing details as JSON text (empty: none).",
						   NULL, &billing_seller_details, "", invoice_check_seller);
	settings_define_string("billing.invoice_number_prefix",
						   "Text before an invoice's number in its document.",
						   NULL, &billing_invoice_number_prefix, "", check_number_prefix);
	settings_define_string("billing.credit_note_number_prefix",
						   "Text before a credit note's number in its document.",
						   NULL, &billing_credit_note_number_prefix, "", check_number_prefix);
}
