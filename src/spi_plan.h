/* Prepared SPI plans, kept for the life of the backend. */
#ifndef BILLING_SPI_PLAN_H
#define BILLING_SPI_PLAN_H

#include "postgres.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/timestamp.h"

/*
 * Runs sql with the given arguments. The plan is prepared on first use,
 * kept with SPI_keepplan in *cache and reused afterwards. nulls may be NULL.
 * Returns the SPI result code; errors out on an SPI failure. A count other
 * than 0 stops an INSERT ... RETURNING before its AFTER STATEMENT triggers.
 */
extern int	plan_exec(SPIPlanPtr *cache, const char *sql, int nargs, const Oid *types,
					  Datum *values, const char *nulls, bool read_only, long count);

/*
 * One argument of a plan: its type, its value, and whether it is NULL.
 * plan_run() takes them as one list, so that type, value and null stay
 * together: plan_run(&plan, sql, false, 0, PLAN_ARGS(ARG_INT8(id), ARG_TEXT(key))).
 */
typedef struct PlanArg
{
	Oid			type;
	Datum		value;
	bool		isnull;
} PlanArg;

#define ARG_INT8(x)	((PlanArg) {INT8OID, Int64GetDatum(x), false})
#define ARG_INT4(x)	((PlanArg) {INT4OID, Int32GetDatum(x), false})
#define ARG_BOOL(x)	((PlanArg) {BOOLOID, BoolGetDatum(x), false})
#define ARG_TSTZ(x)	((PlanArg) {TIMESTAMPTZOID, TimestampTzGetDatum(x), false})
/* an argument of type oid given as a Datum (a text or jsonb argument of the caller's) */
#define ARG_DATUM(oid, d) ((PlanArg) {(oid), (d), false})
/* a NULL of type oid */
#define ARG_NULL(oid) ((PlanArg) {(oid), (Datum) 0, true})
/* text of a C string; NULL for NULL */
#define ARG_TEXT(s)	plan_arg_text(s)
/* an optional id: NULL for 0 */
#define ARG_ID(x)	plan_arg_id(x)
#define PLAN_ARGS(...) \
	(int) (sizeof((PlanArg[]) {__VA_ARGS__}) / sizeof(PlanArg)), (PlanArg[]) {__VA_ARGS__}

extern PlanArg plan_arg_text(const char *s);
extern PlanArg plan_arg_id(int64 id);

/* plan_exec with its arguments as a list of PlanArg (at most PLAN_MAX_ARGS) */
#define PLAN_MAX_ARGS 16
extern int	plan_run(SPIPlanPtr *cache, const char *sql, bool read_only, long count,
					 int nargs, const PlanArg *args);

/* Column n (1-based) of row 0 of SPI_tuptable; *isnull set when given. */
extern Datum spi_col(int n, bool *isnull);
extern int64 spi_int64(int n);	/* errors on NULL */
extern char *spi_text(int n);	/* NULL on NULL */

#endif
