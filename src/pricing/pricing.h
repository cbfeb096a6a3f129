/* Pricing engine: price components applied to params or outputs -> cost. */
#ifndef BILLING_PRICING_H
#define BILLING_PRICING_H

#include "postgres.h"
#include "lib/stringinfo.h"
#include "utils/jsonb.h"

/*
 * Prices a request. components is a price version's jsonb array;
 * params is the request's params; outputs is NULL for an estimate, or the
 * actual outputs (quantities and attributes come from outputs first, then
 * params). media is "image" or "video".
 * Returns the total in micros. When comp_json is not NULL, appends the JSON
 * array of priced components (the "components" of SPEC section 3) to it.
 * Bad params/outputs, or none matching an output component: ERROR 22023.
 */
extern int64 pricing_cost(Jsonb *components, Jsonb *params, Jsonb *outputs,
						  const char *media, StringInfo comp_json);

/* Validates a price's components for set_price; ERROR 22023 when malformed. */
extern void pricing_validate_components(Jsonb *components);

#endif
