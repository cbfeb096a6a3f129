/*
 * Balance alerts (docs/limits.md): a threshold fires a balance_alert event
 * once when the available amount falls below it, and is armed again once
 * the amount is at or above it. The armed state is a row per threshold,
 * locked only by a change that crosses it: a debit that finds it armed
 * above the amount disarms it (two debits crossing at once wait on that
 * row, and the second finds it disarmed: one event); a credit re-arms those
 * at or below the amount. Accounts without alerts (account_has_alerts())
 * skip all of it.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"

#include "events.h"
#include "ledger/ledger.h"
#include "spi_plan.h"

void
alerts_after_change(const Account *acct, int64 delta, int64 available)
{
	static SPIPlanPtr fire_plan;
	static SPIPlanPtr arm_plan;
	uint64		fired;
	int64	   *thresholds;

	if (delta > 0)
	{
		plan_run(&arm_plan,
				 "UPDATE billing.balance_alerts SET armed = true"
				 " WHERE account_id = $1 AND NOT armed AND threshold_micros <= $2",
				 false, 0, PLAN_ARGS(ARG_INT8(acct->account_id), ARG_INT8(available)));
		return;
	}
	plan_run(&fire_plan,
			 "UPDATE billing.balance_alerts SET armed = false"
			 " WHERE account_id = $1 AND armed AND threshold_micros > $2"
			 " RETURNING threshold_micros",
			 false, 0, PLAN_ARGS(ARG_INT8(acct->account_id), ARG_INT8(available)));
	fired = SPI_processed;
	thresholds = palloc(sizeof(int64) * Max(fired, 1));
	for (uint64 i = 0; i < fired; i++)
	{
		bool		isnull;

		thresholds[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
													SPI_tuptable->tupdesc, 1, &isnull));
	}
	for (uint64 i = 0; i < fired; i++)
		event_emit(acct->account_id, "balance_alert",
				   psprintf("{\"threshold_micros\":" INT64_FORMAT ",\"available_micros\":" INT64_FORMAT "}",
							thresholds[i], available));
}
