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
	Oid			types[3] = {INT8OID, TEXTOID, TEXTOID};
	Datum		values[3];

	values[0] = Int64GetDatum(account_id);
	values[1] = CStringGetTextDatum(type);
	values[2] = CStringGetTextDatum(payload_json);
	plan_exec(&plan, "SELECT billing._event($1, $2, $3::pg_catalog.jsonb)",
			  3, types, values, NULL, false, 1);
	return spi_int64(1);
}
