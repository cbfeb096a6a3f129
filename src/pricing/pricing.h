/* Pricing engine: price components applied to params or outputs -> cost. */
#ifndef BILLING_PRICING_H
#define BILLING_PRICING_H

#include "postgres.h"
#include "lib/stringinfo.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

/*
 * Prices a request. components is a price version's jsonb array;
 * params is the request's params; outputs is NULL for an estimate, or the
 * actual outputs (quantities and attributes come from outputs first, then
 * params). media is "image" or "video". params may be NULL (= {}).
 * Returns the total in micros. When comp_json is not NULL, appends the JSON
 * array of priced components (the "components" of docs/pricing.md) to it.
 * Bad params/outputs, or none matching an output component: ERROR 22023.
 */
extern int64 pricing_cost(Jsonb *components, Jsonb *params, Jsonb *outputs,
						  const char *media, StringInfo comp_json);

/* A model's route (provider) and the price version in force for it. */
typedef struct PriceRoute
{
	char	   *model;
	char	   *media;
	char	   *provider;
	char	   *provider_name;
	char	   *executed_model;
	int64		price_id;
	char		currency[4];
	Jsonb	   *components;
	bool		active;			/* the model is open to new admissions */
	/* contract prices (docs/pricing.md, "Price books and discounts") */
	char	   *price_book;		/* the account's book; NULL: the list */
	int64		discount_id;	/* the book's discount of the list price; 0: none */
	int32		multiplier_ppm; /* the discount's, when discount_id */
} PriceRoute;

/*
 * pricing_cost() of the route's price, with its discount: each matching
 * component's total is money_scale_ppm(list total, multiplier_ppm), and
 * comp_json shows multiplier_ppm and list_total_cost_micros for each. The
 * one costing of estimates, holds and settlements.
 */
extern int64 pricing_route_cost(const PriceRoute *route, Jsonb *params, Jsonb *outputs,
								StringInfo comp_json);

/*
 * Loads the route of model through provider (NULL: the default provider) and
 * the price in force at "at". Unknown model or provider: PB404; a disabled
 * model: PB404 when admitting (new work), accepted when settling work in
 * flight; an empty provider: 22023; no price in force: 22023. The result is
 * allocated in the memory context current at the call. Needs no SPI
 * connection: a lookup opens a nested one of its own, so a caller's
 * SPI_tuptable survives.
 */
extern void pricing_route(const char *model, const char *provider, TimestampTz at,
						  bool admitting, PriceRoute *route);

/*
 * pricing_route() for an account on price_book (NULL: the list), in the
 * order of docs/pricing.md, each in force at "at": the book's version for
 * the route, its version for the model, else the list version times the
 * book's most specific discount. Cached per backend like the list.
 */
extern void pricing_book_route(const char *model, const char *provider, const char *price_book,
							   TimestampTz at, bool admitting, PriceRoute *route);

/*
 * The price that settles a request in flight (docs/pricing.md, "Work in
 * flight"): the version price_id and discount discount_id (0: none) that
 * priced its admission through admitted_provider, unless routing_provider
 * names another provider of the model, whose price in force at "began" in
 * price_book (NULL: the list) then applies. Whether the model is still
 * active or the admitted route still exists does not matter. Same memory
 * and SPI rules as pricing_route().
 */
extern void pricing_settlement_route(const char *model, const char *admitted_provider,
									 int64 price_id, const char *price_book, int64 discount_id,
									 const char *routing_provider, TimestampTz began,
									 PriceRoute *route);

/*
 * What a request cost upstream (docs/pricing.md, "Provider costs and
 * margin"). pricing_reported_cost: routing's upstream_cost_micros, when
 * given (a JSON integer >= 0, else 22023). pricing_provider_cost: its params
 * and outputs priced by the provider cost version of (model, provider) in
 * force at "began", in the request's currency. Each returns false where it
 * does not know the cost. The version comes from a per-backend cache; same
 * memory and SPI rules as pricing_route().
 */
extern bool pricing_reported_cost(Datum routing, int64 *cost);
extern bool pricing_provider_cost(const char *model, const char *provider, const char *media,
								  const char *currency, TimestampTz began, Jsonb *params,
								  Jsonb *outputs, int64 *cost);

/*
 * The names of the route of model through provider (billing.model_providers)
 * into names->provider_name and names->executed_model, both NULL when the
 * route is gone (the rest of names zero). Cached per backend until the
 * catalog is written; same memory and SPI rules as pricing_route().
 */
extern void pricing_route_names(const char *model, const char *provider, PriceRoute *names);

/* An explicit provider must be a non-empty name (22023); NULL means none. */
extern void pricing_check_provider(const char *provider);

/* Defines pricing's setting, billing.catalog_currency (called by _PG_init). */
extern void pricing_init(void);

#endif
