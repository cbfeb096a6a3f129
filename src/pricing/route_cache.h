/* Backend-local cache of price routes (see route_cache.c). */
#ifndef BILLING_ROUTE_CACHE_H
#define BILLING_ROUTE_CACHE_H

#include "pricing/pricing.h"

/*
 * Copies the cached route of (model, provider) for price book book (NULL:
 * the list) into *route, allocated in the current memory context, when one
 * is cached for a price in force at "at".
 */
extern bool route_cache_get(const char *model, const char *provider, const char *book,
							TimestampTz at, PriceRoute *route);

/* Caches route, whose price is in force from "from" until "until". */
extern void route_cache_put(const char *model, const char *provider, const char *book,
							const PriceRoute *route, TimestampTz from, TimestampTz until);

/*
 * What never changes, by id, held until the catalog is written: a price
 * version (model, media, currency, components) or a discount (its
 * discount_id and multiplier_ppm, without components).
 */
typedef enum CachedById
{
	CACHED_PRICE = '\x1d',
	CACHED_DISCOUNT = '\x1b'
} CachedById;
extern bool id_cache_get(CachedById kind, int64 id, PriceRoute *route);
extern void id_cache_put(CachedById kind, int64 id, const PriceRoute *route);

/*
 * What is cached by a route (model, provider): the provider cost version in
 * force at "at" (as a route: price_id the cost_id, components NULL where
 * none is in force), for the span in which it is the one; the route's names
 * (provider_name and executed_model, NULL where the route is gone), for
 * every time, until the catalog is written.
 */
typedef enum CachedByRoute
{
	CACHED_COST = '\x1a',
	CACHED_NAMES = '\x19'
} CachedByRoute;
extern bool provider_cache_get(CachedByRoute kind, const char *model, const char *provider,
							   TimestampTz at, PriceRoute *route);
extern void provider_cache_put(CachedByRoute kind, const char *model, const char *provider,
							   const PriceRoute *route, TimestampTz from, TimestampTz until);

#endif
