/*
 * Internal contracts of the pricing family (docs/pricing.md):
 *
 *	 pricing.c			  SQL entry points: estimate, effective_cost, set_price
 *	 pricingparams.c	  a request's params and outputs -> PricedRequest
 *	 pricingcomponents.c  a price version's components -> PriceComp[]
 *	 pricingcost.c		  PriceComp[] x PricedRequest -> micros (pricing_cost)
 *	 pricingcatalog.c	  routes and price versions (pricing_route), cached
 *						  per backend by route_cache.c
 *
 * Parsing files read jsonb containers in place and never reparse; every
 * refusal is 22023 with the offending value shortened in the detail.
 */
#ifndef BILLING_PRICING_INTERNAL_H
#define BILLING_PRICING_INTERNAL_H

#include "postgres.h"
#include "utils/jsonb.h"

#include "pg_version_compat.h"
#include "pricing/pricing.h"

#define MAX_IMAGES			1000
#define MAX_SIDE			16384
#define MAX_INPUT_IMAGES	1000
#define MAX_DURATION		3600	/* seconds */
#define MP_SHIFT			20		/* 1 MP = 1024 x 1024 = 2^20 px */
#define DEFAULT_SIDE		1024

/* pricingparams.c: reading jsonb values exactly */

/* A jsonb number read exactly from its decimal text. */
typedef struct Decimal
{
	char	   *text;
	bool		negative;
	bool		overflow;		/* whole part does not fit an int64 */
	int64		whole;			/* magnitude of the integer part */
	bool		fraction;		/* a nonzero digit after the point */
} Decimal;

/* The value's JSON text, shortened for an error detail. */
extern char *pricing_jbv_text(JsonbValue *v);

/* An integer in [min, max], else 22023 naming what. */
extern int64 pricing_json_int(JsonbValue *v, const char *what, int64 min, int64 max);

/*
 * Steps *it through an object's members: returns false at the end, else
 * sets *key (palloc'd) and *v to the next member's key and value.
 */
extern bool pricing_object_next(JsonbIterator **it, char **key, JsonbValue *v);

/* pricingparams.c: the request as priced */

/* The known keys of one params or outputs document. */
typedef struct Doc
{
	JsonbContainer *jc;
	bool		has_n,
				has_size,
				has_input,
				has_duration,
				has_images;
	int64		n,
				width,
				height,
				input_images;
	Decimal		duration;
	int			nimages;
	int64	   *img_w;			/* 0: size not given for that image */
	int64	   *img_h;
} Doc;

/* The request as priced: outputs first, then params. */
typedef struct PricedRequest
{
	const char *media;
	Doc			docs[2];		/* [0] outputs (jc NULL if none), [1] params */
	int			nimages;
	int64	   *areas;			/* pixels of each image */
	int64		input_images;
	Decimal    *duration;		/* NULL when not given */
} PricedRequest;

/*
 * Reads and checks params and outputs (either may be NULL) into *req, and
 * derives its quantities, outputs first, then params, then the defaults.
 */
extern void pricing_request_load(PricedRequest *req, Jsonb *params, Jsonb *outputs,
								 const char *media);

/* Finds an attribute: outputs, then params, then the documented defaults. */
extern bool pricing_request_attr(PricedRequest *req, const char *key, JsonbValue *res);

/* pricingcomponents.c: a price version */

typedef enum Metric
{
	METRIC_REQUEST,
	METRIC_IMAGE,
	METRIC_MEGAPIXEL,
	METRIC_SECOND,
	METRIC_INPUT_IMAGE,
	NUM_METRICS
} Metric;

extern const char *const pricing_metric_names[NUM_METRICS];

/* A condition: attribute key must equal one of vals (any-of). */
typedef struct Cond
{
	char	   *key;
	int			nvals;
	JsonbValue *vals;
} Cond;

typedef struct PriceComp
{
	bool		output;
	Metric		metric;
	int64		unit_price;
	int64		unit_size;
	int64		max_per_image;	/* megapixel cap per image; 0 = none */
	int			ncond;
	Cond	   *conds;
} PriceComp;

/*
 * Parses and checks a price (the checks of set_price); media (NULL: any)
 * limits the metrics. Returns *ncomps components, at least one of them an
 * output one.
 */
extern PriceComp *pricing_components_read(Jsonb *components, const char *media, int *ncomps);

/* pricingcost.c: pricing_cost, but false where no output component prices the request */
extern bool pricing_cost_if_priced(Jsonb *components, Jsonb *params, Jsonb *outputs,
								   const char *media, int64 *cost);

/* pricingcatalog.c: the refusals of an unknown model or route (PB404) */
pg_noreturn extern void pricing_no_model(const char *model);
/* provider NULL: the model has no default provider */
pg_noreturn extern void pricing_no_route(const char *model, const char *provider);

#endif
