/*
 * test/fuzz: randomized bad input for every public function of billing.
 *
 * Connects with the usual libpq environment (PGHOST, PGPORT, PGUSER), makes
 * its own database billing_fuzz, installs the extension, seeds a catalog,
 * accounts and requests, then makes N calls (default 12000) with malformed
 * or hostile arguments: bad JSON shapes, wrong types, huge numbers, overflow,
 * NaN-like strings, empty and oversized strings, unknown ids, negative
 * amounts. Application-tier calls run as billing_app, administrative ones as
 * billing_admin, so missing grants or a missing SECURITY DEFINER show too.
 *
 * A violation is any of:
 *   - the server crashes or the connection drops;
 *   - a refusal whose SQLSTATE is not documented (docs/security.md): the
 *     function may raise PB402, PB404, PB409 or 22023 (plus 23505 for a
 *     duplicate external_id, price or cost version, price book or assignment, and 23502/23514 on the
 *     plain-UPDATE path);
 *     PostgreSQL's own type input of an argument may raise any class 22 or
 *     54 error, recognised by its "portal parameter $n" context;
 *   - XX000 (internal error) anywhere, or a statement timeout;
 *   - a refused call that changed counts or sums of the billing tables;
 *   - an application-tier call that credited money (positive ledger total
 *     grew) or reported a negative cost;
 *   - billing.verify() reporting a problem, during or after the run.
 *
 * Deterministic: the seed is FUZZ_SEED (default 20261125); N is argv[1].
 * Prints counts per function and SQLSTATE; exits 1 on any violation.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libpq-fe.h"
#include "pqtool.h"

/* type OIDs of the arguments (pg_type.dat) */
#define BOOLOID 16
#define INT8OID 20
#define INT4OID 23
#define TEXTOID 25
#define DATEOID 1082
#define TIMESTAMPTZOID 1184
#define INTERVALOID 1186
#define JSONBOOID 3802
#define INT8ARRAYOID 1016

#define MAX_ARGS 7
#define MAX_IDS 256

typedef enum
{
	A_ACCOUNT, A_REQUEST, A_TOPUP, A_INVOICE, A_EVENT, A_AMOUNT,	/* bigint */
	A_COUNT,					/* integer */
	A_MODEL, A_BILLING_TYPE, A_CURRENCY, A_MEDIA, A_PROVIDER, A_CATEGORY,	/* text */
	A_KEY, A_TEXT, A_STATUS, A_SCOPE, A_PERIOD, A_SETTLEMENT,
	A_PARAMS, A_OUTPUTS, A_ROUTING, A_COMPONENTS, A_DETAILS,	/* jsonb */
	A_GRACE,					/* integer */
	A_THRESHOLDS,				/* bigint[] */
	A_BOOL, A_TSTZ, A_DATE, A_INTERVAL,
	A_BOOK, A_PPM, A_DISCOUNT,	/* price book (text), multiplier (integer), discount id */
	A_ENTRY, A_GRANT			/* bigint: a ledger entry, a grant */
} ArgKind;

typedef struct
{
	const char *name;
	int			admin;			/* 1: billing_admin tier, 0: billing_app */
	int			nargs;
	ArgKind		args[MAX_ARGS];
	const char *sql;			/* NULL: SELECT billing.name($1, ...) */
} Func;

typedef struct
{
	long		tried, accepted, refused_arg, refused_fn;
} Stats;

static Func funcs[] = {
	{"create_account", 0, 3, {A_TEXT, A_BILLING_TYPE, A_CURRENCY}, NULL},
	{"balance", 0, 1, {A_ACCOUNT}, NULL},
	{"estimate", 0, 2, {A_MODEL, A_PARAMS}, NULL},
	{"effective_cost", 0, 3, {A_MODEL, A_OUTPUTS, A_PROVIDER}, NULL},
	{"begin_request", 0, 5, {A_ACCOUNT, A_MODEL, A_PARAMS, A_KEY, A_SCOPE}, NULL},
	{"complete_request", 0, 3, {A_REQUEST, A_OUTPUTS, A_ROUTING}, NULL},
	{"fail_request", 0, 3, {A_REQUEST, A_TEXT, A_AMOUNT}, NULL},
	{"cancel_request", 0, 1, {A_REQUEST}, NULL},
	{"charge", 0, 7, {A_ACCOUNT, A_MODEL, A_PARAMS, A_OUTPUTS, A_ROUTING, A_KEY, A_SCOPE}, NULL},
	{"response_metadata", 0, 1, {A_REQUEST}, NULL},
	{"configure_auto_topup", 0, 6, {A_ACCOUNT, A_AMOUNT, A_AMOUNT, A_BOOL, A_AMOUNT, A_AMOUNT}, NULL},
	{"set_spend_limit", 0, 4, {A_ACCOUNT, A_AMOUNT, A_PERIOD, A_SCOPE}, NULL},
	{"set_balance_alerts", 0, 2, {A_ACCOUNT, A_THRESHOLDS}, NULL},
	{"requests UPDATE", 0, 4, {A_REQUEST, A_STATUS, A_OUTPUTS, A_ROUTING},
	"UPDATE billing.requests SET status = $2, outputs = $3, routing = $4 WHERE request_id OPERATOR(pg_catalog.=) $1"},
	{"add_funds", 1, 4, {A_ACCOUNT, A_AMOUNT, A_KEY, A_TEXT}, NULL},
	/* large amounts stand for NULL (all that is left), so that some refunds succeed */
	{"refund_request", 1, 4, {A_REQUEST, A_AMOUNT, A_TEXT, A_KEY},
	"SELECT billing.refund_request($1, CASE WHEN $2 OPERATOR(pg_catalog.>) 1000000 THEN NULL ELSE $2 END, $3, $4)"},
	{"adjust_balance", 1, 4, {A_ACCOUNT, A_AMOUNT, A_TEXT, A_KEY}, NULL},
	{"complete_topup", 1, 4, {A_TOPUP, A_BOOL, A_TEXT, A_TEXT}, NULL},
	{"set_billing_type", 1, 2, {A_ACCOUNT, A_BILLING_TYPE}, NULL},
	{"set_model", 1, 7, {A_MODEL, A_MEDIA, A_PROVIDER, A_TEXT, A_TEXT, A_BOOL, A_TEXT}, NULL},
	{"set_price", 1, 5, {A_MODEL, A_COMPONENTS, A_PROVIDER, A_TSTZ, A_BOOK}, NULL},
	{"set_credit_limit", 1, 3, {A_ACCOUNT, A_AMOUNT, A_TEXT}, NULL},
	{"suggest_credit_limit", 1, 1, {A_ACCOUNT}, NULL},
	{"close_period", 1, 1, {A_DATE}, NULL},
	{"mark_invoice_paid", 1, 2, {A_INVOICE, A_TEXT}, NULL},
	{"expire_requests", 1, 1, {A_INTERVAL}, NULL},
	{"grant_credits", 1, 6, {A_ACCOUNT, A_AMOUNT, A_TSTZ, A_CATEGORY, A_KEY, A_TEXT}, NULL},
	{"expire_credits", 1, 0, {0}, NULL},
	{"events_after", 1, 2, {A_EVENT, A_COUNT}, "SELECT * FROM billing.events_after($1, $2)"},
	{"verify", 1, 1, {A_ACCOUNT}, "SELECT * FROM billing.verify($1)"},
	/* contract prices (docs/pricing.md) */
	{"estimate/account", 0, 3, {A_MODEL, A_PARAMS, A_ACCOUNT}, "SELECT billing.estimate($1, $2, $3)"},
	{"account_catalog", 0, 1, {A_ACCOUNT}, "SELECT * FROM billing.account_catalog($1)"},
	{"create_price_book", 1, 2, {A_BOOK, A_TEXT}, NULL},
	{"set_discount", 1, 6, {A_BOOK, A_PPM, A_MODEL, A_PROVIDER, A_TSTZ, A_TSTZ}, NULL},
	{"end_discount", 1, 2, {A_DISCOUNT, A_TSTZ}, NULL},
	{"assign_price_book", 1, 3, {A_ACCOUNT, A_BOOK, A_TSTZ}, NULL},
	/* provider costs, margin, minimum commitments (docs/pricing.md) */
	{"set_provider_cost", 1, 4, {A_MODEL, A_PROVIDER, A_COMPONENTS, A_TSTZ}, NULL},
	{"margin", 1, 3, {A_ACCOUNT, A_TSTZ, A_TSTZ}, "SELECT * FROM billing.margin($1, $2, $3)"},
	{"set_minimum_commitment", 1, 4, {A_ACCOUNT, A_AMOUNT, A_DATE, A_DATE}, NULL},
	/* reversals (docs/topup.md): large amounts stand for NULL, as for refunds */
	{"reverse_topup", 1, 5, {A_TOPUP, A_AMOUNT, A_TEXT, A_BOOL, A_KEY},
	"SELECT billing.reverse_topup($1, CASE WHEN $2 OPERATOR(pg_catalog.>) 1000000 THEN NULL ELSE $2 END, $3, $4, $5)"},
	{"reverse_funds", 1, 4, {A_ENTRY, A_AMOUNT, A_TEXT, A_KEY},
	"SELECT billing.reverse_funds($1, CASE WHEN $2 OPERATOR(pg_catalog.>) 1000000 THEN NULL ELSE $2 END, $3, $4)"},
	{"void_grant", 1, 4, {A_GRANT, A_AMOUNT, A_TEXT, A_KEY},
	"SELECT billing.void_grant($1, CASE WHEN $2 OPERATOR(pg_catalog.>) 1000000 THEN NULL ELSE $2 END, $3, $4)"},
	/* collections (docs/invoices.md) */
	{"set_billing_details", 0, 2, {A_ACCOUNT, A_DETAILS}, NULL},
	{"list_invoices", 0, 1, {A_ACCOUNT}, "SELECT * FROM billing.list_invoices($1)"},
	{"invoice_document", 0, 1, {A_INVOICE}, NULL},
	{"void_invoice", 1, 3, {A_INVOICE, A_TEXT, A_KEY}, NULL},
	/* large amounts become whole cents up to 1.99, so that some notes are issued */
	{"issue_credit_note", 1, 5, {A_INVOICE, A_AMOUNT, A_TEXT, A_SETTLEMENT, A_KEY},
		"SELECT billing.issue_credit_note($1, CASE WHEN $2 OPERATOR(pg_catalog.>) 1000000"
		" THEN ($2 OPERATOR(pg_catalog.%) 200) OPERATOR(pg_catalog.*) 10000 ELSE $2 END, $3, $4, $5)"},
	{"set_overdue_policy", 1, 2, {A_ACCOUNT, A_GRACE}, NULL},
	{"mark_overdue", 1, 0, {0}, NULL},
};
#define NFUNCS ((int) (sizeof(funcs) / sizeof(funcs[0])))
static Stats stats[NFUNCS];

static PGconn *conn_app, *conn_admin, *conn_super;
static long violations, crashes;
static long sqlstate_count[64];
static char sqlstate_name[64][6];

/* ids seen in the database, refreshed from time to time */
typedef struct
{
	long long	id[MAX_IDS];
	int			n;
} Ids;
static Ids accounts, requests, topups, invoices, events, discounts, entries, grants;

/* ---- deterministic randomness (xorshift64*) ---- */
static uint64_t rng_state;

static uint64_t
rnd(void)
{
	return xorshift64(&rng_state);
}

static int
pick(int n)
{
	return (int) (rnd() % (uint64_t) n);
}

static int
chance(int percent)
{
	return pick(100) < percent;
}

#define PICK(arr) ((arr)[pick((int) (sizeof(arr) / sizeof((arr)[0])))])
/* one of the first n entries of arr */
#define PICK_N(arr, n) ((arr)[pick(n)])


/*
 * While "calm" is set, generators make valid values only. A call is either
 * hostile throughout, or calm but for one argument: the latter reaches the
 * code behind the argument checks (pricing, settlement, invoicing).
 */
static int	calm;

static int
hostile(int percent)
{
	return !calm && chance(percent);
}

/* ---- a growable string ---- */
typedef struct
{
	char	   *s;
	size_t		len, cap;
} Buf;

static void
buf_add(Buf *b, const char *fmt,...)
{
	va_list		ap;
	int			need;

	va_start(ap, fmt);
	need = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (b->len + need + 1 > b->cap)
	{
		b->cap = (b->len + need + 1) * 2;
		b->s = realloc(b->s, b->cap);
		if (b->s == NULL)
			abort();
	}
	va_start(ap, fmt);
	vsnprintf(b->s + b->len, need + 1, fmt, ap);
	va_end(ap);
	b->len += need;
}

static char *
repeat(char c, size_t n)
{
	char	   *s = malloc(n + 1);

	if (s == NULL)
		abort();
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* ---- hostile values ---- */
static const char *bad_ints[] = {
	"0", "-1", "1", "-9223372036854775808", "9223372036854775807",
	"9223372036854775808", "-9223372036854775809", "99999999999999999999999",
	"NaN", "Infinity", "-Infinity", "1.5", "1e3", "", " ", "abc", "0x1F", "+5",
	" 42 ", "4611686018427387904", "-4611686018427387904", "2147483648",
	"-2147483649", "1_000", "--1", "1 2", "9223372036854775806",
};

static const char *bad_texts[] = {
	"", " ", "NaN", "null", "'; DROP TABLE billing.ledger; --", "\\", "%s%n%x",
	"Robert'); DELETE FROM billing.ledger;--", "\xc3\xbc" "n\xc3\xaf" "c\xc3\xb8" "d\xc3\xa9 \xe2\x9c\x93",
	"\xff\xfe", "\xc3", "\xed\xa0\x80", "0", "-1", "prepaid", "postpaid", "USD",
	"EUR", "usd", "image", "video", "default", "\t\n", "$1", "billing._move",
};

/* JSON number and string tokens, valid JSON but hostile values */
static const char *bad_json_numbers[] = {
	"0", "-1", "1", "2", "1.5", "-0.5", "1e3", "1e400", "-1e400", "1e-400",
	"9223372036854775807", "9223372036854775808", "-9223372036854775808",
	"18446744073709551616", "0.0000001", "123456789012345678901234567890",
	"2147483648", "4294967296", "1e18", "3.000000000000000000001", "-0",
	"4611686018427387904", "1e19",
};

static const char *bad_json_strings[] = {
	"\"\"", "\"NaN\"", "\"Infinity\"", "\"-Infinity\"", "\"1024x1024\"",
	"\"0x0\"", "\"-1x-1\"", "\"99999999999x99999999999\"", "\"1080p\"",
	"\"720p\"", "\"4K\"", "\"abc\"", "\"%s%n\"", "\"'; drop table x; --\"",
	"\"1e400\"", "\"-5\"", "\"true\"", "\"4294967296x4294967296\"",
	"\"1024X1024\"", "\"1024x\"", "\"x1024\"", "\" 1024 x 1024 \"",
};

/* not JSON at all, or JSON that jsonb refuses: refused at argument input */
static const char *bad_json_texts[] = {
	"{", "", "NaN", "{\"n\": NaN}", "[1,2", "{'a':1}", "\"\\u0000\"",
	"{\"a\":\"\\ud800\"}", "1e99999999", "{\"n\":Infinity}", "nul",
	"{\"a\" 1}", "{\"a\":1,}", "\xff",
};

static void json_value(Buf *b, int depth);

/* a JSON scalar of kind 0 (a number), 1 (a string) or 2 (null, true, false) */
static void
json_scalar(Buf *b, int kind)
{
	if (kind == 0)
		buf_add(b, "%s", PICK(bad_json_numbers));
	else if (kind == 1)
		buf_add(b, "%s", PICK(bad_json_strings));
	else
		buf_add(b, "%s", PICK(((const char *[]) {"null", "true", "false"})));
}

static void
json_token(Buf *b)
{
	int			k = pick(6);

	if (k < 3)
		json_scalar(b, k);
	else if (k == 3)
		buf_add(b, "[]");
	else if (k == 4)
		buf_add(b, "{}");
	else
		json_value(b, 2);
}

/* a random JSON value; keys come from the vocabulary of params and outputs */
static void
json_value(Buf *b, int depth)
{
	static const char *keys[] = {
		"n", "size", "duration_seconds", "resolution", "audio", "images",
		"width", "height", "input_images", "quality", "provider", "type",
		"metric", "unit_price_micros", "unit_size", "conditions", "", "x",
	};
	int			k, i;

	if (depth <= 0 || chance(50))
	{
		json_scalar(b, pick(3));
		return;
	}
	k = pick(4);
	if (chance(50))
	{
		buf_add(b, "[");
		for (i = 0; i < k; i++)
		{
			buf_add(b, i ? "," : "");
			json_value(b, depth - 1);
		}
		buf_add(b, "]");
	}
	else
	{
		buf_add(b, "{");
		for (i = 0; i < k; i++)
		{
			buf_add(b, "%s\"%s\":", i ? "," : "", PICK(keys));
			json_value(b, depth - 1);
		}
		buf_add(b, "}");
	}
}

/* value of one member of a near-valid object: mostly valid, sometimes not */
static void
member(Buf *b, int *first, const char *key, const char *valid[], int nvalid)
{
	if (hostile(8))
		return;					/* member left out */
	buf_add(b, "%s\"%s\":", *first ? "" : ",", key);
	*first = 0;
	if (!hostile(25))
		buf_add(b, "%s", valid[pick(nvalid)]);
	else
		json_token(b);
}

#define MEMBER(b, first, key, ...) \
	do { \
		const char *v_[] = {__VA_ARGS__}; \
		member(b, first, key, v_, (int) (sizeof(v_) / sizeof(v_[0]))); \
	} while (0)

static void
image_list(Buf *b)
{
	int			n = hostile(3) ? 2000 + pick(3000) : calm + pick(4);
	int			i;

	buf_add(b, "[");
	for (i = 0; i < n; i++)
	{
		int			first = 1;

		buf_add(b, i ? ",{" : "{");
		MEMBER(b, &first, "width", "1024", "1536", "2048", "4096", "512");
		MEMBER(b, &first, "height", "1024", "1536", "2048", "4096", "768");
		buf_add(b, "}");
	}
	buf_add(b, "]");
}

/* params or outputs shaped like the real thing, with hostile members */
static void
near_valid(Buf *b, int outputs)
{
	int			first = 1;

	buf_add(b, "{");
	if (chance(50))
	{
		if (outputs)
		{
			buf_add(b, "\"images\":");
			if (!hostile(15))
				image_list(b);
			else
				json_token(b);
			first = 0;
		}
		else
		{
			MEMBER(b, &first, "n", "1", "2", "4");
			MEMBER(b, &first, "size", "\"1024x1024\"", "\"1024x1536\"", "\"2048x2048\"", "\"4096x4096\"");
		}
		if (hostile(20))
			MEMBER(b, &first, "input_images", "1", "2", "[\"a\",\"b\"]");
	}
	else
	{
		MEMBER(b, &first, "duration_seconds", "4", "8", "7.6", "10");
		MEMBER(b, &first, "resolution", "\"720p\"", "\"1080p\"");
		MEMBER(b, &first, "audio", "true", "false");
	}
	if (hostile(10))
	{
		buf_add(b, "%s\"%s\":", first ? "" : ",", chance(50) ? "x" : "n");
		json_token(b);
	}
	buf_add(b, "}");
}

static void
components(Buf *b)
{
	int			n = 1 + pick(3), i;

	buf_add(b, "[");
	for (i = 0; i < n; i++)
	{
		int			first = 1;

		buf_add(b, i ? ",{" : "{");
		MEMBER(b, &first, "type", "\"output\"", "\"input\"");
		MEMBER(b, &first, "metric", "\"request\"", "\"image\"", "\"megapixel\"", "\"second\"", "\"input_image\"");
		MEMBER(b, &first, "unit_price_micros", "1000", "40000", "60000", "134000");
		MEMBER(b, &first, "unit_size", "1", "1", "2");
		MEMBER(b, &first, "conditions", "{}", "{\"resolution\":\"1080p\"}", "{\"audio\":true}");
		buf_add(b, "}");
	}
	buf_add(b, "]");
}

static char *
gen_json(ArgKind kind)
{
	Buf			b = {0};
	int			r = calm ? 100 : pick(100);

	if (r < 8)
		return strdup(PICK(bad_json_texts));
	if (r < 10)
	{
		/* deep nesting */
		int			depth = chance(50) ? 200 : 20000;
		char	   *open = repeat('[', depth), *close = repeat(']', depth);

		buf_add(&b, "%s%s", open, close);
		free(open);
		free(close);
		return b.s;
	}
	if (r < 25)
		json_value(&b, 4);
	else if (kind == A_COMPONENTS)
		components(&b);
	else if (kind == A_DETAILS)
	{
		int			first = 1;

		buf_add(&b, "{");
		MEMBER(&b, &first, "legal_name", "\"Fuzz GmbH\"", "\"\"", "1", "null");
		MEMBER(&b, &first, "address", "{\"country\":\"DE\",\"city\":\"Berlin\"}", "{\"country\":\"de\"}",
			   "{\"zip\":\"1\"}", "\"Berlin\"", "null");
		MEMBER(&b, &first, "tax_id", "\"DE1\"", "\"\"");
		MEMBER(&b, &first, "email", "\"a@b.example\"", "\"a@b@c\"", "\"ab\"");
		buf_add(&b, "}");
	}
	else if (kind == A_ROUTING)
	{
		int			first = 1;

		buf_add(&b, "{");
		MEMBER(&b, &first, "provider", "\"prov-a\"", "\"prov-b\"", "\"prov-unknown\"");
		MEMBER(&b, &first, "provider_name", "\"Provider A\"");
		MEMBER(&b, &first, "executed_model", "\"img-v1\"");
		MEMBER(&b, &first, "upstream_id", "\"up-1\"", "\"\"");
		MEMBER(&b, &first, "upstream_cost_micros", "1500", "0", "-1", "2.5", "\"7\"", "null",
			   "1e30");
		buf_add(&b, "}");
	}
	else
		near_valid(&b, kind == A_OUTPUTS);
	return b.s;
}

static long long
some_id(const Ids *ids)
{
	return ids->n ? ids->id[pick(ids->n)] : 1;
}

static char *
fmt_ll(long long v)
{
	char		s[32];

	snprintf(s, sizeof(s), "%lld", v);
	return strdup(s);
}

/* the words of a kind: the first nvalid are valid, the others not */
typedef struct
{
	ArgKind		kind;
	int			nvalid;
	const char *words[16];		/* NULL after the last */
} Vocabulary;

/* text arguments, which gen_text() also gives hostile texts of its own */
static const Vocabulary text_words[] = {
	{A_MODEL, 3, {"fuzz-img", "fuzz-mp", "fuzz-vid", "no-such-model", "FUZZ-IMG"}},
	{A_BILLING_TYPE, 2, {"prepaid", "postpaid", "PREPAID", "free", "post paid"}},
	{A_CURRENCY, 1, {"USD", "EUR", "usd", "US", "USDD", "XXX"}},
	{A_MEDIA, 2, {"image", "video", "audio", "IMAGE"}},
	{A_PROVIDER, 2, {"prov-a", "prov-b", "prov-unknown"}},
	{A_CATEGORY, 2, {"promotional", "paid", "PAID", "gift", "promotional "}},
	{A_STATUS, 5, {"completed", "failed", "cancelled", "in_progress", "queued", "done", "COMPLETED"}},
	{A_PERIOD, 3, {"day", "week", "month", "year", "DAY", "month "}},
	{A_BOOK, 2, {"fuzz-gold", "fuzz-silver", "no-such-book", "FUZZ-GOLD"}},
	{A_SETTLEMENT, 2, {"credit", "refund", "CREDIT", "cash", "refund "}},
};

/* other arguments given as text: valid values first */
static const Vocabulary value_words[] = {
	{A_BOOL, 2, {"true", "false", "t", "f", "yes", "no", "on", "maybe", "", "2"}},
	{A_TSTZ, 2, {"now", "2020-01-01", "infinity", "-infinity", "epoch", "294277-01-01",
	"garbage", "2026-01-01 00:00:00+00", "4714-11-24 BC", "2100-01-01", ""}},
	{A_DATE, 2, {"2025-01-01", "2026-10-01", "infinity", "-infinity", "5874897-12-31",
	"garbage", "2020-02-30", "1999-12-31", "0001-01-01", "2026-11-15", ""}},
	{A_INTERVAL, 2, {"1 hour", "100 years", "-1 day", "infinity", "1000000000 years",
	"garbage", "0", "1 second", "-178000000 years", "P1D", ""}},
	{A_GRACE, 4, {"0", "-1", "30", "365", "366", "-2", "2147483647", "garbage", ""}},
	{A_THRESHOLDS, 4, {"{}", "{1000000,500000}", "{100000000000}", "{0}",
			"{NULL}", "{-1}", "{1,1}", "{{1,2},{3,4}}", "{9223372036854775807,1}",
	"{9223372036854775808}", "garbage", "{1,NULL}", "[0:1]={1,2}", ""}},
};

/*
 * A copy of a word of kind from table (of n vocabularies), a valid one
 * while calm; NULL when the table has no words of kind.
 */
static char *
pick_word(const Vocabulary *table, size_t n, ArgKind kind)
{
	for (size_t i = 0; i < n; i++)
	{
		int			nwords = 0;

		if (table[i].kind != kind)
			continue;
		while (nwords < 16 && table[i].words[nwords] != NULL)
			nwords++;
		return strdup(table[i].words[pick(calm ? table[i].nvalid : nwords)]);
	}
	return NULL;
}

static char *
gen_text(ArgKind kind)
{
	char		s[64];
	char	   *word;
	int			r = calm ? 100 : pick(100);

	if (r < 3)
		return repeat('k', chance(90) ? 257 + pick(1000) : 1000000);
	if (r < 6)
		return repeat('a', 256);
	if (r < 35)
		return strdup(PICK(bad_texts));
	word = pick_word(text_words, sizeof(text_words) / sizeof(text_words[0]), kind);
	if (word != NULL)
		return word;
	switch (kind)
	{
		case A_KEY:
			/* a small pool, so that keys are reused with other parameters */
			snprintf(s, sizeof(s), "key-%d", pick(40));
			return strdup(s);
		case A_SCOPE:
			/* a few scopes, so that their limits apply; often none */
			if (chance(40))
				return NULL;
			snprintf(s, sizeof(s), "scope-%d", pick(4));
			return strdup(s);
		default:
			snprintf(s, sizeof(s), "fuzz-%d", pick(5000));
			return strdup(s);
	}
}

/* the ids that an argument of kind names, or NULL when it names none */
static const Ids *
ids_of(ArgKind kind)
{
	return kind == A_ACCOUNT ? &accounts : kind == A_REQUEST ? &requests :
		kind == A_TOPUP ? &topups : kind == A_INVOICE ? &invoices :
		kind == A_EVENT ? &events : kind == A_DISCOUNT ? &discounts :
		kind == A_ENTRY ? &entries : kind == A_GRANT ? &grants : NULL;
}

static char *
gen_arg(ArgKind kind)
{
	const Ids  *ids = ids_of(kind);
	char	   *word;

	if (hostile(4))
		return NULL;			/* SQL NULL */
	if (ids != NULL)
	{
		if (calm || chance(60))
			return fmt_ll(some_id(ids));
		if (chance(30))
			return fmt_ll(some_id(ids) + 100000 + pick(1000));
		return strdup(PICK(bad_ints));
	}
	switch (kind)
	{
		case A_AMOUNT:
			if (calm || chance(40))
				return fmt_ll(1 + (long long) (rnd() % 1000000000ULL));
			return strdup(PICK(bad_ints));
		case A_COUNT:
			if (calm || chance(40))
				return fmt_ll(1 + pick(10000));
			return strdup(chance(30) ? "10001" : PICK(bad_ints));
		case A_PPM:
			if (calm || chance(50))
				return fmt_ll(pick(2000001));
			return strdup(chance(30) ? "10000001" : PICK(bad_ints));
		case A_PARAMS:
		case A_OUTPUTS:
		case A_ROUTING:
		case A_COMPONENTS:
		case A_DETAILS:
			return gen_json(kind);
		default:
			word = pick_word(value_words, sizeof(value_words) / sizeof(value_words[0]), kind);
			return word != NULL ? word : gen_text(kind);
	}
}

static Oid
arg_type(ArgKind kind)
{
	if (ids_of(kind) != NULL)
		return INT8OID;
	switch (kind)
	{
		case A_AMOUNT:
			return INT8OID;
		case A_COUNT:
		case A_PPM:
			return INT4OID;
		case A_PARAMS:
		case A_OUTPUTS:
		case A_ROUTING:
		case A_COMPONENTS:
		case A_DETAILS:
			return JSONBOOID;
		case A_GRACE:
			return INT4OID;
		case A_BOOL:
			return BOOLOID;
		case A_TSTZ:
			return TIMESTAMPTZOID;
		case A_DATE:
			return DATEOID;
		case A_INTERVAL:
			return INTERVALOID;
		case A_THRESHOLDS:
			return INT8ARRAYOID;
		default:
			return TEXTOID;
	}
}

/* ---- database helpers ---- */
static PGconn *
connect_db(const char *dbname)
{
	const char *keys[] = {"dbname", "application_name", NULL};
	const char *vals[] = {dbname, "billing-fuzz", NULL};
	PGconn	   *c = PQconnectdbParams(keys, vals, 1);

	if (PQstatus(c) != CONNECTION_OK)
	{
		fprintf(stderr, "fuzz: cannot connect: %s", PQerrorMessage(c));
		exit(1);
	}
	return c;
}

static void
must(PGconn *c, const char *sql)
{
	pq_must(c, "fuzz", sql);
}

/* the tiers, a statement timeout and the hostile search_path */
static void
session_setup(void)
{
	must(conn_app, "SET ROLE billing_app; SET statement_timeout = '20s';"
		 "SET search_path = fuzz_evil, pg_catalog, billing");
	must(conn_admin, "SET ROLE billing_admin; SET statement_timeout = '20s';"
		 "SET search_path = fuzz_evil, pg_catalog, billing");
}

/* After a crash: wait for the server to recover, then carry on. */
static void
reconnect(void)
{
	int			tries;

	for (tries = 0; tries < 120; tries++)
	{
		PQreset(conn_super);
		PQreset(conn_app);
		PQreset(conn_admin);
		if (PQstatus(conn_super) == CONNECTION_OK && PQstatus(conn_app) == CONNECTION_OK &&
			PQstatus(conn_admin) == CONNECTION_OK)
		{
			session_setup();
			return;
		}
		sleep(1);
	}
	fprintf(stderr, "fuzz: the server did not come back after a crash\n");
	exit(1);
}

static void
load_ids(Ids *ids, const char *sql)
{
	PGresult   *r = PQexec(conn_super, sql);
	int			i;

	if (PQresultStatus(r) != PGRES_TUPLES_OK)
	{
		fprintf(stderr, "fuzz: %s: %s", sql, PQerrorMessage(conn_super));
		exit(1);
	}
	ids->n = PQntuples(r) < MAX_IDS ? PQntuples(r) : MAX_IDS;
	for (i = 0; i < ids->n; i++)
		ids->id[i] = atoll(PQgetvalue(r, i, 0));
	PQclear(r);
}

static void
refresh_ids(void)
{
	PGresult   *r;

	/* keep requests in flight: completions, failures and the UPDATE path need them */
	r = PQexec(conn_super, "SELECT count(*) < 40 FROM billing.requests WHERE status IN ('queued', 'in_progress')");
	if (PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 0), "t") == 0)
		must(conn_super,
			 "DO $$DECLARE a bigint; BEGIN"
			 " FOR a IN SELECT account_id FROM billing.accounts ORDER BY account_id LIMIT 20 LOOP"
			 "  BEGIN"
			 "   PERFORM billing.begin_request(a, 'fuzz-img', '{\"n\":1,\"size\":\"1024x1024\"}');"
			 "   PERFORM billing.begin_request(a, 'fuzz-vid',"
			 "                                 '{\"duration_seconds\":4,\"resolution\":\"720p\",\"audio\":false}');"
			 "  EXCEPTION WHEN OTHERS THEN NULL;"	/* a poor or disabled account */
			 "  END;"
			 " END LOOP; END $$");
	PQclear(r);
	load_ids(&accounts, "SELECT account_id FROM billing.accounts ORDER BY account_id LIMIT 256");
	load_ids(&requests, "(SELECT request_id FROM billing.requests WHERE status IN ('queued', 'in_progress') "
			 "ORDER BY request_id DESC LIMIT 200) UNION ALL "
			 "(SELECT request_id FROM billing.requests ORDER BY request_id LIMIT 56)");
	load_ids(&topups, "SELECT topup_id FROM billing.topups ORDER BY topup_id DESC LIMIT 256");
	load_ids(&invoices, "SELECT invoice_id FROM billing.invoices ORDER BY invoice_id DESC LIMIT 256");
	load_ids(&events, "SELECT event_id FROM billing.events ORDER BY event_id DESC LIMIT 256");
	load_ids(&discounts, "SELECT discount_id FROM billing.discounts ORDER BY discount_id DESC LIMIT 256");
	/* funds entries mostly, and a few of other kinds */
	load_ids(&entries, "(SELECT entry_id FROM billing.ledger WHERE kind = 'funds' ORDER BY entry_id DESC LIMIT 200)"
			 " UNION ALL (SELECT entry_id FROM billing.ledger ORDER BY entry_id LIMIT 56)");
	load_ids(&grants, "SELECT grant_id FROM billing.grants ORDER BY grant_id DESC LIMIT 256");
}

/* counts and sums of every billing table; a refused call must not move them */
static char *
snapshot(void)
{
	static const char *sql =
	"SELECT concat_ws(' | ',"
	" (SELECT concat_ws(',', count(*), sum(amount_micros)) FROM billing.ledger),"
	" (SELECT concat_ws(',', count(*), sum(hold_micros), sum(cost_micros), sum(cost_estimate_micros),"
	"   count(*) FILTER (WHERE status IN ('queued', 'in_progress')), count(outputs),"
	"   sum(length(status)), sum(length(routing::text))) FROM billing.requests),"
	" (SELECT concat_ws(',', count(*), sum(available_micros)) FROM billing.account_slices),"
	" (SELECT concat_ws(',', count(*), sum(credit_limit_micros), sum(prepaid_credit_micros),"
	"   count(*) FILTER (WHERE billing_type = 'postpaid'), count(*) FILTER (WHERE auto_topup_enabled),"
	"   sum(auto_topup_threshold_micros), sum(auto_topup_amount_micros), sum(auto_topup_failures),"
	"   count(*) FILTER (WHERE active), sum(auto_topup_target_micros),"
	"   sum(auto_topup_max_per_month_micros), count(auto_topup_capped_month)) FROM billing.accounts),"
	" (SELECT concat_ws(',', count(*), sum(amount_micros), count(invoice_id)) FROM billing.reversals),"
	" (SELECT concat_ws(',', count(*), count(*) FILTER (WHERE status = 'pending'), sum(amount_micros))"
	"   FROM billing.topups),"
	" (SELECT count(*) FROM billing.models), (SELECT count(*) FROM billing.model_providers),"
	" (SELECT count(*) FROM billing.model_providers WHERE is_default), (SELECT count(*) FROM billing.prices),"
	" (SELECT concat_ws(',', count(*), sum(total_micros), count(*) FILTER (WHERE status = 'paid'))"
	"   FROM billing.invoices),"
	" (SELECT count(*) FROM billing.invoice_lines), (SELECT count(*) FROM billing.credit_limit_audit),"
	" (SELECT concat_ws(',', count(*), sum(amount_micros), count(spent_entry_id)) FROM billing.grants),"
	" (SELECT concat_ws(',', count(*), sum(amount_micros)) FROM billing.refunds),"
	" (SELECT concat_ws(',', count(*), sum(amount_micros)) FROM billing.adjustments),"
	" (SELECT concat_ws(',', count(*), sum(amount_micros)) FROM billing.credit_notes),"
	" (SELECT concat_ws(',', count(*) FILTER (WHERE status = 'void'), count(void_idempotency_key))"
	"   FROM billing.invoices),"
	" (SELECT concat_ws(',', count(overdue_since), sum(overdue_grace_days), count(billing_details),"
	"   sum(length(billing_details::text))) FROM billing.accounts),"
	" (SELECT concat_ws(',', count(*), sum(limit_micros), count(reached_period_start))"
	"   FROM billing.spend_limits),"
	" (SELECT concat_ws(',', count(*), sum(available_micros), sum(fast_micros)) FROM billing.limit_slices),"
	" (SELECT concat_ws(',', count(*), sum(threshold_micros), count(*) FILTER (WHERE armed))"
	"   FROM billing.balance_alerts),"
	" (SELECT count(*) FROM billing.events),"
	" (SELECT concat_ws(',', count(*), sum(length(description))) FROM billing.price_books),"
	" (SELECT concat_ws(',', count(*), sum(multiplier_ppm), count(effective_until),"
	"   sum(extract(epoch FROM effective_until))) FROM billing.discounts),"
	" (SELECT concat_ws(',', count(*), count(price_book)) FROM billing.price_book_assignments),"
	" (SELECT concat_ws(',', count(price_book), sum(discount_id)) FROM billing.requests))";

	return pq_value(conn_super, "fuzz", sql);
}

/* total of positive ledger entries: only the admin tier may raise it */
static long long
credits(void)
{
	char	   *s = pq_value(conn_super, "fuzz",
								 "SELECT coalesce(sum(amount_micros), 0) FROM billing.ledger WHERE amount_micros > 0");
	long long	v = atoll(s);

	free(s);
	return v;
}

static void
print_call(const Func *f, char **vals)
{
	int			i;

	fprintf(stderr, "  call: %s(", f->name);
	for (i = 0; i < f->nargs; i++)
	{
		if (i)
			fprintf(stderr, ", ");
		if (vals[i] == NULL)
			fprintf(stderr, "NULL");
		else
		{
			size_t		len = strlen(vals[i]);
			char	   *lit = PQescapeLiteral(conn_super, vals[i], len < 300 ? len : 300);

			fprintf(stderr, "%s%s", lit ? lit : "<not encodable>", len > 300 ? "..." : "");
			if (len > 300)
				fprintf(stderr, " (%zu chars)", len);
			PQfreemem(lit);
		}
	}
	fprintf(stderr, ")\n");
}

/*
 * Records a violation. Only the first of each kind (function, what, SQLSTATE)
 * is printed with its reproducer; the summary counts them all.
 */
#define MAX_KINDS 200
static struct
{
	char		key[160];
	long		n;
}			kinds[MAX_KINDS];

static void
violation(const Func *f, char **vals, const char *what, const PGresult *r)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	char		key[160];
	int			i;

	violations++;
	snprintf(key, sizeof(key), "%s: %.80s%s%s", f->name, what, state ? " " : "", state ? state : "");
	if (strchr(key, '\n'))
		*strchr(key, '\n') = '\0';
	for (i = 0; i < MAX_KINDS && kinds[i].n; i++)
		if (strcmp(kinds[i].key, key) == 0)
			break;
	if (i < MAX_KINDS)
	{
		if (kinds[i].n++)
			return;				/* already shown */
		snprintf(kinds[i].key, sizeof(kinds[i].key), "%s", key);
	}
	fprintf(stderr, "VIOLATION in %s: %s\n", f->name, what);
	if (r)
	{
		const char *ctx = PQresultErrorField(r, PG_DIAG_CONTEXT);

		fprintf(stderr, "  error: %s  sqlstate: %s\n", PQresultErrorMessage(r), state ? state : "none");
		if (ctx)
			fprintf(stderr, "  context: %s\n", ctx);
	}
	print_call(f, vals);
}

static void
count_sqlstate(const char *state)
{
	int			i;

	for (i = 0; i < 64 && sqlstate_name[i][0]; i++)
		if (strcmp(sqlstate_name[i], state) == 0)
			break;
	if (i == 64)
		return;
	if (!sqlstate_name[i][0])
		snprintf(sqlstate_name[i], 6, "%s", state);
	sqlstate_count[i]++;
}

static int
documented_by_function(const Func *f, const char *state)
{
	if (strcmp(state, "PB402") == 0 || strcmp(state, "PB404") == 0 ||
		strcmp(state, "PB409") == 0 || strcmp(state, "22023") == 0)
		return 1;
	/* documented unique violations: an external_id, a price or cost version */
	if ((strcmp(f->name, "create_account") == 0 || strcmp(f->name, "set_price") == 0 ||
		 strcmp(f->name, "set_provider_cost") == 0) &&
		strcmp(state, "23505") == 0)
		return 1;
	/* a duplicate book, or a second assignment at the same time (docs/pricing.md) */
	if ((strcmp(f->name, "create_price_book") == 0 || strcmp(f->name, "assign_price_book") == 0) &&
		strcmp(state, "23505") == 0)
		return 1;
	/* the plain UPDATE path: the table's own NOT NULL and CHECK constraints */
	if (f->sql && strncmp(f->sql, "UPDATE", 6) == 0 &&
		(strcmp(state, "23502") == 0 || strcmp(state, "23514") == 0))
		return 1;
	return 0;
}

/* a negative cost in a successful answer means someone would be paid */
static int
negative_cost(const char *json)
{
	static const char *keys[] = {"\"total_cost_micros\": -", "\"cost_micros\": -",
	"\"cost_estimate_micros\": -", "\"total_cost\": -"};
	size_t		i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strstr(json, keys[i]))
			return 1;
	return 0;
}

/* ids strictly ascending, above after (NULL: any), at most max rows */
static int
events_in_order(const PGresult *r, const char *after, const char *max)
{
	long long	prev = after ? atoll(after) : -1;
	int			i;

	if (PQntuples(r) > atoi(max))
		return 0;
	for (i = 0; i < PQntuples(r); i++)
	{
		long long	id = atoll(PQgetvalue(r, i, 0));

		if (id <= prev)
			return 0;
		prev = id;
	}
	return 1;
}

static void
run_call(const Func *f, Stats *st, int *need_refresh)
{
	char	   *vals[MAX_ARGS];
	Oid			types[MAX_ARGS];
	char		sql[256];
	char	   *before = snapshot();
	long long	credits_before = f->admin ? 0 : credits();
	PGconn	   *c = f->admin ? conn_admin : conn_app;
	PGresult   *r;
	int			i;
	int			mutated = f->nargs > 0 && chance(40) ? pick(f->nargs) : -1;

	for (i = 0; i < f->nargs; i++)
	{
		calm = mutated >= 0 && i != mutated;
		vals[i] = gen_arg(f->args[i]);
		types[i] = arg_type(f->args[i]);
	}
	calm = 0;
	if (f->sql)
		snprintf(sql, sizeof(sql), "%s", f->sql);
	else
	{
		int			len = snprintf(sql, sizeof(sql), "SELECT billing.%s(", f->name);

		for (i = 0; i < f->nargs; i++)
			len += snprintf(sql + len, sizeof(sql) - len, "%s$%d", i ? ", " : "", i + 1);
		snprintf(sql + len, sizeof(sql) - len, ")");
	}

	st->tried++;
	r = PQexecParams(c, sql, f->nargs, types, (const char *const *) vals, NULL, NULL, 0);
	if (PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK)
	{
		st->accepted++;
		*need_refresh = 1;
		if (f->sql && strstr(f->sql, "verify") && PQntuples(r) > 0)
			violation(f, vals, "billing.verify() found a problem", NULL);
		if (f->sql && strstr(f->sql, "events_after") && !events_in_order(r, vals[0], vals[1]))
			violation(f, vals, "events_after: not in id order, not after the cursor, or over the limit", NULL);
		if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0) && negative_cost(PQgetvalue(r, 0, 0)))
			violation(f, vals, "negative cost accepted", NULL);
		if (!f->admin && credits() != credits_before)
			violation(f, vals, "an application-tier call credited money", NULL);
	}
	else
	{
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		const char *ctx = PQresultErrorField(r, PG_DIAG_CONTEXT);
		int			at_input = ctx && strstr(ctx, "portal parameter $") != NULL;
		char	   *after;

		if (state == NULL || PQstatus(c) != CONNECTION_OK ||
			strncmp(state, "57P", 3) == 0 || strncmp(state, "08", 2) == 0)
		{
			violation(f, vals, "server crashed or connection lost", r);
			crashes++;
			reconnect();
			*need_refresh = 1;
			PQclear(r);
			for (i = 0; i < f->nargs; i++)
				free(vals[i]);
			free(before);
			return;
		}
		count_sqlstate(state);
		if (at_input)
			st->refused_arg++;
		else
			st->refused_fn++;
		if (strcmp(state, "XX000") == 0)
			violation(f, vals, "internal error (XX000)", r);
		else if (strcmp(state, "57014") == 0)
			violation(f, vals, "statement timeout", r);
		else if (at_input ? !(strncmp(state, "22", 2) == 0 || strncmp(state, "54", 2) == 0)
				 : !documented_by_function(f, state))
			violation(f, vals, "undocumented SQLSTATE", r);
		after = snapshot();
		if (strcmp(before, after) != 0)
		{
			char		what[1200];

			snprintf(what, sizeof(what), "a refused call changed the tables:\n    before %s\n    after  %s",
					 before, after);
			violation(f, vals, what, r);
		}
		free(after);
	}
	PQclear(r);
	for (i = 0; i < f->nargs; i++)
		free(vals[i]);
	free(before);
}

static void
setup(void)
{
	PGconn	   *c = connect_db("postgres");

	must(c, "SET client_min_messages = warning");
	must(c, "DROP DATABASE IF EXISTS billing_fuzz");
	must(c, "CREATE DATABASE billing_fuzz");
	PQfinish(c);

	conn_super = connect_db("billing_fuzz");
	must(conn_super, "SET client_min_messages = warning");
	must(conn_super, "CREATE EXTENSION billing");
	must(conn_super,
		 "SELECT billing.set_model('fuzz-img', 'image', 'prov-a', 'Provider A', 'img-v1');"
		 "SELECT billing.set_model('fuzz-img', 'image', 'prov-b', 'Provider B', 'img-v1b', false);"
		 "SELECT billing.set_model('fuzz-mp', 'image', 'prov-a', 'Provider A', 'mp-v1');"
		 "SELECT billing.set_model('fuzz-vid', 'video', 'prov-a', 'Provider A', 'vid-v1');"
		 "SELECT billing.set_price('fuzz-img', '[{\"type\":\"output\",\"metric\":\"image\","
		 "\"unit_price_micros\":40000,\"unit_size\":1}]', NULL, now() - interval '1 day');"
		 "SELECT billing.set_price('fuzz-img', '[{\"type\":\"output\",\"metric\":\"image\","
		 "\"unit_price_micros\":50000,\"unit_size\":1}]', 'prov-b', now() - interval '1 day');"
		 "SELECT billing.set_price('fuzz-mp', '[{\"type\":\"output\",\"metric\":\"megapixel\","
		 "\"unit_price_micros\":60000,\"unit_size\":1}]', NULL, now() - interval '1 day');"
		 "SELECT billing.set_price('fuzz-vid', '["
		 "{\"type\":\"output\",\"metric\":\"second\",\"unit_price_micros\":30000,\"unit_size\":1,"
		 "\"conditions\":{\"resolution\":\"720p\",\"audio\":false}},"
		 "{\"type\":\"output\",\"metric\":\"second\",\"unit_price_micros\":50000,\"unit_size\":1,"
		 "\"conditions\":{\"resolution\":\"1080p\"}}]', NULL, now() - interval '1 day')");
	/* contract prices: two books, a discount, a book's version (docs/pricing.md) */
	must(conn_super,
		 "SELECT billing.create_price_book('fuzz-gold'), billing.create_price_book('fuzz-silver');"
		 "SELECT billing.set_discount('fuzz-gold', 900000, NULL, NULL, now() - interval '1 day');"
		 "SELECT billing.set_price('fuzz-img', '[{\"type\":\"output\",\"metric\":\"image\","
		 "\"unit_price_micros\":35000,\"unit_size\":1}]', 'prov-b', now() - interval '1 day', 'fuzz-silver')");
	/* prepaid accounts with money, postpaid ones with a credit line, requests in flight */
	must(conn_super,
		 "SELECT billing.add_funds(billing.create_account('fuzz-pre-' || i), 1000000000000)"
		 "  FROM generate_series(1, 8) i;"
		 "SELECT billing.add_funds(billing.create_account('fuzz-poor-' || i), 50000)"
		 "  FROM generate_series(1, 4) i;"
		 "SELECT billing.set_credit_limit(billing.create_account('fuzz-post-' || i, 'postpaid'),"
		 "  500000000000, 'fuzz') FROM generate_series(1, 4) i;"
		 "SELECT billing.begin_request(a.account_id, 'fuzz-img', '{\"n\":1,\"size\":\"1024x1024\"}')"
		 "  FROM billing.accounts a, generate_series(1, 10) WHERE a.external_id LIKE 'fuzz-pre-%';"
		 "SELECT billing.begin_request(a.account_id, 'fuzz-vid',"
		 "  '{\"duration_seconds\":8,\"resolution\":\"1080p\",\"audio\":true}')"
		 "  FROM billing.accounts a, generate_series(1, 5) WHERE a.external_id LIKE 'fuzz-post-%';"
		 "SELECT billing.assign_price_book(a.account_id, CASE WHEN a.account_id % 2 = 0 THEN 'fuzz-gold'"
		 "  ELSE 'fuzz-silver' END) FROM billing.accounts a WHERE a.account_id % 3 <> 0");
	/* an open invoice of January 2025 for each postpaid account (its usage dated then) */
	must(conn_super,
		 "WITH r AS (INSERT INTO billing.requests (account_id, model, provider, status, params, outputs,"
		 "             cost_estimate_micros, cost_micros, currency, postpaid, created_at, completed_at)"
		 "           SELECT a.account_id, 'fuzz-img', 'prov-a', 'completed', '{}', '{}', 12345678, 12345678,"
		 "                  'USD', true, '2025-01-15', '2025-01-15'"
		 "             FROM billing.accounts a WHERE a.external_id LIKE 'fuzz-post-%'"
		 "           RETURNING account_id, request_id)"
		 "INSERT INTO billing.ledger (account_id, kind, amount_micros, postpaid, request_id, created_at)"
		 "SELECT account_id, 'usage', -12345678, true, request_id, '2025-01-15' FROM r;"
		 "SELECT billing._adjust_available(a.account_id, -12345678)"
		 "  FROM billing.accounts a WHERE a.external_id LIKE 'fuzz-post-%';"
		 "SELECT billing.close_period('2025-01-01')");

	conn_app = connect_db("billing_fuzz");
	conn_admin = connect_db("billing_fuzz");
	/*
	 * Every call runs with a hostile search_path: objects planted ahead of
	 * pg_catalog raise an undocumented SQLSTATE if the extension ever
	 * resolves to one of them.
	 */
	must(conn_super,
		 "CREATE SCHEMA fuzz_evil; GRANT USAGE ON SCHEMA fuzz_evil TO PUBLIC;"
		 "CREATE FUNCTION fuzz_evil.planted() RETURNS boolean LANGUAGE plpgsql AS"
		 "  $$BEGIN RAISE EXCEPTION 'planted object ran' USING ERRCODE = 'PBEVL'; END$$;"
		 "CREATE FUNCTION fuzz_evil.now() RETURNS timestamptz LANGUAGE sql"
		 "  AS $$SELECT CASE WHEN fuzz_evil.planted() THEN pg_catalog.now() END$$;"
		 "CREATE FUNCTION fuzz_evil.b(bigint, bigint) RETURNS boolean LANGUAGE sql"
		 "  AS $$SELECT fuzz_evil.planted()$$;"
		 "CREATE FUNCTION fuzz_evil.t(text, text) RETURNS boolean LANGUAGE sql"
		 "  AS $$SELECT fuzz_evil.planted()$$;"
		 "CREATE FUNCTION fuzz_evil.a(bigint, bigint) RETURNS bigint LANGUAGE sql"
		 "  AS $$SELECT CASE WHEN fuzz_evil.planted() THEN 0::bigint END$$;"
		 "CREATE OPERATOR fuzz_evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = fuzz_evil.b);"
		 "CREATE OPERATOR fuzz_evil.>= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = fuzz_evil.b);"
		 "CREATE OPERATOR fuzz_evil.< (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = fuzz_evil.b);"
		 "CREATE OPERATOR fuzz_evil.+ (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = fuzz_evil.a);"
		 "CREATE OPERATOR fuzz_evil.- (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = fuzz_evil.a);"
		 "CREATE OPERATOR fuzz_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = fuzz_evil.t)");
	session_setup();
}

int
main(int argc, char **argv)
{
	long		ncalls = argc > 1 ? atol(argv[1]) : 12000;
	const char *seed = getenv("FUZZ_SEED");
	long		n;
	int			need_refresh = 1, i;
	PGresult   *r;

	rng_state = seed ? strtoull(seed, NULL, 10) : 20261125ULL;
	if (rng_state == 0)
		rng_state = 1;
	setup();

	for (n = 0; n < ncalls; n++)
	{
		if (need_refresh && n % 50 == 0)
		{
			refresh_ids();
			need_refresh = 0;
		}
		{
			int			k = pick(NFUNCS);

			run_call(&funcs[k], &stats[k], &need_refresh);
		}
	}

	r = PQexec(conn_super, "SELECT account_id, problem FROM billing.verify()");
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
	{
		fprintf(stderr, "fuzz: final verify failed: %s", PQerrorMessage(conn_super));
		violations++;
	}
	else
		for (i = 0; i < PQntuples(r); i++)
		{
			fprintf(stderr, "VIOLATION: verify: account %s: %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
			violations++;
		}
	PQclear(r);

	printf("%-22s %7s %9s %11s %11s\n", "function", "tried", "accepted", "refused:arg", "refused:fn");
	for (i = 0; i < NFUNCS; i++)
		printf("%-22s %7ld %9ld %11ld %11ld\n", funcs[i].name, stats[i].tried, stats[i].accepted,
			   stats[i].refused_arg, stats[i].refused_fn);
	for (i = 0; i < MAX_KINDS && kinds[i].n; i++)
		printf("violations: %6ld x %s\n", kinds[i].n, kinds[i].key);
	printf("refusals by SQLSTATE:");
	for (i = 0; i < 64 && sqlstate_name[i][0]; i++)
		printf(" %s=%ld", sqlstate_name[i], sqlstate_count[i]);
	printf("\nfuzz: %ld inputs, seed %llu, %ld violations, %ld crashes\n", ncalls,
		   seed ? strtoull(seed, NULL, 10) : 20261125ULL, violations, crashes);

	PQfinish(conn_app);
	PQfinish(conn_admin);
	PQfinish(conn_super);
	return violations ? 1 : 0;
}
