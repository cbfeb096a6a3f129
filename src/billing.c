/* billing: the module entry point, and billing._setting() for SQL. */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "invoice/invoice.h"
#include "ledger/ledger.h"
#include "ledger/slices.h"
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
