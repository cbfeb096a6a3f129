/*
 * Billing details (docs/invoices.md, "The invoice document"): the one check
 * of the object that names a buyer (billing.set_billing_details) or the
 * seller (the setting billing.seller_details), so that an invoice copies
 * only details that passed it.
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "args.h"
#include "invoice/invoice.h"

static const char *const top_keys[] = {"legal_name", "address", "tax_id", "email"};
static const char *const address_keys[] = {"line1", "line2", "city", "region", "postal_code", "country"};

/* index of key among names, or -1 */
static int
key_index(const JsonbValue *key, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (strlen(names[i]) == (size_t) key->val.string.len &&
			strncmp(names[i], key->val.string.val, key->val.string.len) == 0)
			return i;
	return -1;
}

/* NULL when a string of 1 to 256 characters (or JSON null), else why not */
static char *
string_problem(const char *key, const JsonbValue *v)
{
	if (v->type == jbvNull)
		return NULL;
	if (v->type != jbvString || !args_length_ok(v->val.string.val, v->val.string.len, ARGS_KEY_MAX))
		return psprintf("\"%s\" must be a string of 1 to %d characters.", key, ARGS_KEY_MAX);
	return NULL;
}

/*
 * NULL when the object passes, else a sentence that says what is wrong:
 * legal_name required, only the keys docs/invoices.md names, strings of 1 to 256
 * characters, country two capital letters (ISO 3166-1 alpha-2), an email
 * with one "@" between other characters.
 */
static char *
details_problem(JsonbContainer *c, bool address)
{
	const char *const *names = address ? address_keys : top_keys;
	int			n = address ? lengthof(address_keys) : lengthof(top_keys);
	JsonbIterator *it;
	JsonbValue	v;
	JsonbValue	key;
	JsonbIteratorToken tok;
	bool		has_name = false;

	if (!JsonContainerIsObject(c))
		return psprintf("%s must be a JSON object.", address ? "\"address\"" : "The details");
	it = JsonbIteratorInit(c);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		int			i;
		char	   *problem;
		char	   *name;

		if (tok != WJB_KEY)
			continue;
		key = v;
		name = pnstrdup(key.val.string.val, key.val.string.len);
		i = key_index(&key, names, n);
		tok = JsonbIteratorNext(&it, &v, true);
		if (i < 0)
			return psprintf("\"%s\" is not a key of %s.", name,
							address ? "an address" : "billing details");
		if (!address && strcmp(name, "address") == 0)
		{
			if (v.type == jbvNull)
				continue;
			if (v.type != jbvBinary)
				return pstrdup("\"address\" must be a JSON object.");
			problem = details_problem(v.val.binary.data, true);
		}
		else
			problem = string_problem(name, &v);
		if (problem != NULL)
			return problem;
		if (v.type != jbvString)
			continue;
		if (!address && strcmp(name, "legal_name") == 0)
			has_name = true;
		if (address && strcmp(name, "country") == 0 &&
			(v.val.string.len != 2 ||
			 !(v.val.string.val[0] >= 'A' && v.val.string.val[0] <= 'Z') ||
			 !(v.val.string.val[1] >= 'A' && v.val.string.val[1] <= 'Z')))
			return pstrdup("\"country\" must be an ISO 3166-1 alpha-2 code, such as \"DE\".");
		if (!address && strcmp(name, "email") == 0)
		{
			char	   *email = pnstrdup(v.val.string.val, v.val.string.len);
			char	   *at = strchr(email, '@');

			if (at == NULL || at == email || at[1] == '\0' || strchr(at + 1, '@') != NULL)
				return pstrdup("\"email\" must have one \"@\" between its other characters.");
		}
	}
	if (!address && !has_name)
		return pstrdup("\"legal_name\" is required.");
	return NULL;
}

/* billing._check_billing_details(details jsonb): 22023 unless they pass */
PG_FUNCTION_INFO_V1(billing_check_billing_details);
Datum
billing_check_billing_details(PG_FUNCTION_ARGS)
{
	Jsonb	   *details = PG_GETARG_JSONB_P(0);
	char	   *problem = details_problem(&details->root, false);

	if (problem != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid billing details"),
				 errdetail("%s", problem)));
	PG_RETURN_VOID();
}

/*
 * The check of billing.seller_details: empty (none), or JSON text of
 * details that pass. A check hook reports instead of raising, so jsonb_in's
 * syntax error is caught: parsing allocates memory and takes no lock or
 * buffer, so flushing its error leaves nothing behind.
 */
bool
invoice_check_seller(char **newval, void **extra, GucSource source)
{
	MemoryContext mcxt = CurrentMemoryContext;
	Jsonb	   *details = NULL;
	char	   *problem;

	if (**newval == '\0')
		return true;
	PG_TRY();
	{
		details = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(*newval)));
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(mcxt);
		edata = CopyErrorData();
		FlushErrorState();
		GUC_check_errdetail("The value is not JSON: %s", edata->message);
		return false;
	}
	PG_END_TRY();
	problem = details_problem(&details->root, false);
	if (problem != NULL)
	{
		GUC_check_errdetail("%s", problem);
		return false;
	}
	return true;
}
