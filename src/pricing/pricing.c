/*
 * Pricing (docs/pricing.md): the SQL entry points estimate, effective_cost
 * and set_price. The engine behind them is one family of files, whose
 * contracts pricing_internal.h states.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "args.h"
#include "jsonout.h"
#include "ledger/ledger.h"
#include "money.h"
#include "pricing/pricing_internal.h"
#include "settings.h"
#include "spi_plan.h"

/* the currency of new prices, which set_price (SQL) reads */
static char *billing_catalog_currency = NULL;

/* A bad currency is refused by SET itself (22023), not by set_price later. */
static bool
check_catalog_currency(char **newval, void **extra, GucSource source)
{
	if (money_currency_valid(*newval))
		return true;
	GUC_check_errdetail("A currency is three upper-case letters, an ISO 4217 code such as \"USD\".");
	return false;
}

void
pricing_init(void)
{
	settings_define_string("billing.catalog_currency", "Currency of new prices.", NULL,
						   &billing_catalog_currency, "USD", check_catalog_currency);
}

/*
 * Route + price -> the JSON of docs/pricing.md (estimate or effective cost);
 * with_book: at the prices of price_book (NULL: the list), which it names.
 */
static Datum
cost_json(const char *model, const char *provider, bool with_book, const char *price_book,
		  Jsonb *params, Jsonb *outputs)
{
	PriceRoute	route;
	StringInfoData comp;
	StringInfoData buf;
	int64		total;

	pricing_book_route(model, provider, price_book, GetCurrentTransactionStartTimestamp(), true,
					   &route);
	initStringInfo(&comp);
	total = pricing_route_cost(&route, params, outputs, &comp);

	initStringInfo(&buf);
	json_begin(&buf);
	json_add_bool(&buf, "estimated", outputs == NULL);
	json_add_str(&buf, "model", route.model);
	json_add_str(&buf, "provider", route.provider);
	json_add_int(&buf, "total_cost_micros", total);
	json_add_str(&buf, "currency", route.currency);
	if (with_book)
		json_add_str(&buf, "price_book", route.price_book);
	json_add_raw(&buf, "components", comp.data);
	json_end(&buf);
	return jsonb_from_text(buf.data);
}

PG_FUNCTION_INFO_V1(billing_estimate);
Datum
billing_estimate(PG_FUNCTION_ARGS)
{
	args_require(fcinfo, 2);
	PG_RETURN_DATUM(cost_json(text_to_cstring(PG_GETARG_TEXT_PP(0)), NULL, false, NULL,
							  PG_GETARG_JSONB_P(1), NULL));
}

/* estimate(model, params, account_id): at the prices of the account's book now */
PG_FUNCTION_INFO_V1(billing_estimate_account);
Datum
billing_estimate_account(PG_FUNCTION_ARGS)
{
	MemoryContext upper = CurrentMemoryContext;
	Account		acct;
	char	   *book;

	args_require(fcinfo, 3);
	SPI_connect();
	account_load(PG_GETARG_INT64(2), &acct, true);
	book = account_price_book(acct.account_id, GetCurrentTransactionStartTimestamp());
	book = book ? MemoryContextStrdup(upper, book) : NULL;
	SPI_finish();
	PG_RETURN_DATUM(cost_json(text_to_cstring(PG_GETARG_TEXT_PP(0)), NULL, true, book,
							  PG_GETARG_JSONB_P(1), NULL));
}

PG_FUNCTION_INFO_V1(billing_effective_cost);
Datum
billing_effective_cost(PG_FUNCTION_ARGS)
{
	args_require(fcinfo, 2);
	PG_RETURN_DATUM(cost_json(text_to_cstring(PG_GETARG_TEXT_PP(0)),
							  args_text(fcinfo, 2), false, NULL,
							  NULL, PG_GETARG_JSONB_P(1)));
}

/*
 * billing._check_price(model, components, provider): the one validation of
 * a new price version, for billing.set_price (pricing.sql). The model must
 * exist, and its row is locked FOR SHARE so that set_model cannot change
 * its media under the new price; the components must be valid for that
 * media (pricingcomponents.c); a provider, when given, must serve the model.
 */
PG_FUNCTION_INFO_V1(billing_check_price);
Datum
billing_check_price(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr model_plan = NULL;
	static SPIPlanPtr provider_plan = NULL;
	char	   *model;
	int			ncomps;

	args_require(fcinfo, 2);
	model = text_to_cstring(PG_GETARG_TEXT_PP(0));

	SPI_connect();
	plan_run(&model_plan, "SELECT media FROM billing.models WHERE model = $1 FOR SHARE",
			 false, 1, PLAN_ARGS(ARG_TEXT(model)));
	if (SPI_processed == 0)
		pricing_no_model(model);
	pricing_components_read(PG_GETARG_JSONB_P(1), spi_text(1), &ncomps);
	if (!PG_ARGISNULL(2))
	{
		plan_run(&provider_plan, "SELECT 1 FROM billing.model_providers WHERE model = $1 AND provider = $2",
				 true, 1, PLAN_ARGS(ARG_TEXT(model), ARG_TEXT(args_text(fcinfo, 2))));
		if (SPI_processed == 0)
			pricing_no_route(model, text_to_cstring(PG_GETARG_TEXT_PP(2)));
	}
	SPI_finish();
	PG_RETURN_VOID();
}
