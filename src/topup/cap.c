/*
 * Auto top-up to a target, under a monthly cap (docs/topup.md):
 * the amount of a top-up that topup.c requests, under the account's top-up
 * lock. The month's sum is billing._topup_month, the one definition that
 * balance() and verify() share.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/date.h"
#include "utils/timestamp.h"

#include "events.h"
#include "jsonout.h"
#include "money.h"
#include "spi_plan.h"
#include "topup/topup.h"

/* The calendar month of billing.timezone a cap counts (billing._topup_month). */
typedef struct CapMonth
{
	Datum		month;			/* date: its first day */
	TimestampTz start;
	TimestampTz resets;
	int64		used;			/* its pending and succeeded top-ups */
	char	   *resets_text;
} CapMonth;

static void
cap_month(int64 account_id, TimestampTz now, CapMonth *m)
{
	static SPIPlanPtr plan;

	plan_run(&plan,
			 "SELECT month, month_start, resets_at, used_micros,"
			 " pg_catalog.to_char(resets_at, 'YYYY-MM-DD HH24:MI:SSOF')"
			 " FROM billing._topup_month($1, $2)",
			 false, 0, PLAN_ARGS(ARG_INT8(account_id), ARG_TSTZ(now)));
	m->month = spi_col(1, NULL);
	m->start = DatumGetTimestampTz(spi_col(2, NULL));
	m->resets = DatumGetTimestampTz(spi_col(3, NULL));
	m->used = spi_int64(4);
	m->resets_text = spi_text(5);
}

/*
 * The first refusal of a month for the cap: marks the month on the account
 * (auto_topup_capped_month) and writes the auto_topup_capped event. The
 * charge holds the account's slices: waiting for its row, which the cold
 * paths lock before the slices (complete_topup, reversals), could deadlock.
 * So a row locked right now is skipped, and the next refusal writes the
 * event.
 */
static void
capped_event(int64 account_id, int64 cap, int64 requested, const CapMonth *m)
{
	static SPIPlanPtr plan;
	StringInfoData buf;

	plan_run(&plan,
			 "WITH free AS (SELECT account_id FROM billing.accounts WHERE account_id = $1"
			 "              FOR NO KEY UPDATE SKIP LOCKED)"
			 " UPDATE billing.accounts a SET auto_topup_capped_month = $2"
			 "   FROM free WHERE a.account_id = free.account_id",
			 false, 0, PLAN_ARGS(ARG_INT8(account_id), ARG_DATUM(DATEOID, m->month)));
	if (SPI_processed == 0)
		return;
	initStringInfo(&buf);
	json_begin(&buf);
	json_add_int(&buf, "cap_micros", cap);
	json_add_int(&buf, "used_micros", m->used);
	json_add_int(&buf, "requested_micros", requested);
	json_add_time(&buf, "month_start", m->start, false);
	json_add_time(&buf, "resets_at", m->resets, false);
	json_end(&buf);
	event_emit(account_id, "auto_topup_capped", buf.data);
}

/* micros rounded up (up) or down to whole units of unit micros; v >= 0 */
static int64
round_units(int64 v, int64 unit, bool up)
{
	int64		r = v % unit;

	return r == 0 ? v : (up ? money_add(v - r, unit) : v - r);
}

/*
 * The monthly cap refused a top-up (docs/topup.md): said like the daily
 * guard, and the first refusal of a month writes one auto_topup_capped event.
 */
static void
report_month_cap(int elevel, int64 account_id, int64 cap, int64 used, int64 requested,
				 const char *resets_at)
{
	ereport(elevel,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("auto top-up refused: monthly cap reached"),
			 errdetail("Account " INT64_FORMAT " has a cap of %s a month, %s of it used;"
					   " a top-up of %s would pass it.",
					   account_id, money_format(cap), money_format(used), money_format(requested)),
			 errhint("The cap resets at %s; raise max_per_month_micros to top up sooner.",
					 resets_at)));
}

int64
topup_amount(int64 account_id, int64 amount, int64 target, int64 cap, int64 available,
			 int64 unit, const Datum *capped_month, TimestampTz now, bool *clamped)
{
	int64		want = amount;
	int64		left;
	CapMonth	month;

	*clamped = false;
	if (target > 0)
		want = Max(want, round_units(money_add(target, money_mul(available, -1)), unit, true));
	if (cap == 0)
		return want;
	cap_month(account_id, now, &month);
	if (want <= cap - month.used)
		return want;
	left = round_units(Max(cap - month.used, 0), unit, false);
	if (left >= amount)
	{
		*clamped = true;
		return left;
	}
	report_month_cap(LOG, account_id, cap, month.used, want, month.resets_text);
	report_month_cap(WARNING_CLIENT_ONLY, account_id, cap, month.used, want, month.resets_text);
	if (capped_month == NULL || DatumGetDateADT(*capped_month) != DatumGetDateADT(month.month))
		capped_event(account_id, cap, want, &month);
	return 0;
}
