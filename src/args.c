/* Reading and checking the arguments of billing's SQL-callable functions (args.h). */
#include "postgres.h"

#include "access/htup_details.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "args.h"
#include "errors.h"
#include "spi_plan.h"

/* Refuses (22023) a NULL where the parameter name must have a value. */
static void
refuse_null(const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s must not be null", name)));
}

void
args_require_arg(FunctionCallInfo fcinfo, int argno)
{
	Oid			fn = fcinfo->flinfo->fn_oid;
	HeapTuple	proc;
	char	  **names = NULL;
	Oid		   *types;
	char	   *modes;

	if (!PG_ARGISNULL(argno))
		return;
	/* the parameter's name, looked up only on the way to the error */
	proc = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	if (HeapTupleIsValid(proc))
	{
		if (get_func_arg_info(proc, &types, &names, &modes) <= argno)
			names = NULL;
		ReleaseSysCache(proc);
	}
	if (names != NULL && names[argno] != NULL && names[argno][0] != '\0')
		refuse_null(names[argno]);
	refuse_null(psprintf("argument %d of %s", argno + 1, get_func_name(fn)));
}

void
args_require(FunctionCallInfo fcinfo, int nargs)
{
	for (int i = 0; i < nargs; i++)
		args_require_arg(fcinfo, i);
}

/*
 * billing._not_null(names, VARIADIC values): refuses (22023) the first NULL
 * of values, naming it by its place in names (a comma-separated list); the
 * NULL refusal of billing's PL/pgSQL functions.
 */
PG_FUNCTION_INFO_V1(billing_not_null);
Datum
billing_not_null(PG_FUNCTION_ARGS)
{
	for (int i = 1; i < PG_NARGS(); i++)
	{
		char	   *names;
		char	   *name;

		if (!PG_ARGISNULL(i))
			continue;
		names = PG_ARGISNULL(0) ? pstrdup("") : text_to_cstring(PG_GETARG_TEXT_PP(0));
		name = strtok(names, ", ");
		for (int k = 1; k < i && name != NULL; k++)
			name = strtok(NULL, ", ");
		refuse_null(name != NULL ? name : psprintf("argument %d", i));
	}
	PG_RETURN_VOID();
}

char *
args_text(FunctionCallInfo fcinfo, int argno)
{
	return PG_ARGISNULL(argno) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

bool
args_length_ok(const char *s, int len, int maxlen)
{
	return len > 0 && (len <= maxlen || pg_mbstrlen_with_len(s, len) <= maxlen);
}

void
args_check_length(const char *s, const char *what, int maxlen)
{
	if (s != NULL && !args_length_ok(s, strlen(s), maxlen))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must have 1 to %d characters", what, maxlen)));
}

char *
args_text_bounded(FunctionCallInfo fcinfo, int argno, const char *what, int maxlen)
{
	char	   *s = args_text(fcinfo, argno);

	args_check_length(s, what, maxlen);
	return s;
}

void
args_check_idempotency_key(const char *key)
{
	args_check_length(key, "idempotency key", ARGS_KEY_MAX);
}

/*
 * billing._check_length(value, what, maxlen): args_check_length for SQL; a
 * NULL value passes, a NULL maxlen is ARGS_KEY_MAX.
 */
PG_FUNCTION_INFO_V1(billing_check_length);
Datum
billing_check_length(PG_FUNCTION_ARGS)
{
	args_require_arg(fcinfo, 1);
	args_check_length(args_text(fcinfo, 0), text_to_cstring(PG_GETARG_TEXT_PP(1)),
					  PG_ARGISNULL(2) ? ARGS_KEY_MAX : PG_GETARG_INT32(2));
	PG_RETURN_VOID();
}

void
args_key_refuse(const char *key, const char *what, int64 id, const char *verb)
{
	ereport(ERROR,
			(errcode(ERRCODE_BILLING_CONFLICT),
			 errmsg("idempotency key \"%s\" was already used with other parameters", key),
			 errdetail("%s " INT64_FORMAT " was %s with this key.", what, id, verb)));
}

int64
args_key_replay(const char *key, const char *what, const char *verb)
{
	if (SPI_processed == 0)
		return 0;
	if (!DatumGetBool(spi_col(2, NULL)))
		args_key_refuse(key, what, spi_int64(1), verb);
	return spi_int64(1);
}

/*
 * billing._key_replay(key, same, what, id, verb): id when the row that key
 * made was made with the same parameters, else args_key_refuse; for SQL.
 * Not STRICT: a comparison that came out NULL is no replay.
 */
PG_FUNCTION_INFO_V1(billing_key_replay);
Datum
billing_key_replay(PG_FUNCTION_ARGS)
{
	int64		id;

	for (int i = 0; i < PG_NARGS(); i++)
		if (i != 1 && PG_ARGISNULL(i))
			elog(ERROR, "billing._key_replay: argument %d is null", i + 1);
	id = PG_GETARG_INT64(3);
	if (PG_ARGISNULL(1) || !PG_GETARG_BOOL(1))
		args_key_refuse(text_to_cstring(PG_GETARG_TEXT_PP(0)), text_to_cstring(PG_GETARG_TEXT_PP(2)),
						id, text_to_cstring(PG_GETARG_TEXT_PP(4)));
	PG_RETURN_INT64(id);
}
