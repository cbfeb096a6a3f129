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
 * The provider cost version of (model, provider) in force at "at" (as a
 * route: price_id the cost_id, components NULL where none is in force),
 * cached for the span in which it is the one.
 */
extern bool cost_cache_get(const char *model, const char *provider, TimestampTz at,
						   PriceRoute *version);
extern void cost_cache_put(const char *model, const char *provider, const PriceRoute *version,
						   TimestampTz from, TimestampTz until);

#endif
