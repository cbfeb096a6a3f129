/* billing: settings (GUCs) shared by the modules. */
#ifndef BILLING_H
#define BILLING_H

#include "postgres.h"

extern int	billing_low_balance_floor_micros;
extern int	billing_low_balance_factor;
extern int	billing_low_balance_window;		/* seconds */
extern int	billing_balance_slices;
extern int	billing_auto_topup_max_failures;
extern int	billing_auto_topup_max_per_day;
extern char *billing_catalog_currency;
extern char *billing_timezone;
extern int	billing_invoice_due_days;
extern int	billing_credit_limit_floor_micros;
extern int	billing_credit_limit_cap_micros;

#include "fmgr.h"

/* Refuses (22023) a NULL in any of the first nargs arguments. */
extern void require_args(FunctionCallInfo fcinfo, int nargs);

#endif
