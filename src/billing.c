/* billing: the module entry point; argument helpers shared by the modules. */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"

#include "billing.h"
#include "invoice/invoice.h"
#include "ledger/ledger.h"
#include "pricing/pricing.h"
#include "topup/topup.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/* Each module defines its own settings; the prefix is billing's alone. */
void
_PG_init(void)
{
	slices_init();
	pricing_init();
	topup_init();
	invoice_init();
	MarkGUCPrefixReserved("billing");
}

/*
 * billing._setting(name): a setting's value for billing's SQL. Being C, the
 * call loads the library, so billing's settings are defined in any session.
 */
PG_FUNCTION_INFO_V1(billing_setting);
Datum
billing_setting(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));

	PG_RETURN_TEXT_P(cstring_to_text(GetConfigOptionByName(name, NULL, false)));
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
