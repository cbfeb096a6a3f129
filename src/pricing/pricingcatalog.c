/*
 * Catalog access (docs/pricing.md): a model's route and the price version
 * (and, for a price book, the discount) that prices it. Which version
 * prices a route at a given time is defined once, by the view
 * billing._route_prices (pricing.sql), which billing.catalog reads too, and
 * for a price book by billing._price_choice (books.sql) over it; a backend
 * caches what it looked up (route_cache.c), so a charge runs the SQL only
 * on a cache miss.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "errors.h"
#include "pricing/pricing_internal.h"
#include "pricing/route_cache.h"
#include "spi_plan.h"

void
pricing_check_provider(const char *provider)
{
	if (provider && provider[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("provider must not be empty"),
				 errdetail("A provider is the name of one of the model's routes."),
				 errhint("Leave the provider out, or null, for the default one.")));
}

void
pricing_no_model(const char *model)
{
	ereport(ERROR,
			(errcode(ERRCODE_BILLING_NOT_FOUND),
			 errmsg("model \"%s\" does not exist", model)));
}

void
pricing_no_route(const char *model, const char *provider)
{
	ereport(ERROR,
			(errcode(ERRCODE_BILLING_NOT_FOUND),
			 provider ? errmsg("provider \"%s\" does not serve model \"%s\"", provider, model)
			 : errmsg("model \"%s\" has no default provider", model)));
}

static void
model_disabled(const char *model)
{
	ereport(ERROR,
			(errcode(ERRCODE_BILLING_NOT_FOUND),
			 errmsg("model \"%s\" is disabled", model)));
}

/*
 * Looks the route up in a nested SPI connection of its own (so a caller's
 * SPI_tuptable survives) and copies it into cxt, the caller's context.
 */
static void
route_load(const char *model, const char *provider, const char *book, TimestampTz at,
		   bool admitting, MemoryContext cxt, PriceRoute *route)
{
	static SPIPlanPtr plan = NULL;
	MemoryContext old;
	bool		isnull;

	SPI_connect();
	plan_run(&plan,
			 "SELECT m.media, m.active, mp.provider, mp.provider_name, mp.executed_model,"
			 "       p.price_id, p.currency, p.components, p.span_from, p.span_until,"
			 "       p.discount_id, p.multiplier_ppm"
			 "  FROM billing.models m"
			 "  LEFT JOIN billing.model_providers mp ON mp.model = m.model"
			 "       AND (mp.provider = $2 OR ($2 IS NULL AND mp.is_default))"
			 "  LEFT JOIN LATERAL billing._price_choice($1, mp.provider, $4, $3) p ON true"
			 " WHERE m.model = $1",
			 false, 1, PLAN_ARGS(ARG_TEXT(model), ARG_TEXT(provider), ARG_TSTZ(at),
								 ARG_TEXT(book)));
	if (SPI_processed == 0)
		pricing_no_model(model);
	if (admitting && !DatumGetBool(spi_col(2, &isnull)))
		model_disabled(model);
	spi_col(3, &isnull);
	if (isnull)
		pricing_no_route(model, provider);
	spi_col(6, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model \"%s\" has no price in force", model),
				 errdetail("No price version for provider \"%s\" takes effect on or before %s.",
						   spi_text(3), timestamptz_to_str(at))));

	old = MemoryContextSwitchTo(cxt);
	route->model = pstrdup(model);
	route->media = spi_text(1);
	route->active = DatumGetBool(spi_col(2, NULL));
	route->provider = spi_text(3);
	route->provider_name = spi_text(4);
	route->executed_model = spi_text(5);
	route->price_id = spi_int64(6);
	strlcpy(route->currency, spi_text(7), sizeof(route->currency));
	route->components = DatumGetJsonbPCopy(spi_col(8, NULL));
	route->price_book = book ? pstrdup(book) : NULL;
	route->discount_id = DatumGetInt64(spi_col(11, &isnull));
	if (isnull)
		route->discount_id = 0;
	route->multiplier_ppm = route->discount_id ? DatumGetInt32(spi_col(12, NULL)) : 0;
	MemoryContextSwitchTo(old);
	route_cache_put(model, provider, book, route, DatumGetTimestampTz(spi_col(9, NULL)),
					DatumGetTimestampTz(spi_col(10, NULL)));
	SPI_finish();
}

void
pricing_book_route(const char *model, const char *provider, const char *price_book,
				   TimestampTz at, bool admitting, PriceRoute *route)
{
	pricing_check_provider(provider);
	if (!route_cache_get(model, provider, price_book, at, route))
		route_load(model, provider, price_book, at, admitting, CurrentMemoryContext, route);
	else if (admitting && !route->active)
		model_disabled(model);
}

void
pricing_route(const char *model, const char *provider, TimestampTz at, bool admitting,
			  PriceRoute *route)
{
	pricing_book_route(model, provider, NULL, at, admitting, route);
}

/*
 * Runs sql, which reads the row of id (its one argument), inside SPI: a
 * price version or discount (what) that a request was admitted with, and
 * never deleted while one names it; 22023 if it is gone all the same.
 */
static void
admitted_row(SPIPlanPtr *plan, const char *sql, int64 id, const char *what)
{
	plan_run(plan, sql, false, 1, PLAN_ARGS(ARG_INT8(id)));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s " INT64_FORMAT " does not exist", what, id),
				 errdetail("The request was admitted with a %s that is gone.", what)));
}

/* The price version price_id, as a route without provider details, in cxt. */
static void
price_version(int64 price_id, MemoryContext cxt, PriceRoute *route)
{
	static SPIPlanPtr plan = NULL;
	MemoryContext old;

	if (id_cache_get(CACHED_PRICE, price_id, route))
		return;

	SPI_connect();
	admitted_row(&plan,
				 "SELECT p.model, m.media, p.currency, p.components"
				 "  FROM billing.prices p JOIN billing.models m ON m.model = p.model"
				 " WHERE p.price_id = $1",
				 price_id, "price version");
	old = MemoryContextSwitchTo(cxt);
	memset(route, 0, sizeof(PriceRoute));
	route->model = spi_text(1);
	route->media = spi_text(2);
	strlcpy(route->currency, spi_text(3), sizeof(route->currency));
	route->components = DatumGetJsonbPCopy(spi_col(4, NULL));
	route->price_id = price_id;
	MemoryContextSwitchTo(old);
	id_cache_put(CACHED_PRICE, route->price_id, route);
	SPI_finish();
}

/* The multiplier of discount discount_id into route (cached: it never changes). */
static void
discount_load(int64 discount_id, PriceRoute *route)
{
	static SPIPlanPtr plan = NULL;
	PriceRoute	d;

	if (!id_cache_get(CACHED_DISCOUNT, discount_id, &d))
	{
		SPI_connect();
		admitted_row(&plan, "SELECT multiplier_ppm FROM billing.discounts WHERE discount_id = $1",
					 discount_id, "discount");
		memset(&d, 0, sizeof(d));
		d.discount_id = discount_id;
		d.multiplier_ppm = DatumGetInt32(spi_col(1, NULL));
		SPI_finish();
		id_cache_put(CACHED_DISCOUNT, d.discount_id, &d);
	}
	route->discount_id = discount_id;
	route->multiplier_ppm = d.multiplier_ppm;
}

void
pricing_settlement_route(const char *model, const char *admitted_provider, int64 price_id,
						 const char *price_book, int64 discount_id,
						 const char *routing_provider, TimestampTz began, PriceRoute *route)
{
	if (routing_provider == NULL || strcmp(routing_provider, admitted_provider) == 0)
	{
		price_version(price_id, CurrentMemoryContext, route);
		route->provider = pstrdup(admitted_provider);
		route->price_book = price_book ? pstrdup(price_book) : NULL;
		if (discount_id)
			discount_load(discount_id, route);
	}
	else
		pricing_book_route(model, routing_provider, price_book, began, false, route);
}

/*
 * The provider cost version of (model, provider) in force at "at", or none
 * (components NULL), looked up as route_load does, and cached for its span.
 */
static void
cost_version(const char *model, const char *provider, TimestampTz at, PriceRoute *version)
{
	static SPIPlanPtr plan = NULL;
	MemoryContext cxt = CurrentMemoryContext;
	bool		isnull;
	Datum		d;

	if (provider_cache_get(CACHED_COST, model, provider, at, version))
		return;
	SPI_connect();
	plan_run(&plan,
			 "SELECT c.cost_id, c.currency, c.components,"
			 "       COALESCE(c.effective_from, '-infinity'),"
			 "       COALESCE((SELECT pg_catalog.min(n.effective_from) FROM billing.provider_costs n"
			 "                  WHERE n.model = $1 AND n.provider = $2 AND n.effective_from > $3),"
			 "                'infinity')"
			 "  FROM (SELECT) x LEFT JOIN LATERAL ("
			 "       SELECT c.cost_id, c.currency, c.components, c.effective_from"
			 "         FROM billing.provider_costs c"
			 "        WHERE c.model = $1 AND c.provider = $2 AND c.effective_from <= $3"
			 "        ORDER BY c.effective_from DESC LIMIT 1) c ON true",
			 true, 1, PLAN_ARGS(ARG_TEXT(model), ARG_TEXT(provider), ARG_TSTZ(at)));
	memset(version, 0, sizeof(PriceRoute));
	d = spi_col(1, &isnull);
	if (!isnull)
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);

		version->price_id = DatumGetInt64(d);
		strlcpy(version->currency, spi_text(2), sizeof(version->currency));
		version->components = DatumGetJsonbPCopy(spi_col(3, NULL));
		MemoryContextSwitchTo(old);
	}
	provider_cache_put(CACHED_COST, model, provider, version, DatumGetTimestampTz(spi_col(4, NULL)),
				   DatumGetTimestampTz(spi_col(5, NULL)));
	SPI_finish();
}

bool
pricing_reported_cost(Datum routing, int64 *cost)
{
	Jsonb	   *j = DatumGetJsonbP(routing);
	JsonbValue	k;
	JsonbValue *v;

	k.type = jbvString;
	k.val.string.val = "upstream_cost_micros";
	k.val.string.len = strlen(k.val.string.val);
	v = findJsonbValueFromContainer(&j->root, JB_FOBJECT, &k);
	if (v == NULL)
		return false;
	*cost = pricing_json_int(v, "upstream_cost_micros", 0, PG_INT64_MAX);
	return true;
}

bool
pricing_provider_cost(const char *model, const char *provider, const char *media,
					  const char *currency, TimestampTz began, Jsonb *params, Jsonb *outputs,
					  int64 *cost)
{
	PriceRoute	version;

	cost_version(model, provider, began, &version);
	/* a cost in another currency than the revenue's leaves the margin unknown */
	if (version.components == NULL || strcmp(version.currency, currency) != 0)
		return false;
	return pricing_cost_if_priced(version.components, params, outputs, media, cost);
}

void
pricing_route_names(const char *model, const char *provider, PriceRoute *names)
{
	static SPIPlanPtr plan = NULL;
	MemoryContext cxt = CurrentMemoryContext;

	if (provider_cache_get(CACHED_NAMES, model, provider, 0, names))
		return;
	SPI_connect();
	plan_run(&plan,
			 "SELECT provider_name, executed_model FROM billing.model_providers"
			 " WHERE model = $1 AND provider = $2",
			 false, 0, PLAN_ARGS(ARG_TEXT(model), ARG_TEXT(provider)));
	memset(names, 0, sizeof(PriceRoute));
	if (SPI_processed > 0)
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);

		names->provider_name = spi_text(1);
		names->executed_model = spi_text(2);
		MemoryContextSwitchTo(old);
	}
	provider_cache_put(CACHED_NAMES, model, provider, names, DT_NOBEGIN, DT_NOEND);
	SPI_finish();
}
