/* Prepared SPI plans kept for the life of the backend. */
#include "postgres.h"

#include "executor/spi.h"
#include "utils/builtins.h"

#include "spi_plan.h"

int
plan_exec(SPIPlanPtr *cache, const char *sql, int nargs, const Oid *types,
		  Datum *values, const char *nulls, bool read_only, long count)
{
	int			rc;

	if (*cache == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(sql, nargs, (Oid *) types);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		*cache = plan;
	}
	rc = SPI_execute_plan(*cache, values, nulls, read_only, count);
	if (rc < 0)
		elog(ERROR, "SPI_execute_plan failed for \"%s\": %s", sql,
			 SPI_result_code_string(rc));
	return rc;
}

PlanArg
plan_arg_text(const char *s)
{
	PlanArg		a = {TEXTOID, s ? CStringGetTextDatum(s) : (Datum) 0, s == NULL};

	return a;
}

PlanArg
plan_arg_id(int64 id)
{
	PlanArg		a = {INT8OID, Int64GetDatum(id), id == 0};

	return a;
}

int
plan_run(SPIPlanPtr *cache, const char *sql, bool read_only, long count,
		 int nargs, const PlanArg *args)
{
	Oid			types[PLAN_MAX_ARGS];
	Datum		values[PLAN_MAX_ARGS];
	char		nulls[PLAN_MAX_ARGS];

	if (nargs > PLAN_MAX_ARGS)
		elog(ERROR, "too many plan arguments: %d", nargs);
	for (int i = 0; i < nargs; i++)
	{
		types[i] = args[i].type;
		values[i] = args[i].value;
		nulls[i] = args[i].isnull ? 'n' : ' ';
	}
	return plan_exec(cache, sql, nargs, types, values, nulls, read_only, count);
}

Datum
spi_col(int n, bool *isnull)
{
	bool		null;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, n, &null);

	if (isnull)
		*isnull = null;
	return d;
}

int64
spi_int64(int n)
{
	bool		isnull;
	Datum		d = spi_col(n, &isnull);

	if (isnull)
		elog(ERROR, "unexpected NULL in column %d", n);
	return DatumGetInt64(d);
}

char *
spi_text(int n)
{
	bool		isnull;
	Datum		d = spi_col(n, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}
