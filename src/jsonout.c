/* Building JSON results (jsonout.h). */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "jsonout.h"
#include "money.h"

Datum
jsonb_from_text(const char *json)
{
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
}

void
json_begin(StringInfo buf)
{
	appendStringInfoChar(buf, '{');
}

void
json_end(StringInfo buf)
{
	appendStringInfoChar(buf, '}');
}

void
json_begin_array(StringInfo buf)
{
	appendStringInfoChar(buf, '[');
}

void
json_end_array(StringInfo buf)
{
	appendStringInfoChar(buf, ']');
}

/* a comma before every member or element but the first */
static void
json_separate(StringInfo buf)
{
	if (buf->len > 0 && buf->data[buf->len - 1] != '{' && buf->data[buf->len - 1] != '[')
		appendStringInfoChar(buf, ',');
}

void
json_key(StringInfo buf, const char *key)
{
	json_separate(buf);
	escape_json(buf, key);
	appendStringInfoChar(buf, ':');
}

void
json_add_int(StringInfo buf, const char *key, int64 value)
{
	json_key(buf, key);
	appendStringInfo(buf, INT64_FORMAT, value);
}

void
json_add_bool(StringInfo buf, const char *key, bool value)
{
	json_key(buf, key);
	appendStringInfoString(buf, value ? "true" : "false");
}

void
json_add_money(StringInfo buf, const char *key, int64 micros)
{
	json_key(buf, key);
	money_append(buf, micros);
}

void
json_add_time(StringInfo buf, const char *key, TimestampTz t, bool isnull)
{
	char		text[MAXDATELEN + 1];

	if (isnull)
	{
		json_add_str(buf, key, NULL);
		return;
	}
	json_add_str(buf, key, JsonEncodeDateTime(text, TimestampTzGetDatum(t), TIMESTAMPTZOID, NULL));
}

void
json_add_raw(StringInfo buf, const char *key, const char *json)
{
	json_key(buf, key);
	appendStringInfoString(buf, json);
}

void
json_add_str(StringInfo buf, const char *key, const char *value)
{
	json_key(buf, key);
	if (value)
		escape_json(buf, value);
	else
		appendStringInfoString(buf, "null");
}

void
json_require_object(Datum jsonb, const char *what)
{
	Jsonb	   *j = DatumGetJsonbP(jsonb);

	if (!JB_ROOT_IS_OBJECT(j) || JB_ROOT_IS_SCALAR(j))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a JSON object", what)));
}

char *
jsonb_get_text(Datum jsonb, const char *key)
{
	Jsonb	   *j = DatumGetJsonbP(jsonb);
	JsonbValue	k;
	JsonbValue *v;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	v = findJsonbValueFromContainer(&j->root, JB_FOBJECT, &k);
	if (v == NULL || v->type == jbvNull)
		return NULL;
	switch (v->type)
	{
		case jbvString:
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
		case jbvBool:
			return pstrdup(v->val.boolean ? "true" : "false");
		default:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("\"%s\" must be a JSON scalar", key)));
	}
	return NULL;				/* keep compiler quiet */
}

char *
jsonb_field_text(Datum jsonb, const char *key)
{
	LOCAL_FCINFO(fcinfo, 2);
	Datum		result;

	InitFunctionCallInfoData(*fcinfo, NULL, 2, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = jsonb;
	fcinfo->args[0].isnull = false;
	fcinfo->args[1].value = CStringGetTextDatum(key);
	fcinfo->args[1].isnull = false;
	result = jsonb_object_field_text(fcinfo);
	return fcinfo->isnull ? NULL : TextDatumGetCString(result);
}
