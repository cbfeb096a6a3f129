/*
 * The durable event log (docs/events.md): the C side calls the same insert
 * as the SQL functions, billing._event, through a kept plan.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"

#include "events.h"
#include "spi_plan.h"

int64
event_emit(int64 account_id, const char *type, const char *payload_json)
{
	static SPIPlanPtr plan;

	plan_run(&plan, "SELECT billing._event($1, $2, $3::pg_catalog.jsonb)", false, 1,
			 PLAN_ARGS(ARG_INT8(account_id), ARG_TEXT(type), ARG_TEXT(payload_json)));
	return spi_int64(1);
}
