/*
 * Backend-local cache of price routes.
 *
 * Pricing a request needs the model's route and the price version in force;
 * looking them up was a sixth of the work of a charge, and they change only
 * when a DBA edits the catalog. A cached route is used while "at" falls in
 * its price's validity (up to the next version of the model, so that a
 * scheduled price takes effect on time); the whole cache is dropped when a
 * catalog table is written (see cache.c).
 */
#include "postgres.h"

#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"

#include "cache.h"
#include "pricing/route_cache.h"

/* "model\x1fprovider": models and providers have at most 128 characters */
#define ROUTE_KEY_LEN 260

typedef struct RouteEntry
{
	char		key[ROUTE_KEY_LEN];
	PriceRoute	route;
	TimestampTz from;
	TimestampTz until;
} RouteEntry;

static HTAB *routes = NULL;
static MemoryContext route_cxt = NULL;
static Oid	catalog_relids[3];

static void
route_cache_reset(Datum arg, Oid relid)
{
	if (routes == NULL)
		return;
	if (OidIsValid(relid) && relid != catalog_relids[0] && relid != catalog_relids[1] &&
		relid != catalog_relids[2])
		return;
	hash_destroy(routes);
	routes = NULL;
	MemoryContextReset(route_cxt);
}

static bool
route_key(const char *model, const char *provider, char *key)
{
	return snprintf(key, ROUTE_KEY_LEN, "%s\x1f%s", model, provider ? provider : "") <
		ROUTE_KEY_LEN;
}

static void
route_copy(PriceRoute *dst, const PriceRoute *src)
{
	dst->model = pstrdup(src->model);
	dst->media = pstrdup(src->media);
	dst->provider = pstrdup(src->provider);
	dst->provider_name = pstrdup(src->provider_name);
	dst->executed_model = pstrdup(src->executed_model);
	dst->price_id = src->price_id;
	memcpy(dst->currency, src->currency, sizeof(dst->currency));
	dst->components = palloc(VARSIZE(src->components));
	memcpy(dst->components, src->components, VARSIZE(src->components));
}

bool
route_cache_get(const char *model, const char *provider, TimestampTz at, PriceRoute *route)
{
	char		key[ROUTE_KEY_LEN];
	RouteEntry *e;

	if (routes == NULL || !route_key(model, provider, key))
		return false;
	e = hash_search(routes, key, HASH_FIND, NULL);
	if (e == NULL || at < e->from || at >= e->until)
		return false;
	route_copy(route, &e->route);
	return true;
}

void
route_cache_put(const char *model, const char *provider, const PriceRoute *route,
				TimestampTz from, TimestampTz until)
{
	char		key[ROUTE_KEY_LEN];
	RouteEntry *e;
	MemoryContext old;
	bool		found;

	if (!route_key(model, provider, key))
		return;
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
