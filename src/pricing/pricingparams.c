/*
 * Reading a request's params and outputs for pricing (docs/pricing.md).
 *
 * Both are read straight from their jsonb containers in one pass each,
 * never reparsed. Numbers stay exact: jsonb numerics are read as decimal
 * text.
 */
#include "postgres.h"

#include "common/int.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "pricing/pricing_internal.h"

static void
bad_input(const char *what, const char *detail_fmt, const char *value)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid %s", what),
			 errdetail(detail_fmt, value)));
}

char *
pricing_jbv_text(JsonbValue *v)
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

int64
pricing_json_int(JsonbValue *v, const char *what, int64 min, int64 max)
{
	Decimal		d;
	int64		r;

	if (v->type != jbvNumeric)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be an integer", what),
				 errdetail("Got %s.", pricing_jbv_text(v))));
	decimal_read(v, &d);
	r = d.negative ? -d.whole : d.whole;
	if (d.fraction || d.overflow || r < min || r > max)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be an integer between " INT64_FORMAT " and " INT64_FORMAT,
						what, min, max),
				 errdetail("Got %s.", pricing_jbv_text(v))));
	return r;
}

bool
pricing_object_next(JsonbIterator **it, char **key, JsonbValue *v)
{
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(it, v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			*key = pnstrdup(v->val.string.val, v->val.string.len);
		else if (tok == WJB_VALUE)
			return true;
	}
	return false;
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
		bad_input("size", "\"size\" must be a string \"WIDTHxHEIGHT\"; got %s.", pricing_jbv_text(v));
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
			 errmsg("invalid size %s", pricing_jbv_text(v)),
			 errdetail("A size is \"WIDTHxHEIGHT\" in pixels, each side from 1 to %d.",
					   MAX_SIDE)));
}

static void
images_read(JsonbValue *v, Doc *doc)
{
	JsonbContainer *jc;
	int			i;

	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		bad_input("outputs", "\"images\" must be an array of images; got %s.", pricing_jbv_text(v));
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
			bad_input("outputs", "Each image must be an object; got %s.", pricing_jbv_text(img));
		has_w = getKeyJsonValueFromContainer(img->val.binary.data, "width", 5, &w) != NULL;
		has_h = getKeyJsonValueFromContainer(img->val.binary.data, "height", 6, &h) != NULL;
		if (has_w != has_h)
			bad_input("outputs", "An image gives both \"width\" and \"height\" or neither; got %s.",
					  pricing_jbv_text(img));
		if (has_w)
		{
			doc->img_w[i] = pricing_json_int(&w, "image width", 1, MAX_SIDE);
			doc->img_h[i] = pricing_json_int(&h, "image height", 1, MAX_SIDE);
		}
	}
	doc->has_images = true;
}

/* Reads and type-checks the known keys of params or outputs in one pass. */
static void
doc_read(Jsonb *jb, const char *what, bool outputs, Doc *doc)
{
	JsonbIterator *it;
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
	while (pricing_object_next(&it, &key, &v))
	{
		if (strcmp(key, "n") == 0)
		{
			doc->n = pricing_json_int(&v, "n", 1, MAX_IMAGES);
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
				doc->input_images = pricing_json_int(&v, "input_images", 0, MAX_INPUT_IMAGES);
			doc->has_input = true;
		}
		else if (strcmp(key, "duration_seconds") == 0)
		{
			if (v.type != jbvNumeric)
				bad_input("duration_seconds", "\"duration_seconds\" must be a number; got %s.",
						  pricing_jbv_text(&v));
			decimal_read(&v, &doc->duration);
			if (doc->duration.negative || doc->duration.overflow ||
				(doc->duration.whole == 0 && !doc->duration.fraction) ||
				doc->duration.whole > MAX_DURATION ||
				(doc->duration.whole == MAX_DURATION && doc->duration.fraction))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("duration_seconds must be greater than 0 and at most %d",
								MAX_DURATION),
						 errdetail("Got %s.", pricing_jbv_text(&v))));
			doc->has_duration = true;
		}
		else if (strcmp(key, "resolution") == 0)
		{
			if (v.type != jbvString)
				bad_input("resolution", "\"resolution\" must be a string; got %s.", pricing_jbv_text(&v));
		}
		else if (strcmp(key, "audio") == 0)
		{
			if (v.type != jbvBool)
				bad_input("audio", "\"audio\" must be true or false; got %s.", pricing_jbv_text(&v));
		}
		else if (outputs && strcmp(key, "images") == 0)
			images_read(&v, doc);
	}
}

bool
pricing_request_attr(PricedRequest *req, const char *key, JsonbValue *res)
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

void
pricing_request_load(PricedRequest *req, Jsonb *params, Jsonb *outputs, const char *media)
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
