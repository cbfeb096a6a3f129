/* Prepared SPI plans, kept for the life of the backend. */
#ifndef BILLING_SPI_PLAN_H
#define BILLING_SPI_PLAN_H

#include "postgres.h"
#include "executor/spi.h"

/*
 * Runs sql with the given arguments. The plan is prepared on first use,
 * kept with SPI_keepplan in *cache and reused afterwards. nulls may be NULL.
 * Returns the SPI result code; errors out on an SPI failure. A count other
 * than 0 stops an INSERT ... RETURNING before its AFTER STATEMENT triggers.
 */
extern int	plan_exec(SPIPlanPtr *cache, const char *sql, int nargs, const Oid *types,
					  Datum *values, const char *nulls, bool read_only, long count);

/* Column n (1-based) of row 0 of SPI_tuptable; *isnull set when given. */
extern Datum spi_col(int n, bool *isnull);
extern int64 spi_int64(int n);	/* errors on NULL */
extern char *spi_text(int n);	/* NULL on NULL */

#endif
