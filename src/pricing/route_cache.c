/*
 * Backend-local cache of price routes.
 *
 * Pricing a request needs the model's route and the price version in force;
 * looking them up was a sixth of the work of a charge, and they change only
 * when a DBA edits the catalog. A cached route is used while "at" falls in
 * the span in which its price is the route's choice (billing._route_prices;
 * so a scheduled price takes effect on time); the whole cache is dropped
 * when a catalog table is written (see cache.c). A route priced for a price
 * book (docs/pricing.md, "Price books and discounts") is an entry of its
 * own, dropped with the catalog's and when a discount is written. A price
 * version and a discount looked up by id (to settle work in flight) are
 * cached too: versions are never edited, and a discount's multiplier never;
 * and so are the provider cost version of a route at a time, or its
 * absence, and a route's names (dropped with the catalog's).
 */
#include "postgres.h"

#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"

#include "cache.h"
#include "pricing/route_cache.h"

/*
 * "model\x1fprovider\x1cbook": models and providers have at most 128
 * characters, books 64
 */
#define ROUTE_KEY_LEN 330

typedef struct RouteEntry
{
	char		key[ROUTE_KEY_LEN];
	PriceRoute	route;
	TimestampTz from;
	TimestampTz until;
} RouteEntry;

static HTAB *routes = NULL;
static MemoryContext route_cxt = NULL;
static Oid	catalog_relids[5];

static void
route_cache_reset(Datum arg, Oid relid)
{
	if (routes == NULL)
		return;
	if (OidIsValid(relid))
	{
		size_t		i;

		for (i = 0; i < lengthof(catalog_relids) && relid != catalog_relids[i]; i++)
			;
		if (i == lengthof(catalog_relids))
			return;
	}
	hash_destroy(routes);
	routes = NULL;
	MemoryContextReset(route_cxt);
}

/*
 * The key of a route: "model\x1e" for the default provider, "model\x1fprovider"
 * for a named one, so that no provider string can stand for the default (an
 * answer never depends on what happens to be cached), then "\x1cbook" for a
 * price book's. What is cached by id is its CachedById tag and the id, a
 * provider cost version or a route's names its CachedByRoute tag and
 * "model\x1fprovider". Model names hold no
 * control characters (schema.sql).
 */
static bool
route_key(const char *model, const char *provider, const char *book, char *key)
{
	return snprintf(key, ROUTE_KEY_LEN, "%s%s%s%s%s", model, provider ? "\x1f" : "\x1e",
					provider ? provider : "", book ? "\x1c" : "", book ? book : "") < ROUTE_KEY_LEN;
}

/* What is cached by a route: its CachedByRoute tag, then "model\x1fprovider". */
static bool
provider_key(char tag, const char *model, const char *provider, char *key)
{
	return snprintf(key, ROUTE_KEY_LEN, "%c%s\x1f%s", tag, model, provider) < ROUTE_KEY_LEN;
}

static void
id_key(char tag, int64 id, char *key)
{
	snprintf(key, ROUTE_KEY_LEN, "%c" INT64_FORMAT, tag, id);
}

static char *
str_copy(const char *s)
{
	return s ? pstrdup(s) : NULL;
}

static void
route_copy(PriceRoute *dst, const PriceRoute *src)
{
	dst->model = str_copy(src->model);
	dst->media = str_copy(src->media);
	dst->provider = str_copy(src->provider);
	dst->provider_name = str_copy(src->provider_name);
	dst->executed_model = str_copy(src->executed_model);
	dst->price_id = src->price_id;
	dst->active = src->active;
	memcpy(dst->currency, src->currency, sizeof(dst->currency));
	dst->components = NULL;		/* none in a discount's entry, or no cost version in force */
	if (src->components)
	{
		dst->components = palloc(VARSIZE(src->components));
		memcpy(dst->components, src->components, VARSIZE(src->components));
	}
	dst->price_book = str_copy(src->price_book);
	dst->discount_id = src->discount_id;
	dst->multiplier_ppm = src->multiplier_ppm;
}

static bool
cache_get(const char *key, TimestampTz at, PriceRoute *route)
{
	RouteEntry *e;

	if (routes == NULL)
		return false;
	e = hash_search(routes, key, HASH_FIND, NULL);
	if (e == NULL || at < e->from || at >= e->until)
		return false;
	route_copy(route, &e->route);
	return true;
}

static void
cache_put(const char *key, const PriceRoute *route, TimestampTz from, TimestampTz until)
{
	RouteEntry *e;
	MemoryContext old;
	bool		found;

	if (route_cxt == NULL)
	{
		route_cxt = AllocSetContextCreate(CacheMemoryContext, "billing route cache",
										  ALLOCSET_SMALL_SIZES);
		CacheRegisterRelcacheCallback(route_cache_reset, (Datum) 0);
	}
	if (routes == NULL)
	{
		HASHCTL		ctl;

		catalog_relids[0] = cache_relid("models");
		catalog_relids[1] = cache_relid("model_providers");
		catalog_relids[2] = cache_relid("prices");
		catalog_relids[3] = cache_relid("discounts");
		catalog_relids[4] = cache_relid("provider_costs");
		ctl.keysize = ROUTE_KEY_LEN;
		ctl.entrysize = sizeof(RouteEntry);
		ctl.hcxt = route_cxt;
		routes = hash_create("billing routes", 64, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	e = hash_search(routes, key, HASH_ENTER, &found);
	/* replace only by a later version, so that the leak of the old copy is bounded */
	if (found && from < e->until)
		return;
	old = MemoryContextSwitchTo(route_cxt);
	route_copy(&e->route, route);
	MemoryContextSwitchTo(old);
	e->from = from;
	e->until = until;
}

bool
route_cache_get(const char *model, const char *provider, const char *book, TimestampTz at,
				PriceRoute *route)
{
	char		key[ROUTE_KEY_LEN];

	return route_key(model, provider, book, key) && cache_get(key, at, route);
}

void
route_cache_put(const char *model, const char *provider, const char *book,
				const PriceRoute *route, TimestampTz from, TimestampTz until)
{
	char		key[ROUTE_KEY_LEN];

	if (route_key(model, provider, book, key))
		cache_put(key, route, from, until);
}

bool
id_cache_get(CachedById kind, int64 id, PriceRoute *route)
{
	char		key[ROUTE_KEY_LEN];

	id_key((char) kind, id, key);
	return cache_get(key, 0, route);
}

void
id_cache_put(CachedById kind, int64 id, const PriceRoute *route)
{
	char		key[ROUTE_KEY_LEN];

	id_key((char) kind, id, key);
	cache_put(key, route, DT_NOBEGIN, DT_NOEND);
}

bool
provider_cache_get(CachedByRoute kind, const char *model, const char *provider, TimestampTz at,
				   PriceRoute *route)
{
	char		key[ROUTE_KEY_LEN];

	return provider_key((char) kind, model, provider, key) && cache_get(key, at, route);
}

void
provider_cache_put(CachedByRoute kind, const char *model, const char *provider,
				   const PriceRoute *route, TimestampTz from, TimestampTz until)
{
	char		key[ROUTE_KEY_LEN];

	if (provider_key((char) kind, model, provider, key))
		cache_put(key, route, from, until);
}
