/* Money is an int64 number of micros (1/1,000,000 of the currency unit). */
#ifndef BILLING_MONEY_H
#define BILLING_MONEY_H

#include "postgres.h"

#include "lib/stringinfo.h"

#define MICROS_PER_UNIT INT64CONST(1000000)

/* a + b and a * b, raising 22023 "amount out of range" on overflow */
extern int64 money_add(int64 a, int64 b);
extern int64 money_mul(int64 a, int64 b);
/* micros x ppm / 1,000,000, rounded half-up (a discount); 22023 on overflow */
extern int64 money_scale_ppm(int64 micros, int32 ppm);
/* Refuses (22023) an amount that is not > 0; what names the argument. */
extern void money_require_positive(int64 amount, const char *what);
/* Exact decimal of micros in currency units: 210000 -> "0.21", -5 -> "-0.000005". */
extern char *money_format(int64 micros);
/* Appends money_format(micros) to buf. */
extern void money_append(StringInfo buf, int64 micros);
/* Is code a currency billing accepts: three upper-case letters (ISO 4217 form)? */
extern bool money_currency_valid(const char *code);

/*
 * A setting in micros. PostgreSQL's integer settings stop at 2^31 - 1
 * (2147 units), so these are string settings that must hold a whole number
 * from 0 to 2^63 - 1, checked when set (22023); money_setting() reads one.
 */
extern void money_define_setting(const char *name, const char *short_desc, char **var,
								 const char *boot_micros);
extern int64 money_setting(const char *value);

#endif
