/* Reading and checking the arguments of billing's SQL-callable C functions. */
#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "args.h"
#include "errors.h"
#include "spi_plan.h"

void
args_require(FunctionCallInfo fcinfo, int nargs)
{
	for (int i = 0; i < nargs; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("argument %d of %s must not be null", i + 1,
							get_func_name(fcinfo->flinfo->fn_oid))));
}

char *
args_text(FunctionCallInfo fcinfo, int argno)
{
	return PG_ARGISNULL(argno) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

char *
args_text_bounded(FunctionCallInfo fcinfo, int argno, const char *what, int maxlen)
{
	char	   *s = args_text(fcinfo, argno);

	if (s != NULL && (strlen(s) < 1 || strlen(s) > (size_t) maxlen))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be 1 to %d characters long", what, maxlen)));
	return s;
}

void
args_check_idempotency_key(const char *key)
{
	if (key != NULL && (key[0] == '\0' || strlen(key) > 256))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("idempotency key must have 1 to 256 characters")));
}

int64
args_key_replay(const char *key, const char *what, const char *verb)
{
	if (SPI_processed == 0)
		return 0;
	if (!DatumGetBool(spi_col(2, NULL)))
		ereport(ERROR,
				(errcode(ERRCODE_BILLING_CONFLICT),
				 errmsg("idempotency key \"%s\" was already used with other parameters", key),
				 errdetail("%s " INT64_FORMAT " was %s with this key.", what, spi_int64(1), verb)));
	return spi_int64(1);
}
