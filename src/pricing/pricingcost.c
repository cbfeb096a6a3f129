/*
 * Costing (docs/pricing.md): the components of a price that match a
 * request, each times its billable quantity. Money is checked int64 micros;
 * quantities are exact (megapixels as exact decimals of pixels / 2^20).
 */
#include "postgres.h"

#include "fmgr.h"
#include "nodes/pg_list.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "jsonout.h"
#include "money.h"
#include "pricing/pricing_internal.h"

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
comp_matches(PriceComp *c, PricedRequest *req)
{
	int			i,
				j;

	for (i = 0; i < c->ncond; i++)
	{
		JsonbValue	attr;
		bool		any = false;

		if (!pricing_request_attr(req, c->conds[i].key, &attr))
			return false;
		for (j = 0; j < c->conds[i].nvals && !any; j++)
			any = jbv_equal(&attr, &c->conds[i].vals[j]);
		if (!any)
			return false;
	}
	return true;
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
comp_quantity(PriceComp *c, PricedRequest *req, StringInfo qty)
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
no_price(PriceComp *comps, int ncomps, PricedRequest *req)
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
			if (!pricing_request_attr(req, key, &v))
				appendStringInfoString(&attrs, "(not given)");
			else if (v.type == jbvString)
				appendBinaryStringInfo(&attrs, v.val.string.val, v.val.string.len);
			else
				appendStringInfoString(&attrs, pricing_jbv_text(&v));
		}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("no price for %s", attrs.data),
			 errdetail("No output component of the model's price matches the request.")));
}

/*
 * The cost of a request at components, each component's total discounted by
 * ppm (< 0: none). priced NULL: a request that no output component prices is
 * refused (22023); else *priced says whether one did, and a per-second
 * component without a duration prices nothing (a provider cost is unknown
 * there, not an error of the request).
 */
static int64
cost_of(Jsonb *components, Jsonb *params, Jsonb *outputs, const char *media,
		int32 ppm, StringInfo comp_json, bool *priced)
{
	PricedRequest req;
	PriceComp  *comps;
	int			ncomps,
				i;
	int64		total = 0;
	bool		any_output = false;
	StringInfoData qty;

	comps = pricing_components_read(components, media, &ncomps);
	memset(&req, 0, sizeof(req));
	pricing_request_load(&req, params, outputs, media);
	initStringInfo(&qty);
	if (comp_json)
		json_begin_array(comp_json);
	for (i = 0; i < ncomps; i++)
	{
		PriceComp  *c = &comps[i];
		int64		billable,
					units,
					list_cost,
					cost;

		if (!comp_matches(c, &req) ||
			(priced && c->metric == METRIC_SECOND && req.duration == NULL))
			continue;
		any_output |= c->output;
		resetStringInfo(&qty);
		billable = comp_quantity(c, &req, &qty);
		if (!c->output && billable == 0)
			continue;			/* no reference images: nothing to show */
		/* whole units of unit_size, rounded up; report what is billed */
		units = billable / c->unit_size + (billable % c->unit_size != 0);
		list_cost = money_mul(units, c->unit_price);
		cost = ppm < 0 ? list_cost : money_scale_ppm(list_cost, ppm);
		total = money_add(total, cost);
		if (comp_json)
		{
			if (comp_json->data[comp_json->len - 1] != '[')
				appendStringInfoChar(comp_json, ',');
			json_begin(comp_json);
			json_add_str(comp_json, "type", c->output ? "output" : "input");
			json_add_str(comp_json, "metric", pricing_metric_names[c->metric]);
			json_add_raw(comp_json, "quantity", qty.data);
			json_add_int(comp_json, "billable_quantity", money_mul(units, c->unit_size));
			json_add_money(comp_json, "unit_price", c->unit_price);
			json_add_int(comp_json, "total_cost", cost);
			if (ppm >= 0)
			{
				json_add_int(comp_json, "multiplier_ppm", ppm);
				json_add_int(comp_json, "list_total_cost_micros", list_cost);
			}
			json_end(comp_json);
		}
	}
	if (!any_output && priced)
	{
		*priced = false;
		return 0;
	}
	if (!any_output)
		no_price(comps, ncomps, &req);
	if (comp_json)
		json_end_array(comp_json);
	if (priced)
		*priced = true;
	return total;
}

int64
pricing_cost(Jsonb *components, Jsonb *params, Jsonb *outputs,
			 const char *media, StringInfo comp_json)
{
	return cost_of(components, params, outputs, media, -1, comp_json, NULL);
}

int64
pricing_route_cost(const PriceRoute *route, Jsonb *params, Jsonb *outputs, StringInfo comp_json)
{
	return cost_of(route->components, params, outputs, route->media,
				   route->discount_id ? route->multiplier_ppm : -1, comp_json, NULL);
}

bool
pricing_cost_if_priced(Jsonb *components, Jsonb *params, Jsonb *outputs, const char *media,
					   int64 *cost)
{
	bool		priced;

	*cost = cost_of(components, params, outputs, media, -1, NULL, &priced);
	return priced;
}
