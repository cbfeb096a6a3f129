/*
 * Building JSON results: the one way billing's C writes JSON (results,
 * events, notifications). An object is json_begin ... json_end; each
 * json_add_* writes one member, with the comma when one is due. Text is
 * turned into jsonb by jsonb_from_text.
 */
#ifndef BILLING_JSONOUT_H
#define BILLING_JSONOUT_H

#include "postgres.h"
#include "lib/stringinfo.h"
#include "utils/timestamp.h"

/* Parses JSON text into a jsonb Datum (in the current memory context). */
extern Datum jsonb_from_text(const char *json);
/* Opens and closes an object (or the array of json_begin_array). */
extern void json_begin(StringInfo buf);
extern void json_end(StringInfo buf);
extern void json_begin_array(StringInfo buf);
extern void json_end_array(StringInfo buf);
/* Writes "key": (after a comma unless the object is empty); an object's members follow. */
extern void json_key(StringInfo buf, const char *key);
/* "key":"value" (value escaped), or "key":null when value is NULL */
extern void json_add_str(StringInfo buf, const char *key, const char *value);
/* "key":n */
extern void json_add_int(StringInfo buf, const char *key, int64 value);
/* "key":true or "key":false */
extern void json_add_bool(StringInfo buf, const char *key, bool value);
/* "key":d, micros as an exact decimal of currency units (money_format) */
extern void json_add_money(StringInfo buf, const char *key, int64 micros);
/* "key":"2026-01-31T12:00:00+00:00" (ISO 8601, as jsonb renders a timestamptz), or null */
extern void json_add_time(StringInfo buf, const char *key, TimestampTz t, bool isnull);
/* "key":json, json already JSON text */
extern void json_add_raw(StringInfo buf, const char *key, const char *json);
/* Refuses (22023) a jsonb argument that is not an object; what names it. */
extern void json_require_object(Datum jsonb, const char *what);

/* Text of the scalar under key in a jsonb object, or NULL when absent or null. */
extern char *jsonb_get_text(Datum jsonb, const char *key);
/* jsonb ->> key: its text, a value that is no scalar as JSON text; NULL when absent or null. */
extern char *jsonb_field_text(Datum jsonb, const char *key);

#endif
