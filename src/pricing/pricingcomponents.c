/*
 * Reading and checking a price version's components (docs/pricing.md): the
 * checks of set_price, and the parse that pricing_cost() prices with.
 */
#include "postgres.h"

#include "utils/jsonb.h"

#include "pricing/pricing_internal.h"

const char *const pricing_metric_names[NUM_METRICS] = {
	"request", "image", "megapixel", "second", "input_image"
};

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
	JsonbValue	val;
	char	   *key = NULL;
	int			k = 0;

	if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		comp_invalid(n, "\"conditions\" must be an object.");
	c->ncond = JsonContainerSize(v->val.binary.data);
	c->conds = palloc0(sizeof(Cond) * (c->ncond + 1));
	it = JsonbIteratorInit(v->val.binary.data);
	while (pricing_object_next(&it, &key, &val))
	{
		Cond	   *cond = &c->conds[k];

		cond->key = key;
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

PriceComp *
pricing_components_read(Jsonb *components, const char *media, int *ncomps)
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
		JsonbValue	v;
		char	   *key = NULL;
		bool		has_type = false,
					has_metric = false,
					has_price = false;

		if (cv->type != jbvBinary || !JsonContainerIsObject(cv->val.binary.data))
			comp_invalid(i + 1, "A component is a JSON object.");
		c->unit_size = 1;
		it = JsonbIteratorInit(cv->val.binary.data);
		while (pricing_object_next(&it, &key, &v))
		{
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
					if (jbv_is(&v, pricing_metric_names[m]))
					{
						c->metric = (Metric) m;
						has_metric = true;
					}
				if (!has_metric)
					comp_invalid(i + 1, "\"metric\" is one of request, image, megapixel, second, input_image.");
			}
			else if (strcmp(key, "unit_price_micros") == 0)
			{
				c->unit_price = pricing_json_int(&v, "unit_price_micros", 0, PG_INT64_MAX);
				has_price = true;
			}
			else if (strcmp(key, "unit_size") == 0)
				c->unit_size = pricing_json_int(&v, "unit_size", 1, PG_INT64_MAX);
			else if (strcmp(key, "max_per_image") == 0)
				c->max_per_image = pricing_json_int(&v, "max_per_image", 1, PG_INT64_MAX);
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
										 pricing_metric_names[c->metric], media));
		any_output |= c->output;
	}
	if (!any_output)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a price needs at least one output component")));
	*ncomps = n;
	return comps;
}
