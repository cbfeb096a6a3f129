/* Money: checked arithmetic and exact decimal rendering of micros. */
#include "postgres.h"

#include "common/int.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"

#include "money.h"
#include "settings.h"

/* op(a, b) of common/int.h, refused (22023) when it overflows */
static inline int64
money_checked(bool (*op) (int64, int64, int64 *), int64 a, int64 b)
{
	int64		r;

	if (op(a, b, &r))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("amount out of range"),
				 errdetail("Amounts are integer micros and must fit in a bigint.")));
	return r;
}

int64
money_add(int64 a, int64 b)
{
	return money_checked(pg_add_s64_overflow, a, b);
}

int64
money_mul(int64 a, int64 b)
{
	return money_checked(pg_mul_s64_overflow, a, b);
}

/*
 * The one rounding of a discount (docs/pricing.md): (micros x ppm + 500000)
 * / 1000000, half-up for amounts >= 0, in 128 bits so that no product
 * overflows before the division. Estimates, holds and settlements all price
 * a discounted component through here.
 */
int64
money_scale_ppm(int64 micros, int32 ppm)
{
	int128		r = ((int128) micros * ppm + MICROS_PER_UNIT / 2) / MICROS_PER_UNIT;

	Assert(micros >= 0 && ppm >= 0);
	if (r > PG_INT64_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("amount out of range"),
				 errdetail("Amounts are integer micros and must fit in a bigint.")));
	return (int64) r;
}

void
money_require_positive(int64 amount, const char *what)
{
	if (amount <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be positive", what),
				 errdetail("Got " INT64_FORMAT " micros.", amount)));
}

void
money_append(StringInfo buf, int64 micros)
{
	/* work on the magnitude as uint64 so that INT64_MIN renders too */
	uint64		mag = micros < 0 ? (uint64) 0 - (uint64) micros : (uint64) micros;
	uint64		frac = mag % 1000000;
	char		digits[7];
	int			len = 6;

	if (micros < 0)
		appendStringInfoChar(buf, '-');
	appendStringInfo(buf, UINT64_FORMAT, mag / 1000000);
	if (frac == 0)
		return;
	snprintf(digits, sizeof(digits), "%06u", (unsigned) frac);
	while (digits[len - 1] == '0')
		len--;
	appendStringInfo(buf, ".%.*s", len, digits);
}

char *
money_format(int64 micros)
{
	StringInfoData buf;

	initStringInfo(&buf);
	money_append(&buf, micros);
	return buf.data;
}

/* billing._units(micros): money_format() as a numeric, for billing's SQL */
PG_FUNCTION_INFO_V1(billing_units);
Datum
billing_units(PG_FUNCTION_ARGS)
{
	return DirectFunctionCall3(numeric_in, CStringGetDatum(money_format(PG_GETARG_INT64(0))),
							   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
}

bool
money_currency_valid(const char *code)
{
	return code != NULL && strlen(code) == 3 &&
		strspn(code, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == 3;
}

static bool
check_micros_setting(char **newval, void **extra, GucSource source)
{
	const char *c = *newval;

	/* digits only: no sign, no spaces, and no more than fit an int64 */
	if (*c == '\0' || strspn(c, "0123456789") != strlen(c) ||
		strlen(c) > 19 || (strlen(c) == 19 && strcmp(c, "9223372036854775807") > 0))
	{
		GUC_check_errdetail("A setting in micros is a whole number from 0 to 9223372036854775807.");
		return false;
	}
	return true;
}

void
money_define_setting(const char *name, const char *short_desc, char **var, const char *boot_micros)
{
	settings_define_string(name, short_desc, "In micros: 1 USD = 1000000.", var, boot_micros,
						   check_micros_setting);
}

int64
money_setting(const char *value)
{
	return pg_strtoint64(value);	/* checked when set */
}
