/*
 * The ledger's kinds of entry: the one list. ledger_post() refuses a kind
 * that is not in it, and billing.verify() checks every entry
 * against the same list through billing._ledger_entry_valid().
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"

#include "ledger/ledger.h"

typedef struct LedgerKind
{
	const char *name;
	int			sign;			/* +1 credit, -1 debit, 0 either */
	bool		needs_request;	/* names the request it corrects */
} LedgerKind;

static const LedgerKind ledger_kinds[] = {
	{"funds", 1, false},
	{"auto_topup", 1, false},
	{"usage", -1, false},
	{"refund", 1, true},
	{"adjustment", 0, false},
	{"invoice_payment", 1, false},
	{"grant", 1, false},
	{"expiry", -1, false},
	{"reversal", -1, false},
	{"credit_note", 1, false},
};

static const LedgerKind *
ledger_kind(const char *name)
{
	for (size_t i = 0; i < lengthof(ledger_kinds); i++)
		if (strcmp(name, ledger_kinds[i].name) == 0)
			return &ledger_kinds[i];
	return NULL;
}

void
ledger_check_entry(const char *kind, int64 amount)
{
	const LedgerKind *k = ledger_kind(kind);

	if (k == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger entry kind \"%s\"", kind)));
	if (amount == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a ledger entry cannot be zero")));
}

/* billing._ledger_entry_valid(kind, amount_micros, has_request) for verify() */
PG_FUNCTION_INFO_V1(billing_ledger_entry_valid);
Datum
billing_ledger_entry_valid(PG_FUNCTION_ARGS)
{
	const LedgerKind *k = ledger_kind(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	int64		amount = PG_GETARG_INT64(1);

	PG_RETURN_BOOL(k != NULL && amount != 0 &&
				   (k->sign == 0 || (amount > 0) == (k->sign > 0)) &&
				   (PG_GETARG_BOOL(2) || !k->needs_request));
}
