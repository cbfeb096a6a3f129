/*
 * The request lifecycle: begin (admit and hold the estimate), complete, fail,
 * cancel, the one-shot charge, and the response metadata. Moving a request
 * to a final state (finish.c) goes through request_transition (trigger.c),
 * the transition trigger's own work, so a plain UPDATE from a backend
 * settles the same way.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/fmgrprotos.h"

#include "args.h"
#include "direct.h"
#include "errors.h"
#include "jsonout.h"
#include "ledger/ledger.h"
#include "ledger/slices.h"
#include "money.h"
#include "pricing/pricing.h"
#include "requests/requests.h"
#include "spi_plan.h"
#include "tables.h"
#include "topup/topup.h"

/* What the "metadata" object of an API response shows of a request. */
typedef struct RequestView
{
	int64		request_id;
	const char *status;
	const char *model;
	const char *currency;
	const char *provider;
	const char *provider_name;
	const char *executed_model;
	const char *upstream_id;
	const char *scope;			/* shown when set */
	int64		cost_estimate;
	int64		cost;			/* shown once the request is finished */
	int64		refunded;		/* shown when > 0 (response_metadata only) */
	bool		finished;
} RequestView;

static void
metadata_append(StringInfo buf, const RequestView *r)
{
	json_begin(buf);
	json_add_int(buf, "request_id", r->request_id);
	json_add_str(buf, "status", r->status);
	json_add_str(buf, "model", r->model);
	json_add_str(buf, "provider", r->provider);
	json_add_str(buf, "provider_name", r->provider_name);
	json_add_str(buf, "executed_model", r->executed_model);
	json_add_str(buf, "upstream_id", r->upstream_id);
	json_add_str(buf, "cost_currency", r->currency);
	if (r->scope)
		json_add_str(buf, "scope", r->scope);
	/* the flip: an estimate while the request runs, the cost once finished */
	if (r->finished)
	{
		json_add_money(buf, "cost", r->cost);
		json_add_int(buf, "cost_micros", r->cost);
		if (r->refunded > 0)
		{
			json_add_money(buf, "refunded", r->refunded);
			json_add_int(buf, "refunded_micros", r->refunded);
		}
	}
	else
	{
		json_add_money(buf, "cost_estimate", r->cost_estimate);
		json_add_int(buf, "cost_estimate_micros", r->cost_estimate);
	}
	json_end(buf);
}

/* The stage of a status (requests.h); an unknown status is refused. */
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
			 errhint(REQUEST_STATUS_HINT)));
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
 * The view of a request from its row (tables.h's slots; what the view shows
 * is read). The route's names, where routing gives none, are its route's
 * (pricing_route_names: none either when the route is gone). Inside SPI.
 */
static void
request_view_row(const RequestRow *row, RequestView *r)
{
	Datum		routing = row->v[DR_ROUTING];
	bool		has_routing = !row->n[DR_ROUTING];

	r->request_id = DatumGetInt64(row->v[DR_REQUEST_ID]);
	r->status = TextDatumGetCString(row->v[DR_STATUS]);
	r->model = TextDatumGetCString(row->v[DR_MODEL]);
	r->currency = TextDatumGetCString(row->v[DR_CURRENCY]);
	r->provider = has_routing ? jsonb_field_text(routing, "provider") : NULL;
	if (r->provider == NULL)
		r->provider = TextDatumGetCString(row->v[DR_PROVIDER]);
	r->provider_name = has_routing ? jsonb_field_text(routing, "provider_name") : NULL;
	r->executed_model = has_routing ? jsonb_field_text(routing, "executed_model") : NULL;
	r->upstream_id = has_routing ? jsonb_field_text(routing, "upstream_id") : NULL;
	r->cost_estimate = DatumGetInt64(row->v[DR_COST_ESTIMATE]);
	r->cost = row->n[DR_COST] ? 0 : DatumGetInt64(row->v[DR_COST]);
	r->scope = row->n[DR_SCOPE] ? NULL : TextDatumGetCString(row->v[DR_SCOPE]);
	r->finished = request_stage(r->status) == REQUEST_FINISHED;
	r->refunded = 0;
	if (r->provider_name == NULL || r->executed_model == NULL)
	{
		PriceRoute	names;

		pricing_route_names(r->model, r->provider, &names);
		if (r->provider_name == NULL)
			r->provider_name = names.provider_name;
		if (r->executed_model == NULL)
			r->executed_model = names.executed_model;
	}
}

/*
 * Loads the view of a request; PB404 when unknown. Inside SPI. Refunds are
 * looked up only when with_refunds (response_metadata): the settling paths
 * return metadata too and stay free of that lookup.
 *
 * The request's row and its route's names (billing.model_providers, from
 * pricing's cache) are read apart, not joined: on Citus a call delegated to
 * the account's worker with force_delegation may only run statements
 * filtered by that account in its colocation group, and a join with a
 * reference table (a colocation group of its own) is refused with 0A000.
 * The names are looked up only when the request's routing does not carry
 * both.
 */
static void
request_view_load(int64 account_id, int64 request_id, bool with_refunds, RequestView *r)
{
	static const RequestColumn shown[] = {DR_REQUEST_ID, DR_STATUS, DR_MODEL, DR_CURRENCY,
		DR_PROVIDER, DR_ROUTING, DR_COST_ESTIMATE, DR_COST, DR_SCOPE};
	static SPIPlanPtr plan;
	RequestRow	row;

	plan_run(&plan,
			 "SELECT request_id, status, model, currency, provider, routing,"
			 "       cost_estimate_micros, cost_micros, scope"
			 "  FROM billing.requests"
			 " WHERE account_id = $2 AND request_id = $1",
			 false, 0, PLAN_ARGS(ARG_INT8(request_id), ARG_INT8(account_id)));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_BILLING_NOT_FOUND),
				 errmsg("request " INT64_FORMAT " does not exist", request_id)));
	for (size_t i = 0; i < lengthof(shown); i++)
		row.v[shown[i]] = spi_col(i + 1, &row.n[shown[i]]);
	request_view_row(&row, r);
	r->refunded = with_refunds && r->cost > 0 ? request_refunded(account_id, request_id) : 0;
}

/*
 * The account of request_id; PB404 when unknown. Inside SPI. Every query
 * after it names the account too, which on Citus routes it to the one shard
 * that holds the request (requests are distributed by account_id).
 */
int64
request_account(int64 request_id)
{
	static SPIPlanPtr plan;

	plan_exec(&plan, "SELECT account_id FROM billing.requests WHERE request_id = $1",
			  1, (Oid[]) {INT8OID}, (Datum[]) {Int64GetDatum(request_id)}, NULL, false, 1);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_BILLING_NOT_FOUND),
				 errmsg("request " INT64_FORMAT " does not exist", request_id)));
	return spi_int64(1);
}

int64
request_refunded(int64 account_id, int64 request_id)
{
	static SPIPlanPtr plan;

	plan_run(&plan,
			 "SELECT COALESCE(pg_catalog.sum(amount_micros), 0)::bigint FROM billing.refunds"
			 " WHERE account_id = $1 AND request_id = $2",
			 false, 0, PLAN_ARGS(ARG_INT8(account_id), ARG_INT8(request_id)));
	return spi_int64(1);
}

/*
 * The usage entry of a request that cost cost (not 0): without the executor
 * while the direct path is open, else through ledger_post.
 */
static void
usage_record(const Account *acct, int64 request_id, int64 cost)
{
	if (direct_is_open())
		ledger_post_direct(acct->account_id, "usage", -cost, acct->postpaid, request_id);
	else
		ledger_post(acct->account_id, "usage", -cost, acct->postpaid, request_id, 0, 0, NULL, NULL);
}

void
request_settle(int64 account_id, int64 request_id, const char *scope, int64 hold, int64 cost)
{
	Account		acct;
	int64		delta;

	account_load(account_id, &acct, false);
	delta = money_add(hold, -cost);
	available_adjust(&acct, delta);
	limits_settle(&acct, scope, request_id, delta);
	if (cost != 0)
		usage_record(&acct, request_id, cost);
	if (cost > hold)
		topup_after_debit(&acct);
}

/* The metadata of view r as jsonb text, in the context "upper". */
static Datum
metadata_text(const RequestView *r, bool with_envelope, MemoryContext upper)
{
	StringInfoData buf;
	MemoryContext old = MemoryContextSwitchTo(upper);

	initStringInfo(&buf);
	if (with_envelope)
	{
		json_begin(&buf);
		json_add_int(&buf, "request_id", r->request_id);
		json_add_str(&buf, "status", r->status);
		json_key(&buf, "metadata");
	}
	metadata_append(&buf, r);
	if (with_envelope)
		json_end(&buf);
	MemoryContextSwitchTo(old);
	return PointerGetDatum(buf.data);
}

Datum
request_metadata(int64 account_id, int64 request_id, bool with_envelope, bool with_refunds,
				 MemoryContext upper)
{
	RequestView r;

	request_view_load(account_id, request_id, with_refunds, &r);
	return metadata_text(&r, with_envelope, upper);
}

Datum
request_row_metadata(const RequestRow *row, bool with_envelope, MemoryContext upper)
{
	RequestView r;

	request_view_row(row, &r);
	return metadata_text(&r, with_envelope, upper);
}

/*
 * The request an idempotency key already names, or 0. Refuses (PB409) the
 * key when it was used for another model, other params, another scope, or
 * (for a charge, outputs not NULL) other outputs.
 */
static int64
request_replay(int64 account_id, const char *key, const char *model, Datum params, Datum outputs,
			   const char *scope)
{
	static SPIPlanPtr plan;
	Datum		v[6] = {Int64GetDatum(account_id), CStringGetTextDatum(key),
		CStringGetTextDatum(model), params, outputs,
	scope ? CStringGetTextDatum(scope) : (Datum) 0};
	char		nulls[6] = {' ', ' ', ' ', ' ', outputs ? ' ' : 'n', scope ? ' ' : 'n'};

	plan_exec(&plan,
			  "SELECT request_id, model = $3 AND params = $4 AND scope IS NOT DISTINCT FROM $6"
			  "       AND ($5::jsonb IS NULL OR outputs IS NOT DISTINCT FROM $5)"
			  "  FROM billing.requests WHERE account_id = $1 AND idempotency_key = $2",
			  6, (Oid[]) {INT8OID, TEXTOID, TEXTOID, JSONBOID, JSONBOID, TEXTOID}, v, nulls, false, 0);
	return args_key_replay(key, "Request", "made");
}

static void
check_currency(const Account *acct, const PriceRoute *route)
{
	if (strcmp(acct->currency, route->currency) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model \"%s\" is priced in %s, account " INT64_FORMAT " pays in %s",
						route->model, route->currency, acct->account_id, acct->currency)));
}

/*
 * A new request row as the slots of tables.h: the account's and route's
 * columns, the key and the scope set, every other column NULL. The caller
 * sets what its state needs.
 */
static void
request_row(const Account *acct, const PriceRoute *route, Datum params, const char *key,
			const char *scope, Datum *v, bool *n)
{
	for (int c = 0; c < DR_COLUMNS; c++)
		n[c] = true;
#define SET(c, value) (v[c] = (value), n[c] = false)
	SET(DR_ACCOUNT_ID, Int64GetDatum(acct->account_id));
	SET(DR_MODEL, CStringGetTextDatum(route->model));
	SET(DR_PROVIDER, CStringGetTextDatum(route->provider));
	SET(DR_PARAMS, params);
	SET(DR_CURRENCY, CStringGetTextDatum(acct->currency));
	SET(DR_POSTPAID, BoolGetDatum(acct->postpaid));
	SET(DR_CREATED_AT, TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()));
	SET(DR_PRICE_ID, Int64GetDatum(route->price_id));
	if (key)
		SET(DR_IDEMPOTENCY_KEY, CStringGetTextDatum(key));
	if (scope)
		SET(DR_SCOPE, CStringGetTextDatum(scope));
	if (route->price_book)
		SET(DR_PRICE_BOOK, CStringGetTextDatum(route->price_book));
	if (route->discount_id)
		SET(DR_DISCOUNT_ID, Int64GetDatum(route->discount_id));
#undef SET
}

/*
 * The one writer of a new request row (request_row's slots): through the
 * direct path while it is open, else one INSERT of every column but
 * request_id (its identity gives it), built once from tables.h. Returns the
 * request's id, 0 when its idempotency key is taken (SPI only: the direct
 * path is never open for a keyed call).
 */
static int64
request_write(Datum *v, bool *n)
{
	static SPIPlanPtr plan;
	static char *sql;
	static Oid	types[DR_COLUMNS];
	Datum		values[DR_COLUMNS];
	char		nulls[DR_COLUMNS];
	int			nargs = 0;

	if (direct_is_open())
	{
		v[DR_REQUEST_ID] = Int64GetDatum(direct_next_id(DIRECT_REQUESTS));
		n[DR_REQUEST_ID] = false;
		direct_insert(DIRECT_REQUESTS, v, n);
		return DatumGetInt64(v[DR_REQUEST_ID]);
	}
	if (sql == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
		StringInfoData buf,
					params;

		initStringInfo(&buf);
		initStringInfo(&params);
		appendStringInfoString(&buf, "INSERT INTO billing.requests (");
		for (int c = 0; c < DR_COLUMNS; c++)
		{
			if (c == DR_REQUEST_ID)
				continue;
			types[nargs++] = requests_columns[c].type;
			appendStringInfo(&buf, "%s%s", nargs > 1 ? ", " : "", requests_columns[c].name);
			appendStringInfo(&params, "%s$%d", nargs > 1 ? ", " : "", nargs);
		}
		appendStringInfo(&buf, ") VALUES (%s)"
						 " ON CONFLICT (account_id, idempotency_key) WHERE idempotency_key IS NOT NULL"
						 " DO NOTHING RETURNING request_id", params.data);
		pfree(params.data);
		sql = buf.data;
		MemoryContextSwitchTo(old);
		nargs = 0;
	}
	for (int c = 0; c < DR_COLUMNS; c++)
	{
		if (c == DR_REQUEST_ID)
			continue;
		values[nargs] = n[c] ? (Datum) 0 : v[c];
		nulls[nargs++] = n[c] ? 'n' : ' ';
	}
	plan_exec(&plan, sql, nargs, types, values, nulls, false, 0);
	return SPI_processed == 1 ? spi_int64(1) : 0;
}

/*
 * Inserts a begun request holding its estimate, row its slots (with its id);
 * 0 when the key is taken.
 */
static int64
request_insert(const Account *acct, const PriceRoute *route, Datum params, int64 estimate,
			   const char *key, const char *scope, RequestRow *row)
{
	Datum	   *v = row->v;
	bool	   *n = row->n;

	request_row(acct, route, params, key, scope, v, n);
	v[DR_STATUS] = CStringGetTextDatum("queued");
	v[DR_ROUTING] = DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"));
	v[DR_COST_ESTIMATE] = v[DR_HOLD] = Int64GetDatum(estimate);
	n[DR_STATUS] = n[DR_ROUTING] = n[DR_COST_ESTIMATE] = n[DR_HOLD] = false;
	v[DR_REQUEST_ID] = Int64GetDatum(request_write(v, n));
	n[DR_REQUEST_ID] = false;
	return DatumGetInt64(v[DR_REQUEST_ID]);
}

/*
 * Records a charge whose cost is taken: the completed request and its usage
 * entry, the same rows whichever way they are written (the direct path
 * while billing_charge() holds it open, else SQL, on Citus too). Returns
 * its id, or 0 when a concurrent charge with the key came first (the cost
 * is then taken but not recorded: the caller gives it back).
 */
static int64
charge_record(const Account *acct, const PriceRoute *route, Datum params, Datum outputs,
			  Datum routing, int64 cost, const char *key, const char *scope,
			  const int64 *provider_cost)
{
	Datum		v[DR_COLUMNS];
	bool		n[DR_COLUMNS];
	int64		request_id;

	request_row(acct, route, params, key, scope, v, n);
	v[DR_STATUS] = CStringGetTextDatum("completed");
	v[DR_OUTPUTS] = outputs;
	v[DR_ROUTING] = routing;
	v[DR_COST_ESTIMATE] = v[DR_COST] = Int64GetDatum(cost);
	v[DR_HOLD] = Int64GetDatum(0);
	v[DR_COMPLETED_AT] = TimestampTzGetDatum(GetCurrentTimestamp());
	n[DR_STATUS] = n[DR_OUTPUTS] = n[DR_ROUTING] = n[DR_COST_ESTIMATE] = n[DR_COST] =
		n[DR_HOLD] = n[DR_COMPLETED_AT] = false;
	if (provider_cost)
	{
		v[DR_PROVIDER_COST] = Int64GetDatum(*provider_cost);
		n[DR_PROVIDER_COST] = false;
	}
	request_id = request_write(v, n);
	if (request_id != 0 && cost != 0)
		usage_record(acct, request_id, cost);
	return request_id;
}

/*
 * Takes amount for a request, PB402 when it is not covered: without the
 * executor while the direct path is open, else (or when no unlocked slice
 * covers it) through the slices' SPI paths, which wait for the home slice
 * or go exact.
 */
static void
request_take(const Account *acct, int64 amount)
{
	if (!direct_is_open() || !available_take_direct(acct, amount))
		available_take(acct, amount);
}

/* The scope argument (docs/limits.md): NULL, or 1 to 256 characters (22023). */
static char *
scope_arg(FunctionCallInfo fcinfo, int argno)
{
	if (PG_NARGS() <= argno)
		return NULL;
	return args_text_bounded(fcinfo, argno, "scope", ARGS_KEY_MAX);
}

PG_FUNCTION_INFO_V1(billing_begin_request);
Datum
billing_begin_request(PG_FUNCTION_ARGS)
{
	int64		account_id;
	char	   *model;
	Datum		params;
	char	   *key;
	char	   *scope;
	MemoryContext upper = CurrentMemoryContext;
	Account		acct;
	PriceRoute	route;
	int64		estimate;
	int64		request_id = 0;
	RequestRow	row;
	Datum		result = (Datum) 0;
	TimestampTz now = GetCurrentTransactionStartTimestamp();

	args_require(fcinfo, 3);
	account_id = PG_GETARG_INT64(0);
	model = text_to_cstring(PG_GETARG_TEXT_PP(1));
	params = PG_GETARG_DATUM(2);
	key = args_text(fcinfo, 3);
	scope = scope_arg(fcinfo, 4);
	json_require_object(params, "params");
	args_check_idempotency_key(key);
	SPI_connect();
	account_load(account_id, &acct, true);
	if (key)
		request_id = request_replay(account_id, key, model, params, (Datum) 0, scope);
	if (request_id == 0)
	{
		account_require_not_overdue(&acct);
		pricing_book_route(model, NULL, account_price_book(account_id, now), now, true, &route);
		check_currency(&acct, &route);
		estimate = pricing_route_cost(&route, DatumGetJsonbP(params), NULL, NULL);
		/* the take, the row and the limits' takes go direct when they can */
		if (key == NULL && estimate > 0)
			direct_open();
		request_take(&acct, estimate);
		request_id = request_insert(&acct, &route, params, estimate, key, scope, &row);
		if (request_id == 0)
		{
			/* a concurrent call with this key committed first: hand back its hold */
			available_adjust(&acct, estimate);
			request_id = request_replay(account_id, key, model, params, (Datum) 0, scope);
		}
		else
		{
			limits_admit(&acct, scope, request_id, estimate);
			if (direct_is_open())
				direct_close();
			topup_after_debit(&acct);
			/* the row as written: its metadata needs no query */
			result = request_row_metadata(&row, true, upper);
		}
	}
	if (result == (Datum) 0)
		result = request_metadata(account_id, request_id, true, false, upper);
	SPI_finish();
	PG_RETURN_DATUM(jsonb_from_text(DatumGetPointer(result)));
}

PG_FUNCTION_INFO_V1(billing_charge);
Datum
billing_charge(PG_FUNCTION_ARGS)
{
	int64		account_id;
	char	   *model;
	Datum		params;
	Datum		outputs;
	Datum		routing;
	char	   *key;
	char	   *scope;
	MemoryContext upper = CurrentMemoryContext;
	Account		acct;
	PriceRoute	route;
	RequestView view;
	int64		cost;
	int64		provider_cost;
	bool		costed;
	int64		request_id = 0;
	StringInfoData buf;
	TimestampTz now = GetCurrentTransactionStartTimestamp();

	args_require(fcinfo, 5);
	account_id = PG_GETARG_INT64(0);
	model = text_to_cstring(PG_GETARG_TEXT_PP(1));
	params = PG_GETARG_DATUM(2);
	outputs = PG_GETARG_DATUM(3);
	routing = PG_GETARG_DATUM(4);
	key = args_text(fcinfo, 5);
	scope = scope_arg(fcinfo, 6);
	json_require_object(params, "params");
	json_require_object(outputs, "outputs");
	json_require_object(routing, "routing");
	args_check_idempotency_key(key);
	SPI_connect();
	account_load(account_id, &acct, true);
	if (key && (request_id = request_replay(account_id, key, model, params, outputs, scope)) != 0)
	{
		Datum		result = request_metadata(account_id, request_id, false, false, upper);

		SPI_finish();
		PG_RETURN_DATUM(jsonb_from_text(DatumGetPointer(result)));
	}

	account_require_not_overdue(&acct);
	pricing_book_route(model, jsonb_get_text(routing, "provider"),
					   account_price_book(account_id, now), now, true, &route);
	check_currency(&acct, &route);
	cost = pricing_route_cost(&route, DatumGetJsonbP(params), DatumGetJsonbP(outputs), NULL);
	costed = pricing_reported_cost(routing, &provider_cost) ||
		pricing_provider_cost(route.model, route.provider, route.media, acct.currency, now,
							  DatumGetJsonbP(params), DatumGetJsonbP(outputs), &provider_cost);
	/* the take, the rows and the limits' takes go direct when they can */
	if (key == NULL && cost > 0)
		direct_open();
	request_take(&acct, cost);
	request_id = charge_record(&acct, &route, params, outputs, routing, cost, key, scope,
							   costed ? &provider_cost : NULL);
	if (request_id == 0)
	{
		Datum		result;

		/* a concurrent charge with this key committed first: give the money back */
		available_adjust(&acct, cost);
		request_id = request_replay(account_id, key, model, params, outputs, scope);
		result = request_metadata(account_id, request_id, false, false, upper);
		SPI_finish();
		PG_RETURN_DATUM(jsonb_from_text(DatumGetPointer(result)));
	}
	limits_admit(&acct, scope, request_id, cost);
	if (direct_is_open())
		direct_close();
	topup_after_debit(&acct);

	view.request_id = request_id;
	view.status = "completed";
	view.model = route.model;
	view.currency = acct.currency;
	view.provider = route.provider;
	view.provider_name = jsonb_get_text(routing, "provider_name");
	if (view.provider_name == NULL)
		view.provider_name = route.provider_name;
	view.executed_model = jsonb_get_text(routing, "executed_model");
	if (view.executed_model == NULL)
		view.executed_model = route.executed_model;
	view.upstream_id = jsonb_get_text(routing, "upstream_id");
	view.scope = scope;
	view.cost_estimate = cost;
	view.cost = cost;
	view.refunded = 0;
	view.finished = true;
	MemoryContextSwitchTo(upper);
	initStringInfo(&buf);
	metadata_append(&buf, &view);
	SPI_finish();
	PG_RETURN_DATUM(jsonb_from_text(buf.data));
}

PG_FUNCTION_INFO_V1(billing_response_metadata);
Datum
billing_response_metadata(PG_FUNCTION_ARGS)
{
	MemoryContext upper = CurrentMemoryContext;
	Datum		result;

	args_require(fcinfo, 1);
	SPI_connect();
	result = request_metadata(request_account(PG_GETARG_INT64(0)), PG_GETARG_INT64(0), false, true,
							upper);
	SPI_finish();
	PG_RETURN_DATUM(jsonb_from_text(DatumGetPointer(result)));
}
