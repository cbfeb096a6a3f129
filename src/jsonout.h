/* Building jsonb results from text. */
#ifndef BILLING_JSONOUT_H
#define BILLING_JSONOUT_H

#include "postgres.h"
#include "lib/stringinfo.h"

/* Parses JSON text into a jsonb Datum (in the current memory context). */
extern Datum jsonb_from_text(const char *json);
/* Appends ,"key":"value" (value escaped) or ,"key":null when value is NULL. */
extern void json_add_str(StringInfo buf, const char *key, const char *value);
/* Refuses (22023) a jsonb argument that is not an object; what names it. */
extern void json_require_object(Datum jsonb, const char *what);

/* Text of the scalar under key in a jsonb object, or NULL when absent or null. */
extern char *jsonb_get_text(Datum jsonb, const char *key);

#endif
