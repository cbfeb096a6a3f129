/*
 * The transition of a request (request_transition) and the trigger of
 * billing.requests that applies it (BEFORE UPDATE, per row).
 *
 * Every state change of a request goes through request_transition, whether
 * it comes from complete_request() and its kin (finish.c: directly, or by an
 * UPDATE that fires the trigger) or from a backend's plain UPDATE: illegal
 * transitions are refused, and reaching a final state settles the request
 * (hold released, cost charged) and flips its metadata from cost_estimate
 * to cost.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "errors.h"
#include "jsonout.h"
#include "pricing/pricing.h"
#include "requests/requests.h"
#include "tables.h"

/*
 * The attribute numbers of the columns (tables.h), resolved once per backend:
 * a relation's attribute numbers never change, so only another relation
 * (the extension re-created) resolves them again.
 */
static Oid	attnums_relid = InvalidOid;
static AttrNumber attnums[DR_COLUMNS];

/* columns a transition may not touch */
static const RequestColumn frozen_columns[] = {
	DR_ACCOUNT_ID, DR_REQUEST_ID, DR_MODEL, DR_PROVIDER, DR_PARAMS, DR_COST_ESTIMATE,
	DR_HOLD, DR_CURRENCY, DR_POSTPAID, DR_IDEMPOTENCY_KEY, DR_CREATED_AT,
	DR_COMPLETED_AT, DR_PRICE_ID, DR_SCOPE, DR_PRICE_BOOK, DR_DISCOUNT_ID
};

static void
attnums_resolve(Relation rel)
{
	if (RelationGetRelid(rel) == attnums_relid)
		return;
	tables_attnums(rel, requests_columns, DR_COLUMNS, attnums);
	attnums_relid = RelationGetRelid(rel);
}

static char *
col_text(const RequestRow *row, RequestColumn c)
{
	return row->n[c] ? NULL : TextDatumGetCString(row->v[c]);
}

static int64
col_int64(const RequestRow *row, RequestColumn c)
{
	return row->n[c] ? 0 : DatumGetInt64(row->v[c]);
}

static bool
col_changed(const RequestRow *o, const RequestRow *n, RequestColumn c)
{
	static int16 lens[DR_COLUMNS];
	static bool byvals[DR_COLUMNS];

	if (lens[c] == 0)
		get_typlenbyval(requests_columns[c].type, &lens[c], &byvals[c]);
	if (o->n[c] || n->n[c])
		return o->n[c] != n->n[c];
	return !datum_image_eq(o->v[c], n->v[c], byvals[c], lens[c]);
}

/* Whether the UPDATE leaves every column as it was (a retried UPDATE). */
static bool
row_unchanged(HeapTuple o, HeapTuple n, TupleDesc desc)
{
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		bool		onull,
					nnull;
		Datum		od,
					nd;

		if (att->attisdropped)
			continue;
		od = heap_getattr(o, i + 1, desc, &onull);
		nd = heap_getattr(n, i + 1, desc, &nnull);
		if (onull != nnull ||
			(!onull && !datum_image_eq(od, nd, att->attbyval, att->attlen)))
			return false;
	}
	return true;
}

/*
 * The effective cost of the outputs, at the price of the request's start
 * (docs/pricing.md, "Work in flight"), whatever became of the model since.
 */
static int64
effective_cost(const RequestRow *n, const char *routing_provider, PriceRoute *route)
{
	char	   *currency = col_text(n, DR_CURRENCY);

	if (n->n[DR_OUTPUTS])
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("outputs are required to complete a request")));
	json_require_object(n->v[DR_OUTPUTS], "outputs");
	/* price_id is NULL only for a 0.1.0 request whose price version was gone at upgrade */
	pricing_settlement_route(col_text(n, DR_MODEL), col_text(n, DR_PROVIDER),
							 col_int64(n, DR_PRICE_ID), col_text(n, DR_PRICE_BOOK),
							 col_int64(n, DR_DISCOUNT_ID), routing_provider,
							 DatumGetTimestampTz(n->v[DR_CREATED_AT]), route);
	if (strcmp(route->currency, currency) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("provider \"%s\" prices model \"%s\" in %s, the request is in %s",
						route->provider, route->model, route->currency, currency)));
	return pricing_route_cost(route, DatumGetJsonbP(n->v[DR_PARAMS]),
							  DatumGetJsonbP(n->v[DR_OUTPUTS]), NULL);
}

bool
request_transition(const RequestRow *o, RequestRow *n, bool replay)
{
	char	   *old_status = col_text(o, DR_STATUS);
	char	   *new_status = col_text(n, DR_STATUS);
	Datum		routing = n->v[DR_ROUTING];
	char	   *routing_provider;
	int64		request_id = col_int64(o, DR_REQUEST_ID);
	int64		cost;
	int64		provider_cost;
	bool		costed;
	PriceRoute	route;

	/*
	 * BEFORE triggers run ahead of the NOT NULL checks: the columns a backend
	 * may set are checked here, so that bad values are 22023 (docs/security.md)
	 */
	if (new_status == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the status of a request cannot be null"),
				 errhint(REQUEST_STATUS_HINT)));
	if (n->n[DR_ROUTING])
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
		if (replay)
			return false;
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
		if (col_changed(o, n, frozen_columns[i]))
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
		if (col_changed(o, n, DR_COST) || col_changed(o, n, DR_PROVIDER_COST))
			ereport(ERROR,
					(errcode(ERRCODE_BILLING_CONFLICT),
					 errmsg("an unfinished request has no cost yet")));
		return false;
	}

	/* reaching a final state: price it and settle */
	if (strcmp(new_status, "completed") == 0)
	{
		if (col_changed(o, n, DR_COST))
			ereport(ERROR,
					(errcode(ERRCODE_BILLING_CONFLICT),
					 errmsg("the cost of a completed request is computed from its outputs")));
		SPI_connect();
		cost = effective_cost(n, routing_provider, &route);
		/* else the executing provider's cost at the request's start */
		costed = costed ||
			pricing_provider_cost(route.model, route.provider, route.media, route.currency,
								  DatumGetTimestampTz(n->v[DR_CREATED_AT]),
								  DatumGetJsonbP(n->v[DR_PARAMS]),
								  DatumGetJsonbP(n->v[DR_OUTPUTS]), &provider_cost);
	}
	else
	{
		/*
		 * failed: only an explicit partial charge, at most the estimate (a
		 * part of the work cannot cost more than all of it); cancelled:
		 * nothing
		 */
		cost = col_int64(n, DR_COST);
		if (cost < 0 || (cost != 0 && strcmp(new_status, "cancelled") == 0) ||
			cost > col_int64(o, DR_COST_ESTIMATE))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid charge of " INT64_FORMAT " micros for a %s request",
							cost, new_status),
					 errdetail("A failed request may be charged from zero up to its estimate;"
							   " a cancelled one is charged nothing.")));
		/* failed or cancelled: only a reported cost, nothing priced the work */
		SPI_connect();
	}
	request_settle(col_int64(o, DR_ACCOUNT_ID), request_id, col_text(o, DR_SCOPE),
				   col_int64(o, DR_HOLD), cost);
	SPI_finish();

	n->v[DR_HOLD] = Int64GetDatum(0);
	n->v[DR_COST] = Int64GetDatum(cost);
	n->v[DR_COMPLETED_AT] = TimestampTzGetDatum(GetCurrentTimestamp());
	n->v[DR_PROVIDER_COST] = Int64GetDatum(costed ? provider_cost : 0);
	n->n[DR_HOLD] = n->n[DR_COST] = n->n[DR_COMPLETED_AT] = false;
	n->n[DR_PROVIDER_COST] = !costed;
	return true;
}

/* The slots of a tuple of billing.requests. */
static void
row_read(HeapTuple tuple, TupleDesc desc, RequestRow *row)
{
	for (int c = 0; c < DR_COLUMNS; c++)
		row->v[c] = heap_getattr(tuple, attnums[c], desc, &row->n[c]);
}

PG_FUNCTION_INFO_V1(billing_requests_transition);
Datum
billing_requests_transition(PG_FUNCTION_ARGS)
{
	static const RequestColumn settled[] = {DR_HOLD, DR_COST, DR_COMPLETED_AT, DR_PROVIDER_COST};
	TriggerData *td = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	RequestRow	o,
				n;
	bool		replay;
	int			cols[lengthof(settled)];
	Datum		values[lengthof(settled)];
	bool		nulls[lengthof(settled)];

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event) || !TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		elog(ERROR, "billing.requests_transition() must run BEFORE UPDATE FOR EACH ROW");

	desc = RelationGetDescr(td->tg_relation);
	attnums_resolve(td->tg_relation);
	row_read(td->tg_trigtuple, desc, &o);
	row_read(td->tg_newtuple, desc, &n);
	/* an unchanged row may be a replay: request_transition accepts a finished one */
	replay = !o.n[DR_STATUS] && row_unchanged(td->tg_trigtuple, td->tg_newtuple, desc);
	if (!request_transition(&o, &n, replay))
		return PointerGetDatum(td->tg_newtuple);
	for (size_t i = 0; i < lengthof(settled); i++)
	{
		cols[i] = attnums[settled[i]];
		values[i] = n.v[settled[i]];
		nulls[i] = n.n[settled[i]];
	}
	return PointerGetDatum(heap_modify_tuple_by_cols(td->tg_newtuple, desc, lengthof(settled),
													 cols, values, nulls));
}
