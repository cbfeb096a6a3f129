/*
 * The transition trigger of billing.requests (BEFORE UPDATE, per row).
 *
 * Every state change of a request goes through here, whether it comes from
 * complete_request() or from a backend's plain UPDATE: illegal transitions
 * are refused, and reaching a final state settles the request (hold
 * released, cost charged) and flips its metadata from cost_estimate to cost.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/jsonb.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "errors.h"
#include "jsonout.h"
#include "pricing/pricing.h"
#include "requests/requests.h"
#include "tables.h"

/*
 * The columns the trigger reads (tables.h), by attribute number, so that no
 * row looks a name up. They are resolved once per backend: a relation's
 * attribute numbers never change, so only another relation (the extension
 * re-created) resolves them again.
 */
/* columns a transition may not touch */
static const RequestColumn frozen_columns[] = {
	DR_ACCOUNT_ID, DR_REQUEST_ID, DR_MODEL, DR_PROVIDER, DR_PARAMS, DR_COST_ESTIMATE,
	DR_HOLD, DR_CURRENCY, DR_POSTPAID, DR_IDEMPOTENCY_KEY, DR_CREATED_AT,
	DR_COMPLETED_AT, DR_PRICE_ID, DR_SCOPE, DR_PRICE_BOOK, DR_DISCOUNT_ID
};

static Oid	attnums_relid = InvalidOid;
static AttrNumber attnums[DR_COLUMNS];

static void
attnums_resolve(Relation rel)
{
	if (RelationGetRelid(rel) == attnums_relid)
		return;
	tables_attnums(rel, requests_columns, DR_COLUMNS, attnums);
	attnums_relid = RelationGetRelid(rel);
}

typedef struct RowAccess
{
	HeapTuple	tuple;
	TupleDesc	desc;
} RowAccess;

static Datum
col(const RowAccess *row, RequestColumn c, bool *isnull)
{
	return heap_getattr(row->tuple, attnums[c], row->desc, isnull);
}

static char *
col_text(const RowAccess *row, RequestColumn c)
{
	bool		isnull;
	Datum		d = col(row, c, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

static bool
attr_changed(const RowAccess *o, const RowAccess *n, AttrNumber attno)
{
	Form_pg_attribute att = TupleDescAttr(o->desc, attno - 1);
	bool		onull,
				nnull;
	Datum		od = heap_getattr(o->tuple, attno, o->desc, &onull);
	Datum		nd = heap_getattr(n->tuple, attno, n->desc, &nnull);

	if (onull || nnull)
		return onull != nnull;
	return !datum_image_eq(od, nd, att->attbyval, att->attlen);
}

static bool
col_changed(const RowAccess *o, const RowAccess *n, RequestColumn c)
{
	return attr_changed(o, n, attnums[c]);
}

/* Whether the UPDATE leaves every column as it was (a retried UPDATE). */
static bool
row_unchanged(const RowAccess *o, const RowAccess *n)
{
	for (int i = 0; i < o->desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(o->desc, i);

		if (!att->attisdropped && attr_changed(o, n, i + 1))
			return false;
	}
	return true;
}

RequestStage
request_stage(const char *status)
{
	if (strcmp(status, "queued") == 0)
		return REQUEST_QUEUED;
	if (strcmp(status, "in_progress") == 0)
		return REQUEST_IN_PROGRESS;
	if (strcmp(status, "completed") == 0 || strcmp(status, "failed") == 0 ||
		strcmp(status, "cancelled") == 0)
		return REQUEST_FINISHED;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid request status \"%s\"", status),
			 errhint("A request is queued, in_progress, completed, failed or cancelled.")));
	return REQUEST_QUEUED;		/* keep compiler quiet */
}

/* billing._request_stage(status): request_stage for SQL (0, 1, 2), to check that SQL agrees */
PG_FUNCTION_INFO_V1(billing_request_stage);
Datum
billing_request_stage(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32((int32) request_stage(text_to_cstring(PG_GETARG_TEXT_PP(0))));
}

/*
 * The effective cost of the outputs, at the price of the request's start
 * (docs/pricing.md, "Work in flight"), whatever became of the model since.
 */
static int64
effective_cost(const RowAccess *n, const char *routing_provider, PriceRoute *route)
{
	bool		isnull;
	Datum		outputs = col(n, DR_OUTPUTS, &isnull);
	int64		price_id;
	int64		discount_id;
	char	   *currency = col_text(n, DR_CURRENCY);
	int64		cost;

	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("outputs are required to complete a request")));
	json_require_object(outputs, "outputs");
	/* NULL only for a 0.1.0 request whose price version was gone at upgrade */
	price_id = DatumGetInt64(col(n, DR_PRICE_ID, &isnull));
	if (isnull)
		price_id = 0;
	discount_id = DatumGetInt64(col(n, DR_DISCOUNT_ID, &isnull));
	if (isnull)
		discount_id = 0;
	pricing_settlement_route(col_text(n, DR_MODEL), col_text(n, DR_PROVIDER), price_id,
							 col_text(n, DR_PRICE_BOOK), discount_id, routing_provider,
							 DatumGetTimestampTz(col(n, DR_CREATED_AT, &isnull)), route);
	if (strcmp(route->currency, currency) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("provider \"%s\" prices model \"%s\" in %s, the request is in %s",
						route->provider, route->model, route->currency, currency)));
	cost = pricing_route_cost(route, DatumGetJsonbP(col(n, DR_PARAMS, &isnull)),
							  DatumGetJsonbP(outputs), NULL);
	return cost;
}

PG_FUNCTION_INFO_V1(billing_requests_transition);
Datum
billing_requests_transition(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	RowAccess	o,
				n;
	char	   *old_status;
	char	   *new_status;
	Datum		routing;
	char	   *routing_provider;
	int64		request_id;
	int64		cost;
	int64		provider_cost;
	bool		costed;
	PriceRoute	route;
	bool		isnull;
	int			cols[4];
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event) || !TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		elog(ERROR, "billing.requests_transition() must run BEFORE UPDATE FOR EACH ROW");

	o.tuple = td->tg_trigtuple;
	n.tuple = td->tg_newtuple;
	o.desc = n.desc = RelationGetDescr(td->tg_relation);
	attnums_resolve(td->tg_relation);
	old_status = col_text(&o, DR_STATUS);
	new_status = col_text(&n, DR_STATUS);
	request_id = DatumGetInt64(col(&o, DR_REQUEST_ID, &isnull));
	/*
	 * BEFORE triggers run ahead of the NOT NULL checks: the columns a backend
	 * may set are checked here, so that bad values are 22023 (docs/security.md)
	 */
	if (new_status == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the status of a request cannot be null"),
				 errhint("A request is queued, in_progress, completed, failed or cancelled.")));
	routing = col(&n, DR_ROUTING, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the routing of a request cannot be null"),
				 errhint("Use '{}' for a request without routing details.")));
	json_require_object(routing, "routing");
	routing_provider = jsonb_get_text(routing, "provider");
	pricing_check_provider(routing_provider);

	if (request_stage(old_status) == REQUEST_FINISHED)
	{
		/* a retried UPDATE (same state, same values) replays: nothing moves */
		if (row_unchanged(&o, &n))
			return PointerGetDatum(n.tuple);
		ereport(ERROR,
				(errcode(ERRCODE_BILLING_CONFLICT),
				 errmsg("request " INT64_FORMAT " is already %s", request_id, old_status),
				 errdetail("A finished request never changes; only an UPDATE that repeats its"
						   " final state and values is accepted, as a replay.")));
	}
	if (request_stage(new_status) < request_stage(old_status))
		ereport(ERROR,
				(errcode(ERRCODE_BILLING_CONFLICT),
				 errmsg("request " INT64_FORMAT " cannot go from %s back to %s",
						request_id, old_status, new_status)));
	for (size_t i = 0; i < lengthof(frozen_columns); i++)
		if (col_changed(&o, &n, frozen_columns[i]))
			ereport(ERROR,
					(errcode(ERRCODE_BILLING_CONFLICT),
					 errmsg("column \"%s\" of request " INT64_FORMAT " cannot be changed",
							requests_columns[frozen_columns[i]].name, request_id)));

	/*
	 * a reported upstream cost is checked on every transition, so that no
	 * request keeps one that would stop it from settling later
	 */
	costed = pricing_reported_cost(routing, &provider_cost);
	if (request_stage(new_status) != REQUEST_FINISHED)
	{
		if (col_changed(&o, &n, DR_COST) || col_changed(&o, &n, DR_PROVIDER_COST))
			ereport(ERROR,
					(errcode(ERRCODE_BILLING_CONFLICT),
					 errmsg("an unfinished request has no cost yet")));
		return PointerGetDatum(n.tuple);
	}

	/* reaching a final state: price it and settle */
	if (strcmp(new_status, "completed") == 0)
	{
		if (col_changed(&o, &n, DR_COST))
			ereport(ERROR,
					(errcode(ERRCODE_BILLING_CONFLICT),
					 errmsg("the cost of a completed request is computed from its outputs")));
		SPI_connect();
		cost = effective_cost(&n, routing_provider, &route);
		/* else the executing provider's cost at the request's start */
		costed = costed ||
			pricing_provider_cost(route.model, route.provider, route.media, route.currency,
								  DatumGetTimestampTz(col(&n, DR_CREATED_AT, &isnull)),
								  DatumGetJsonbP(col(&n, DR_PARAMS, &isnull)),
								  DatumGetJsonbP(col(&n, DR_OUTPUTS, &isnull)), &provider_cost);
	}
	else
	{
		Datum		charge = col(&n, DR_COST, &isnull);

		/*
		 * failed: only an explicit partial charge, at most the estimate (a
		 * part of the work cannot cost more than all of it); cancelled:
		 * nothing
		 */
		cost = isnull ? 0 : DatumGetInt64(charge);
		if (cost < 0 || (cost != 0 && strcmp(new_status, "cancelled") == 0) ||
			cost > DatumGetInt64(col(&o, DR_COST_ESTIMATE, &isnull)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid charge of " INT64_FORMAT " micros for a %s request",
							cost, new_status),
					 errdetail("A failed request may be charged from zero up to its estimate;"
							   " a cancelled one is charged nothing.")));
		/* failed or cancelled: only a reported cost, nothing priced the work */
		SPI_connect();
	}
	request_settle(DatumGetInt64(col(&o, DR_ACCOUNT_ID, &isnull)), request_id,
				   col_text(&o, DR_SCOPE), DatumGetInt64(col(&o, DR_HOLD, &isnull)), cost);
	SPI_finish();

	cols[0] = attnums[DR_HOLD];
	values[0] = Int64GetDatum(0);
	cols[1] = attnums[DR_COST];
	values[1] = Int64GetDatum(cost);
	cols[2] = attnums[DR_COMPLETED_AT];
	values[2] = TimestampTzGetDatum(GetCurrentTimestamp());
	cols[3] = attnums[DR_PROVIDER_COST];
	values[3] = Int64GetDatum(costed ? provider_cost : 0);
	nulls[3] = !costed;
	return PointerGetDatum(heap_modify_tuple_by_cols(n.tuple, n.desc, 4, cols, values, nulls));
}
