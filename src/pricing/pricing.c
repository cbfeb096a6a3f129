/*
 * Pricing engine and model catalog (docs/pricing.md).
 *
 * A price is a jsonb array of components; a request (params, and outputs at
 * completion) is read straight from its jsonb containers, never reparsed.
 * Numbers stay exact: jsonb numerics are read as decimal text, money is
 * checked int64 micros.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "nodes/pg_list.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "billing.h"
#include "errors.h"
#include "jsonout.h"
#include "money.h"
#include "pricing.h"
#include "pricing/route_cache.h"
#include "spi_plan.h"

#define MAX_IMAGES			1000
#define MAX_SIDE			16384
#define MAX_INPUT_IMAGES	1000
#define MAX_DURATION		3600	/* seconds */
#define MP_SHIFT			20		/* 1 MP = 1024 x 1024 = 2^20 px */
#define DEFAULT_SIDE		1024

typedef enum Metric
{
	METRIC_REQUEST,
	METRIC_IMAGE,
	METRIC_MEGAPIXEL,
	METRIC_SECOND,
	METRIC_INPUT_IMAGE,
	NUM_METRICS
} Metric;

static const char *const metric_names[NUM_METRICS] = {
	"request", "image", "megapixel", "second", "input_image"
};

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

/* A jsonb number read exactly from its decimal text. */
typedef struct Decimal
{
	char	   *text;
	bool		negative;
	bool		overflow;		/* whole part does not fit an int64 */
	int64		whole;			/* magnitude of the integer part */
	bool		fraction;		/* a nonzero digit after the point */
} Decimal;

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
typedef struct Req
{
	const char *media;
	Doc			docs[2];		/* [0] outputs (jc NULL if none), [1] params */
	int			nimages;
	int64	   *areas;			/* pixels of each image */
	int64		input_images;
	Decimal    *duration;		/* NULL when not given */
} Req;

static void
bad_input(const char *what, const char *detail_fmt, const char *value)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid %s", what),
			 errdetail(detail_fmt, value)));
}

/* The value's JSON text, shortened for an error detail. */
static char *
jbv_text(JsonbValue *v)
{
	Jsonb	   *jb = JsonbValueToJsonb(v);
	char	   *s = JsonbToCString(NULL, &jb->root, VARSIZE(jb));

	int			len = strlen(s);

	if (len > 40)
		strcpy(s + pg_mbcliplen(s, len, 37), "...");
	return s;
}

static void
decimal_read(JsonbValue *v, Decimal *d)
{
	const char *p;

	d->text = DatumGetCString(DirectFunctionCall1(numeric_out,
												  NumericGetDatum(v->val.numeric)));
	p = d->text;
	d->negative = (*p == '-');
	if (d->negative)
		p++;
	d->overflow = false;
	d->whole = 0;
	for (; *p >= '0' && *p <= '9'; p++)
		if (!d->overflow &&
			(pg_mul_s64_overflow(d->whole, 10, &d->whole) ||
			 pg_add_s64_overflow(d->whole, *p - '0', &d->whole)))
			d->overflow = true;
	d->fraction = false;
	if (*p == '.')
		for (p++; *p; p++)
			if (*p != '0')
				d->fraction = true;
}

/* An integer in [min, max], else 22023 naming what. */
static int64
json_int(JsonbValue *v, const char *what, int64 min, int64 max)
{
	Decimal		d;
	int64		r;

	if (v->type != jbvNumeric)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be an integer", what),
				 errdetail("Got %s.", jbv_text(v))));
	decimal_read(v, &d);
	r = d.negative ? -d.whole : d.whole;
	if (d.fraction || d.overflow || r < min || r > max)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be an integer between " INT64_FORMAT " and " INT64_FORMAT,
						what, min, max),
				 errdetail("Got %s.", jbv_text(v))));
	return r;
}

/* One side of "WxH": 1..MAX_SIDE, digits only. */
static int64
size_side(const char **p)
{
	int64		r = 0;
	int			len = 0;

	while (**p >= '0' && **p <= '9' && len < 6)
	{
		r = r * 10 + (**p - '0');
		(*p)++;
		len++;
	}
	return (len == 0 || r < 1 || r > MAX_SIDE) ? -1 : r;
}

static void
size_parse(JsonbValue *v, int64 *w, int64 *h)
{
	char	   *s;
	const char *p;

	if (v->type != jbvString)
		bad_input("size", "\"size\" must be a string \"WIDTHxHEIGHT\"; got %s.", jbv_text(v));
	s = pnstrdup(v->val.string.val, v->val.string.len);
	p = s;
	*w = size_side(&p);
	if (*w > 0 && *p == 'x')
	{
		p++;
		*h = size_side(&p);
		if (*h > 0 && *p == '\0')
			return;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid size %s", jbv_text(v)),
			 errdetail("A size is \"WIDTHxHEIGHT\" in pixels, each side from 1 to %d.",
					   MAX_SIDE)));
}

static void
images_read(JsonbValue *v, Doc *doc)
{
	JsonbContainer *jc;
	int			i;

	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		bad_input("outputs", "\"images\" must be an array of images; got %s.", jbv_text(v));
	jc = v->val.binary.data;
	doc->nimages = JsonContainerSize(jc);
	if (doc->nimages > MAX_IMAGES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("too many images"),
				 errdetail("Outputs list %d images; at most %d are allowed.",
						   doc->nimages, MAX_IMAGES)));
	doc->img_w = palloc0(sizeof(int64) * (doc->nimages + 1));
	doc->img_h = palloc0(sizeof(int64) * (doc->nimages + 1));
	for (i = 0; i < doc->nimages; i++)
	{
		JsonbValue *img = getIthJsonbValueFromContainer(jc, i);
		JsonbValue	w,
					h;
		bool		has_w,
					has_h;

		if (img->type != jbvBinary || !JsonContainerIsObject(img->val.binary.data))
			bad_input("outputs", "Each image must be an object; got %s.", jbv_text(img));
		has_w = getKeyJsonValueFromContainer(img->val.binary.data, "width", 5, &w) != NULL;
		has_h = getKeyJsonValueFromContainer(img->val.binary.data, "height", 6, &h) != NULL;
		if (has_w != has_h)
			bad_input("outputs", "An image gives both \"width\" and \"height\" or neither; got %s.",
					  jbv_text(img));
		if (has_w)
		{
			doc->img_w[i] = json_int(&w, "image width", 1, MAX_SIDE);
			doc->img_h[i] = json_int(&h, "image height", 1, MAX_SIDE);
		}
	}
	doc->has_images = true;
}

/* Reads and type-checks the known keys of params or outputs in one pass. */
static void
doc_read(Jsonb *jb, const char *what, bool outputs, Doc *doc)
{
	JsonbIterator *it;
	JsonbIteratorToken tok;
	JsonbValue	v;
	char	   *key = NULL;

	memset(doc, 0, sizeof(Doc));
	if (jb == NULL)
		return;
	if (!JB_ROOT_IS_OBJECT(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a JSON object", what)));
	doc->jc = &jb->root;
	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			key = pnstrdup(v.val.string.val, v.val.string.len);
			continue;
		}
		if (tok != WJB_VALUE)
			continue;
		if (strcmp(key, "n") == 0)
		{
			doc->n = json_int(&v, "n", 1, MAX_IMAGES);
			doc->has_n = true;
		}
		else if (strcmp(key, "size") == 0)
		{
			size_parse(&v, &doc->width, &doc->height);
			doc->has_size = true;
		}
		else if (strcmp(key, "input_images") == 0)
		{
			if (v.type == jbvBinary && JsonContainerIsArray(v.val.binary.data))
			{
				doc->input_images = JsonContainerSize(v.val.binary.data);
				if (doc->input_images > MAX_INPUT_IMAGES)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("too many input images"),
							 errdetail("Got " INT64_FORMAT "; at most %d are allowed.",
									   doc->input_images, MAX_INPUT_IMAGES)));
			}
			else
				doc->input_images = json_int(&v, "input_images", 0, MAX_INPUT_IMAGES);
			doc->has_input = true;
		}
		else if (strcmp(key, "duration_seconds") == 0)
		{
			if (v.type != jbvNumeric)
				bad_input("duration_seconds", "\"duration_seconds\" must be a number; got %s.",
						  jbv_text(&v));
			decimal_read(&v, &doc->duration);
			if (doc->duration.negative || doc->duration.overflow ||
				(doc->duration.whole == 0 && !doc->duration.fraction) ||
				doc->duration.whole > MAX_DURATION ||
				(doc->duration.whole == MAX_DURATION && doc->duration.fraction))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("duration_seconds must be greater than 0 and at most %d",
								MAX_DURATION),
						 errdetail("Got %s.", jbv_text(&v))));
			doc->has_duration = true;
		}
		else if (strcmp(key, "resolution") == 0)
		{
			if (v.type != jbvString)
				bad_input("resolution", "\"resolution\" must be a string; got %s.", jbv_text(&v));
		}
		else if (strcmp(key, "audio") == 0)
		{
			if (v.type != jbvBool)
				bad_input("audio", "\"audio\" must be true or false; got %s.", jbv_text(&v));
		}
		else if (outputs && strcmp(key, "images") == 0)
			images_read(&v, doc);
	}
}

/* Finds an attribute: outputs, then params, then the documented defaults. */
static bool
req_attr(Req *req, const char *key, JsonbValue *res)
{
	int			i;

	for (i = 0; i < 2; i++)
		if (req->docs[i].jc &&
			getKeyJsonValueFromContainer(req->docs[i].jc, key, strlen(key), res))
			return true;
	if (strcmp(req->media, "video") == 0 && strcmp(key, "audio") == 0)
	{
		res->type = jbvBool;
		res->val.boolean = false;
		return true;
	}
	if (strcmp(req->media, "image") == 0 && strcmp(key, "size") == 0)
	{
		res->type = jbvString;
		res->val.string.val = "1024x1024";
		res->val.string.len = 9;
		return true;
	}
	return false;
}

/* The quantities of the request, outputs first. */
static void
req_load(Req *req, Jsonb *params, Jsonb *outputs, const char *media)
{
	Doc		   *out = &req->docs[0];
	Doc		   *par = &req->docs[1];
	Doc		   *size_doc;
	int64		w = DEFAULT_SIDE,
				h = DEFAULT_SIDE;
	int			i;

	req->media = media;
	doc_read(outputs, "outputs", true, out);
	doc_read(params, "params", false, par);

	size_doc = out->has_size ? out : par->has_size ? par : NULL;
	if (size_doc)
	{
		w = size_doc->width;
		h = size_doc->height;
	}
	if (out->has_images)
	{
		req->nimages = out->nimages;
		req->areas = palloc(sizeof(int64) * (out->nimages + 1));
		for (i = 0; i < out->nimages; i++)
			req->areas[i] = out->img_w[i] ? out->img_w[i] * out->img_h[i] : w * h;
	}
	else
	{
		req->nimages = out->has_n ? out->n : par->has_n ? par->n : 1;
		req->areas = palloc(sizeof(int64) * req->nimages);
		for (i = 0; i < req->nimages; i++)
			req->areas[i] = w * h;
	}
	req->input_images = out->has_input ? out->input_images :
		par->has_input ? par->input_images : 0;
	req->duration = out->has_duration ? &out->duration :
		par->has_duration ? &par->duration : NULL;
}

static bool
jbv_equal(JsonbValue *a, JsonbValue *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type)
	{
		case jbvNull:
			return true;
		case jbvBool:
			return a->val.boolean == b->val.boolean;
		case jbvString:
			return a->val.string.len == b->val.string.len &&
				memcmp(a->val.string.val, b->val.string.val, a->val.string.len) == 0;
		case jbvNumeric:
			return DatumGetInt32(DirectFunctionCall2(numeric_cmp,
													 NumericGetDatum(a->val.numeric),
													 NumericGetDatum(b->val.numeric))) == 0;
		default:
			return false;		/* containers never equal a condition */
	}
}

static bool
comp_matches(PriceComp *c, Req *req)
{
	int			i,
				j;

	for (i = 0; i < c->ncond; i++)
	{
		JsonbValue	attr;
		bool		any = false;

		if (!req_attr(req, c->conds[i].key, &attr))
			return false;
		for (j = 0; j < c->conds[i].nvals && !any; j++)
			any = jbv_equal(&attr, &c->conds[i].vals[j]);
		if (!any)
			return false;
	}
	return true;
}

static bool
jbv_is(JsonbValue *v, const char *s)
{
	return v->type == jbvString && (size_t) v->val.string.len == strlen(s) &&
		memcmp(v->val.string.val, s, v->val.string.len) == 0;
}

static void
comp_invalid(int n, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid price component %d", n),
			 errdetail("%s", detail)));
}

static void
conds_read(JsonbValue *v, PriceComp *c, int n)
{
	JsonbIterator *it;
	JsonbIteratorToken tok;
	JsonbValue	val;
	int			k = 0;

	if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		comp_invalid(n, "\"conditions\" must be an object.");
	c->ncond = JsonContainerSize(v->val.binary.data);
	c->conds = palloc0(sizeof(Cond) * (c->ncond + 1));
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &val, true)) != WJB_DONE)
	{
		Cond	   *cond = &c->conds[k];

		if (tok == WJB_KEY)
		{
			cond->key = pnstrdup(val.val.string.val, val.val.string.len);
			continue;
		}
		if (tok != WJB_VALUE)
			continue;
		if (val.type != jbvBinary)
		{
			cond->nvals = 1;
			cond->vals = palloc(sizeof(JsonbValue));
			cond->vals[0] = val;
		}
		else if (JsonContainerIsArray(val.val.binary.data) &&
				 JsonContainerSize(val.val.binary.data) > 0)
		{
			JsonbContainer *arr = val.val.binary.data;
			int			i;

			cond->nvals = JsonContainerSize(arr);
			cond->vals = palloc(sizeof(JsonbValue) * cond->nvals);
			for (i = 0; i < cond->nvals; i++)
			{
				cond->vals[i] = *getIthJsonbValueFromContainer(arr, i);
				if (cond->vals[i].type == jbvBinary)
					comp_invalid(n, "A condition's value is a scalar or a non-empty array of scalars.");
			}
		}
		else
			comp_invalid(n, "A condition's value is a scalar or a non-empty array of scalars.");
		k++;
	}
}

/* Parses and checks a price; media (NULL: any) limits the metrics. */
static PriceComp *
comps_read(Jsonb *components, const char *media, int *ncomps)
{
	PriceComp  *comps;
	bool		any_output = false;
	int			n,
				i;

	if (!JB_ROOT_IS_ARRAY(components) || JB_ROOT_IS_SCALAR(components) ||
		JB_ROOT_COUNT(components) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("price components must be a non-empty JSON array")));
	n = JB_ROOT_COUNT(components);
	comps = palloc0(sizeof(PriceComp) * n);
	for (i = 0; i < n; i++)
	{
		PriceComp  *c = &comps[i];
		JsonbValue *cv = getIthJsonbValueFromContainer(&components->root, i);
		JsonbIterator *it;
		JsonbIteratorToken tok;
		JsonbValue	v;
		char	   *key = NULL;
		bool		has_type = false,
					has_metric = false,
					has_price = false;

		if (cv->type != jbvBinary || !JsonContainerIsObject(cv->val.binary.data))
			comp_invalid(i + 1, "A component is a JSON object.");
		c->unit_size = 1;
		it = JsonbIteratorInit(cv->val.binary.data);
		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			if (tok == WJB_KEY)
			{
				key = pnstrdup(v.val.string.val, v.val.string.len);
				continue;
			}
			if (tok != WJB_VALUE)
				continue;
			if (strcmp(key, "type") == 0)
			{
				c->output = jbv_is(&v, "output");
				if (!c->output && !jbv_is(&v, "input"))
					comp_invalid(i + 1, "\"type\" is \"output\" or \"input\".");
				has_type = true;
			}
			else if (strcmp(key, "metric") == 0)
			{
				int			m;

				for (m = 0; m < NUM_METRICS && !has_metric; m++)
					if (jbv_is(&v, metric_names[m]))
					{
						c->metric = (Metric) m;
						has_metric = true;
					}
				if (!has_metric)
					comp_invalid(i + 1, "\"metric\" is one of request, image, megapixel, second, input_image.");
			}
			else if (strcmp(key, "unit_price_micros") == 0)
			{
				c->unit_price = json_int(&v, "unit_price_micros", 0, PG_INT64_MAX);
				has_price = true;
			}
			else if (strcmp(key, "unit_size") == 0)
				c->unit_size = json_int(&v, "unit_size", 1, PG_INT64_MAX);
			else if (strcmp(key, "max_per_image") == 0)
				c->max_per_image = json_int(&v, "max_per_image", 1, PG_INT64_MAX);
			else if (strcmp(key, "conditions") == 0)
				conds_read(&v, c, i + 1);
			else
				comp_invalid(i + 1, psprintf("Unknown key \"%s\".", key));
		}
		if (!has_type || !has_metric || !has_price)
			comp_invalid(i + 1, "A component has \"type\", \"metric\" and \"unit_price_micros\".");
		if ((c->metric == METRIC_INPUT_IMAGE) == c->output)
			comp_invalid(i + 1, "\"input\" components, and only they, use metric input_image.");
		if (c->max_per_image && c->metric != METRIC_MEGAPIXEL)
			comp_invalid(i + 1, "\"max_per_image\" applies to the megapixel metric only.");
		if (media &&
			(strcmp(media, "video") == 0 ?
			 (c->metric == METRIC_IMAGE || c->metric == METRIC_MEGAPIXEL) :
			 c->metric == METRIC_SECOND))
			comp_invalid(i + 1, psprintf("Metric %s does not apply to %s models.",
										 metric_names[c->metric], media));
		any_output |= c->output;
	}
	if (!any_output)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a price needs at least one output component")));
	*ncomps = n;
	return comps;
}

/* Exact decimal of pixels / 2^20: finite, at most 20 digits after the point. */
static void
append_megapixels(StringInfo buf, int64 pixels)
{
	int64		rem = pixels & ((INT64CONST(1) << MP_SHIFT) - 1);

	appendStringInfo(buf, INT64_FORMAT, pixels >> MP_SHIFT);
	if (rem)
		appendStringInfoChar(buf, '.');
	while (rem)
	{
		rem *= 10;
		appendStringInfoChar(buf, '0' + (char) (rem >> MP_SHIFT));
		rem &= (INT64CONST(1) << MP_SHIFT) - 1;
	}
}

/*
 * Quantity of one component: returns the billable quantity (whole units of
 * the metric) and appends the exact measured quantity to qty.
 */
static int64
comp_quantity(PriceComp *c, Req *req, StringInfo qty)
{
	int64		billable = 0;
	int64		pixels = 0;
	int			i;

	switch (c->metric)
	{
		case METRIC_REQUEST:
			billable = 1;
			break;
		case METRIC_IMAGE:
			billable = req->nimages;
			break;
		case METRIC_MEGAPIXEL:
			for (i = 0; i < req->nimages; i++)
			{
				int64		mp = (req->areas[i] + (INT64CONST(1) << MP_SHIFT) - 1) >> MP_SHIFT;

				if (c->max_per_image && mp > c->max_per_image)
					mp = c->max_per_image;
				billable += mp;
				pixels += req->areas[i];
			}
			append_megapixels(qty, pixels);
			return billable;
		case METRIC_SECOND:
			if (req->duration == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("duration_seconds is required"),
						 errdetail("The model is priced per second of video.")));
			appendStringInfoString(qty, req->duration->text);
			return req->duration->whole + (req->duration->fraction ? 1 : 0);
		case METRIC_INPUT_IMAGE:
			billable = req->input_images;
			break;
		case NUM_METRICS:
			pg_unreachable();
	}
	appendStringInfo(qty, INT64_FORMAT, billable);
	return billable;
}

/* 22023 naming the request's values of the keys that select output prices. */
static void
no_price(PriceComp *comps, int ncomps, Req *req)
{
	StringInfoData attrs;
	List	   *seen = NIL;
	int			i,
				j;

	initStringInfo(&attrs);
	for (i = 0; i < ncomps; i++)
		for (j = 0; comps[i].output && j < comps[i].ncond; j++)
		{
			char	   *key = comps[i].conds[j].key;
			JsonbValue	v;
			ListCell   *lc;
			bool		dup = false;

			foreach(lc, seen)
				dup |= strcmp(lfirst(lc), key) == 0;
			if (dup)
				continue;
			seen = lappend(seen, key);
			appendStringInfo(&attrs, "%s%s ", attrs.len ? ", " : "", key);
			if (!req_attr(req, key, &v))
				appendStringInfoString(&attrs, "(not given)");
			else if (v.type == jbvString)
				appendBinaryStringInfo(&attrs, v.val.string.val, v.val.string.len);
			else
				appendStringInfoString(&attrs, jbv_text(&v));
		}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("no price for %s", attrs.data),
			 errdetail("No output component of the model's price matches the request.")));
}

int64
pricing_cost(Jsonb *components, Jsonb *params, Jsonb *outputs,
			 const char *media, StringInfo comp_json)
{
	Req			req;
	PriceComp  *comps;
	int			ncomps,
				i;
	int64		total = 0;
	bool		any_output = false;
	StringInfoData qty;

	comps = comps_read(components, media, &ncomps);
	memset(&req, 0, sizeof(req));
	req_load(&req, params, outputs, media);
	initStringInfo(&qty);
	if (comp_json)
		appendStringInfoChar(comp_json, '[');
	for (i = 0; i < ncomps; i++)
	{
		PriceComp  *c = &comps[i];
		int64		billable,
					units,
					cost;

		if (!comp_matches(c, &req))
			continue;
		any_output |= c->output;
		resetStringInfo(&qty);
		billable = comp_quantity(c, &req, &qty);
		if (!c->output && billable == 0)
			continue;			/* no reference images: nothing to show */
		/* whole units of unit_size, rounded up; report what is billed */
		units = billable / c->unit_size + (billable % c->unit_size != 0);
		cost = money_mul(units, c->unit_price);
		total = money_add(total, cost);
		if (comp_json)
		{
			appendStringInfo(comp_json,
							 "%s{\"type\":\"%s\",\"metric\":\"%s\",\"quantity\":%s,"
							 "\"billable_quantity\":" INT64_FORMAT ",\"unit_price\":",
							 comp_json->data[comp_json->len - 1] == '[' ? "" : ",",
							 c->output ? "output" : "input", metric_names[c->metric],
							 qty.data, money_mul(units, c->unit_size));
			money_append(comp_json, c->unit_price);
			appendStringInfo(comp_json, ",\"total_cost\":" INT64_FORMAT "}", cost);
		}
	}
	if (!any_output)
		no_price(comps, ncomps, &req);
	if (comp_json)
		appendStringInfoChar(comp_json, ']');
	return total;
}

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

static void
model_disabled(const char *model)
{
	ereport(ERROR,
			(errcode(ERRCODE_BILLING_NOT_FOUND),
			 errmsg("model \"%s\" is disabled", model)));
}

/* The memory context of the caller's SPI connection (what SPI_palloc uses). */
static MemoryContext
spi_upper_context(void)
{
	void	   *probe = SPI_palloc(1);
	MemoryContext upper = GetMemoryChunkContext(probe);

	pfree(probe);
	return upper;
}

/*
 * Runs in a nested SPI connection of its own, so the caller's SPI_tuptable
 * survives; the caller must be connected (SPI_palloc finds its upper context).
 */
void
pricing_route(const char *model, const char *provider, TimestampTz at, bool admitting,
			  PriceRoute *route)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[3] = {TEXTOID, TEXTOID, TIMESTAMPTZOID};
	MemoryContext upper = spi_upper_context();
	MemoryContext old;
	Datum		values[3];
	char		nulls[3] = {' ', provider ? ' ' : 'n', ' '};
	bool		isnull;
	bool		found;
	char	   *currency;
	TimestampTz until;

	pricing_check_provider(provider);
	old = MemoryContextSwitchTo(upper);
	found = route_cache_get(model, provider, at, route);
	MemoryContextSwitchTo(old);
	if (found)
	{
		if (admitting && !route->active)
			model_disabled(model);
		return;
	}

	values[0] = CStringGetTextDatum(model);
	values[1] = provider ? CStringGetTextDatum(provider) : (Datum) 0;
	values[2] = TimestampTzGetDatum(at);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan_exec(&plan,
			  "SELECT m.media, m.active, mp.provider, mp.provider_name, mp.executed_model,"
			  "       p.price_id, p.currency, p.components, p.effective_from,"
			  "       (SELECT pg_catalog.min(n.effective_from) FROM billing.prices n"
			  "         WHERE n.model = m.model AND n.effective_from > $3)"
			  "  FROM billing.models m"
			  "  LEFT JOIN billing.model_providers mp ON mp.model = m.model"
			  "       AND (mp.provider = $2 OR ($2 IS NULL AND mp.is_default))"
			  "  LEFT JOIN LATERAL ("
			  "       SELECT p.price_id, p.currency, p.components, p.effective_from"
			  "         FROM billing.prices p"
			  "        WHERE p.model = m.model"
			  "          AND COALESCE(p.provider, '') IN (mp.provider, '')"
			  "          AND p.effective_from <= $3"
			  "        ORDER BY p.provider IS NULL, p.effective_from DESC"
			  "        LIMIT 1) p ON true"
			  " WHERE m.model = $1",
			  3, types, values, nulls, false, 1);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_BILLING_NOT_FOUND),
				 errmsg("model \"%s\" does not exist", model)));
	if (admitting && !DatumGetBool(spi_col(2, &isnull)))
		model_disabled(model);
	spi_col(3, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_BILLING_NOT_FOUND),
				 provider ? errmsg("provider \"%s\" does not serve model \"%s\"", provider, model)
				 : errmsg("model \"%s\" has no default provider", model)));
	spi_col(6, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model \"%s\" has no price in force", model),
				 errdetail("No price version for provider \"%s\" takes effect on or before %s.",
						   spi_text(3), timestamptz_to_str(at))));

	old = MemoryContextSwitchTo(upper);
	route->model = pstrdup(model);
	route->media = spi_text(1);
	route->active = DatumGetBool(spi_col(2, NULL));
	route->provider = spi_text(3);
	route->provider_name = spi_text(4);
	route->executed_model = spi_text(5);
	route->price_id = spi_int64(6);
	currency = spi_text(7);
	strlcpy(route->currency, currency, sizeof(route->currency));
	route->components = DatumGetJsonbPCopy(spi_col(8, NULL));
	MemoryContextSwitchTo(old);
	until = DatumGetTimestampTz(spi_col(10, &isnull));
	route_cache_put(model, provider, route, DatumGetTimestampTz(spi_col(9, NULL)),
					isnull ? DT_NOEND : until);
	SPI_finish();
}

/* The price version price_id, as a route without provider details. */
static void
price_version(int64 price_id, PriceRoute *route)
{
	static SPIPlanPtr plan = NULL;
	MemoryContext upper = spi_upper_context();
	MemoryContext old;
	Datum		values[1] = {Int64GetDatum(price_id)};
	bool		found;

	old = MemoryContextSwitchTo(upper);
	found = price_cache_get(price_id, route);
	MemoryContextSwitchTo(old);
	if (found)
		return;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan_exec(&plan,
			  "SELECT p.model, m.media, p.currency, p.components"
			  "  FROM billing.prices p JOIN billing.models m ON m.model = p.model"
			  " WHERE p.price_id = $1",
			  1, (Oid[]) {INT8OID}, values, NULL, false, 1);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("price version " INT64_FORMAT " does not exist", price_id),
				 errdetail("The request was admitted with a price version that is gone.")));
	old = MemoryContextSwitchTo(upper);
	memset(route, 0, sizeof(PriceRoute));
	route->model = spi_text(1);
	route->media = spi_text(2);
	strlcpy(route->currency, spi_text(3), sizeof(route->currency));
	route->components = DatumGetJsonbPCopy(spi_col(4, NULL));
	route->price_id = price_id;
	MemoryContextSwitchTo(old);
	price_cache_put(route);
	SPI_finish();
}

void
pricing_settlement_route(const char *model, const char *admitted_provider, int64 price_id,
						 const char *routing_provider, TimestampTz began, PriceRoute *route)
{
	if (routing_provider == NULL || strcmp(routing_provider, admitted_provider) == 0)
	{
		MemoryContext old = MemoryContextSwitchTo(spi_upper_context());

		price_version(price_id, route);
		route->provider = pstrdup(admitted_provider);
		MemoryContextSwitchTo(old);
	}
	else
		pricing_route(model, routing_provider, began, false, route);
}

/* Route + price -> the JSON of docs/pricing.md (estimate or effective cost). */
static Datum
cost_json(const char *model, const char *provider, Jsonb *params, Jsonb *outputs)
{
	PriceRoute	route;
	StringInfoData comp;
	StringInfoData buf;
	int64		total;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	pricing_route(model, provider, GetCurrentTransactionStartTimestamp(), true, &route);
	SPI_finish();
	initStringInfo(&comp);
	total = pricing_cost(route.components, params, outputs, route.media, &comp);

	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"estimated\":%s", outputs ? "false" : "true");
	json_add_str(&buf, "model", route.model);
	json_add_str(&buf, "provider", route.provider);
	appendStringInfo(&buf, ",\"total_cost_micros\":" INT64_FORMAT, total);
	json_add_str(&buf, "currency", route.currency);
	appendStringInfo(&buf, ",\"components\":%s}", comp.data);
	return jsonb_from_text(buf.data);
}

PG_FUNCTION_INFO_V1(billing_estimate);
Datum
billing_estimate(PG_FUNCTION_ARGS)
{
	require_args(fcinfo, 2);
	PG_RETURN_DATUM(cost_json(text_to_cstring(PG_GETARG_TEXT_PP(0)), NULL,
							  PG_GETARG_JSONB_P(1), NULL));
}

PG_FUNCTION_INFO_V1(billing_effective_cost);
Datum
billing_effective_cost(PG_FUNCTION_ARGS)
{
	require_args(fcinfo, 2);
	PG_RETURN_DATUM(cost_json(text_to_cstring(PG_GETARG_TEXT_PP(0)),
							  PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2)),
							  NULL, PG_GETARG_JSONB_P(1)));
}

PG_FUNCTION_INFO_V1(billing_set_price);
Datum
billing_set_price(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr model_plan = NULL;
	static SPIPlanPtr provider_plan = NULL;
	static SPIPlanPtr insert_plan = NULL;
	static const Oid types[5] = {TEXTOID, TEXTOID, TEXTOID, JSONBOID, TIMESTAMPTZOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	const char *cur = billing_catalog_currency;	/* valid: checked when set */
	char	   *model;
	char	   *media;
	int			ncomps;
	int64		price_id;

	require_args(fcinfo, 2);
	if (PG_ARGISNULL(3) || TIMESTAMP_NOT_FINITE(PG_GETARG_TIMESTAMPTZ(3)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("effective_from must be a finite time, not null or infinity")));
	model = text_to_cstring(PG_GETARG_TEXT_PP(0));
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(2);
	nulls[1] = PG_ARGISNULL(2) ? 'n' : ' ';
	values[2] = CStringGetTextDatum(cur);
	values[3] = PG_GETARG_DATUM(1);
	values[4] = PG_GETARG_DATUM(3);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* FOR SHARE: set_model cannot change the media under this price */
	plan_exec(&model_plan, "SELECT media FROM billing.models WHERE model = $1 FOR SHARE",
			  1, types, values, nulls, false, 1);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_BILLING_NOT_FOUND),
				 errmsg("model \"%s\" does not exist", model)));
	media = spi_text(1);
	comps_read(PG_GETARG_JSONB_P(1), media, &ncomps);
	if (!PG_ARGISNULL(2))
	{
		plan_exec(&provider_plan,
				  "SELECT 1 FROM billing.model_providers WHERE model = $1 AND provider = $2",
				  2, types, values, nulls, true, 1);
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_BILLING_NOT_FOUND),
					 errmsg("provider \"%s\" does not serve model \"%s\"",
							text_to_cstring(PG_GETARG_TEXT_PP(2)), model)));
	}
	plan_exec(&insert_plan,
			  "INSERT INTO billing.prices (model, provider, currency, components, effective_from)"
			  " VALUES ($1, $2, $3, $4, $5) RETURNING price_id",
			  5, types, values, nulls, false, 0);
	price_id = spi_int64(1);
	SPI_finish();
	PG_RETURN_INT64(price_id);
}
