/*
 * test/stress: concurrent money movements against billing, then exact
 * balance equations (libpq, pthreads).
 *
 * Connects with PGHOST/PGPORT/PGUSER from the environment, (re)creates the
 * database billing_stress with the extension, and runs CLIENTS clients for
 * STRESS_SECONDS (default 15) doing a mix of billing.charge, begin_request /
 * complete_request / fail_request and billing.add_funds on five prepaid
 * accounts: two with loose balances (fast path), one that crosses the
 * low-balance threshold, two with tight balances (per-request validation,
 * PB402 refusals expected). Each client keeps what billing acknowledged:
 * funds credited and the cost of every settled request. Repeated
 * idempotency keys and double completions must not move money again.
 * The requests of loose-2 carry API keys (scopes), three of them with daily
 * spend limits that the run reaches, under a monthly limit of the account;
 * some of its requests complete above their estimate (an overrun).
 *
 * While running, billing.balance() is sampled: available = balance - held,
 * nothing below zero, and "validation" agrees with the threshold and the
 * holds. At the end, for every account: balance_micros = initial + funds -
 * usage, held_micros = 0, available = balance - held, requests rows agree, and
 * billing.verify() returns no rows; no limit's usage in a period exceeds it
 * by more than the overruns of the requests it counts, and the limits were
 * reached (PB402 "spend limit reached"). Exit 0 only if everything holds.
 * Meanwhile a reporter runs billing.rollup_usage() and checks, each time in
 * one snapshot, that billing.usage() equals the ledger's usage and refunds
 * and that a statement's last balance is the sum of the account's entries.
 * Every statement has a timeout and every loop a bound: it cannot hang.
 *
 * STRESS_POOLER, when set, is the connection string of a pooler in
 * transaction mode (test/pgbouncer.sh) that the clients connect through;
 * a named prepared statement does not outlive a transaction there, so they
 * send each statement's text instead. Setup and checks connect directly.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libpq-fe.h"
#include "pqtool.h"

#define CLIENTS			12
#define NACCOUNTS		5
#define MAX_OPEN		4		/* unfinished requests per client */
#define MAX_OPS			1000000 /* per client, a bound besides time */
#define IMG_PRICE		40000	/* stress-img: per output image */
#define MP_PRICE		60000	/* stress-mp: per megapixel, per image rounded up */
#define LIMITED			1		/* loose-2: keys with daily limits, a monthly limit */
#define NSCOPES			5
#define DB_CONNINFO		"dbname=billing_stress connect_timeout=10 " \
						"options='-c statement_timeout=10s -c lock_timeout=10s'"

typedef struct AccountDef
{
	const char *name;
	int64_t		initial;		/* funds added at setup */
	int64_t		topup_min;		/* add_funds amounts during the run */
	int64_t		topup_max;
} AccountDef;

static const AccountDef defs[NACCOUNTS] = {
	{"loose-1", 1000000000000LL, 1000000, 5000000},
	{"loose-2", 1000000000000LL, 1000000, 5000000},
	{"crossing", 3000000, 100000, 600000},
	{"tight-1", 200000, 40000, 120000},
	{"tight-2", 120000, 40000, 120000},
};

/*
 * The scopes of the limited account's requests; 0 is none. Its limits: a
 * daily one per key but the last, and a monthly one for the account, each
 * small enough for the run to reach.
 */
static const char *const scopes[NSCOPES] = {NULL, "key-0", "key-1", "key-2", "key-3"};
static const int64_t scope_daily_limits[NSCOPES] = {0, 3000000, 10000000, 20000000, 0};
#define ACCOUNT_MONTHLY_LIMIT 80000000

/* What billing acknowledged for one account, as one client saw it. */
typedef struct Tally
{
	int64_t		funds;
	int64_t		usage;
	long		settled;		/* requests completed by charge/complete */
	long		failed;			/* requests failed by fail_request */
	long		refused;		/* PB402 */
	long		limited;		/* of which "spend limit reached" */
	long		calls;
} Tally;

typedef struct OpenReq
{
	int64_t		request_id;
	int			account;
	int			model;			/* 0 stress-img, 1 stress-mp */
	int			n;
	int			size;			/* index into sizes[] */
	int			scope;			/* index into scopes[] */
	int64_t		estimate;
} OpenReq;

typedef struct Client
{
	pthread_t	thread;
	int			id;
	PGconn	   *conn;
	uint64_t	rng;
	Tally		tally[NACCOUNTS];
	OpenReq		open[MAX_OPEN];
	int			nopen;
	long		seq;
	/* last keyed charge: repeating it must return the same request */
	char		charge_key[64];
	int			charge_key_account;
	int			charge_key_n;
	int			charge_key_scope;
	int64_t		charge_key_request;	/* 0: refused or none */
	int64_t		charge_key_cost;
	/* last add_funds key: repeating it must credit once */
	char		funds_key[64];
	int			funds_key_account;
	int64_t		funds_key_amount;
	int64_t		funds_key_entry;
	long		balance_checks;
	long		dup_checks;
} Client;

static const char *models[2] = {"stress-img", "stress-mp"};
static const struct
{
	int			w,
				h;
}			sizes[3] = {{1024, 1024}, {1024, 1536}, {2048, 2048}};

static int64_t account_ids[NACCOUNTS];
static double deadline;
static atomic_int failures;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

/* each client's own sequence: no shared state */
static uint64_t
rnd(Client *c)
{
	return xorshift64(&c->rng);
}

static int
rnd_int(Client *c, int lo, int hi)
{
	return lo + (int) (rnd(c) % (uint64_t) (hi - lo + 1));
}

static int64_t
rnd_i64(Client *c, int64_t lo, int64_t hi)
{
	return lo + (int64_t) (rnd(c) % (uint64_t) (hi - lo + 1));
}

/* Records a violated expectation; the run goes on to report everything. */
static void
fail(const char *fmt,...)
{
	va_list		ap;

	pthread_mutex_lock(&out_lock);
	if (atomic_fetch_add(&failures, 1) < 30)
	{
		fputs("stress: FAIL: ", stdout);
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		fputc('\n', stdout);
		fflush(stdout);
	}
	pthread_mutex_unlock(&out_lock);
}

static void
die(const char *what, PGconn *conn)
{
	fprintf(stderr, "stress: %s: %s", what, conn ? PQerrorMessage(conn) : "\n");
	exit(1);
}

static void
quiet(void *arg, const char *message)
{
	(void) arg;
	(void) message;
}

static PGconn *
connect_db(const char *conninfo)
{
	PGconn	   *conn = PQconnectdb(conninfo);

	if (PQstatus(conn) != CONNECTION_OK)
		die("connect", conn);
	return conn;
}

/* Runs setup SQL that must succeed. */
static void
exec_ok(PGconn *conn, const char *sql)
{
	pq_must(conn, "stress", sql);
}

static const char *
sqlstate(const PGresult *res)
{
	const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	return s ? s : "";
}

static int64_t
col_i64(const PGresult *res, int col)
{
	if (PQgetisnull(res, 0, col))
		return INT64_MIN;
	return strtoll(PQgetvalue(res, 0, col), NULL, 10);
}

static const char *const prepared[][2] = {
	{"charge",
		"SELECT (r->>'cost_micros')::bigint, (r->>'request_id')::bigint "
		"FROM billing.charge($1::bigint, $2::text, $3::jsonb, $4::jsonb, '{}'::jsonb, $5::text, "
		"$6::text) r"},
	{"begin",
		"SELECT (r->>'request_id')::bigint, (r->'metadata'->>'cost_estimate_micros')::bigint "
		"FROM billing.begin_request($1::bigint, $2::text, $3::jsonb, NULL, $4::text) r"},
	{"complete",
		"SELECT (r->>'cost_micros')::bigint FROM billing.complete_request($1::bigint, $2::jsonb) r"},
	{"fail",
		"SELECT (r->>'cost_micros')::bigint "
		"FROM billing.fail_request($1::bigint, 'stress: provider error', $2::bigint) r"},
	{"funds", "SELECT billing.add_funds($1::bigint, $2::bigint, $3::text)"},
	{"balance",
		"SELECT (b->>'balance_micros')::bigint, (b->>'held_micros')::bigint, "
		"(b->>'available_micros')::bigint, (b->>'low_balance_threshold_micros')::bigint, "
		"b->>'validation' FROM billing.balance($1::bigint) b"},
};

/*
 * Runs a prepared statement. Returns the result when it produced a row,
 * NULL after PB402 (*refused 1, or 2 for a spend limit; counted by the
 * caller); any other outcome is a failure of the run, and the connection
 * must still be usable afterwards.
 */
static const char *pooler;

static PGresult *
call(Client *c, const char *stmt, int n, const char *const *values, int *refused)
{
	PGresult   *res = NULL;

	if (pooler)
	{
		for (size_t i = 0; i < sizeof(prepared) / sizeof(prepared[0]); i++)
			if (strcmp(prepared[i][0], stmt) == 0)
				res = PQexecParams(c->conn, prepared[i][1], n, NULL, values, NULL, NULL, 0);
		if (res == NULL)
			die(stmt, c->conn);
	}
	else
		res = PQexecPrepared(c->conn, stmt, n, values, NULL, NULL, 0);

	*refused = 0;
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		return res;
	if (strcmp(sqlstate(res), "PB402") == 0)
	{
		const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

		*refused = msg && strcmp(msg, "spend limit reached") == 0 ? 2 : 1;
	}
	else
	{
		fail("%s: %s%s", stmt, PQresultErrorMessage(res),
			 PQstatus(c->conn) == CONNECTION_OK ? "" : " (connection lost)");
		if (PQstatus(c->conn) != CONNECTION_OK)
		{
			/* outcome unknown: the equations can no longer be checked */
			PQclear(res);
			exit(1);
		}
	}
	PQclear(res);
	return NULL;
}

static int64_t
megapixels(int w, int h)
{
	int64_t		px = (int64_t) w * h;

	return (px + 1048575) / 1048576;
}

/* The price of n output images of one size, as docs/pricing.md defines it. */
static int64_t
expected_cost(int model, int n, int size)
{
	if (model == 0)
		return (int64_t) n * IMG_PRICE;
	return (int64_t) n * megapixels(sizes[size].w, sizes[size].h) * MP_PRICE;
}

static void
params_json(char *buf, size_t len, int n, int size)
{
	snprintf(buf, len, "{\"n\":%d,\"size\":\"%dx%d\"}", n, sizes[size].w, sizes[size].h);
}

static void
outputs_json(char *buf, size_t len, int n, int size)
{
	size_t		off = (size_t) snprintf(buf, len, "{\"images\":[");

	for (int i = 0; i < n && off < len; i++)
		off += (size_t) snprintf(buf + off, len - off, "%s{\"width\":%d,\"height\":%d}",
								 i ? "," : "", sizes[size].w, sizes[size].h);
	snprintf(buf + off, len - off, "]}");
}

/* A scope for a request of account a: any of them on the limited account. */
static int
pick_scope(Client *c, int a)
{
	return a == LIMITED ? rnd_int(c, 0, NSCOPES - 1) : 0;
}

static void
count_refusal(Client *c, int a, int refused)
{
	c->tally[a].refused++;
	if (refused == 2)
	{
		c->tally[a].limited++;
		if (a != LIMITED)
			fail("%s has no spend limit, but a request was refused by one", defs[a].name);
	}
}

static void
op_charge(Client *c, int a)
{
	char		id[32],
				params[64],
				outputs[512],
				key[64];
	const char *v[6];
	int			model = rnd_int(c, 0, 1),
				size = rnd_int(c, 0, 2),
				n = rnd_int(c, 1, 3),
				refused,
				keyed = rnd_int(c, 0, 9) == 0,
				repeat = 0,
				scope = pick_scope(c, a);
	PGresult   *res;
	int64_t		cost,
				request;

	/* a third of the keyed charges repeat the last keyed call exactly */
	if (keyed && c->charge_key[0] && c->charge_key_request && rnd_int(c, 0, 2) == 0)
	{
		repeat = 1;
		a = c->charge_key_account;
		model = 0;
		size = 0;
		n = c->charge_key_n;
		scope = c->charge_key_scope;
		snprintf(key, sizeof(key), "%s", c->charge_key);
	}
	else if (keyed)
	{
		model = 0;
		size = 0;
		snprintf(key, sizeof(key), "stress-charge-%d-%ld", c->id, c->seq++);
	}
	snprintf(id, sizeof(id), "%lld", (long long) account_ids[a]);
	params_json(params, sizeof(params), n, size);
	outputs_json(outputs, sizeof(outputs), n, size);
	v[0] = id;
	v[1] = models[model];
	v[2] = params;
	v[3] = outputs;
	v[4] = keyed ? key : NULL;
	v[5] = scopes[scope];
	c->tally[a].calls++;
	res = call(c, "charge", 6, v, &refused);
	if (refused)
	{
		if (repeat)
			fail("repeated charge key %s was refused after it had succeeded", key);
		count_refusal(c, a, refused);
		if (keyed)
		{
			snprintf(c->charge_key, sizeof(c->charge_key), "%s", key);
			c->charge_key_request = 0;
		}
		return;
	}
	if (res == NULL)
		return;
	cost = col_i64(res, 0);
	request = col_i64(res, 1);
	PQclear(res);
	if (cost != expected_cost(model, n, size))
		fail("charge of %d x %s %dx%d cost %lld, expected %lld", n, models[model],
			 sizes[size].w, sizes[size].h, (long long) cost,
			 (long long) expected_cost(model, n, size));
	if (repeat)
	{
		c->dup_checks++;
		if (request != c->charge_key_request || cost != c->charge_key_cost)
			fail("repeated charge key %s returned request %lld cost %lld, first %lld cost %lld",
				 key, (long long) request, (long long) cost,
				 (long long) c->charge_key_request, (long long) c->charge_key_cost);
		return;					/* charged once: nothing new to count */
	}
	if (keyed)
	{
		snprintf(c->charge_key, sizeof(c->charge_key), "%s", key);
		c->charge_key_account = a;
		c->charge_key_n = n;
		c->charge_key_scope = scope;
		c->charge_key_request = request;
		c->charge_key_cost = cost;
	}
	c->tally[a].usage += cost;
	c->tally[a].settled++;
}

static void
op_begin(Client *c, int a)
{
	char		id[32],
				params[64];
	const char *v[4];
	OpenReq    *r = &c->open[c->nopen];
	int			refused;
	PGresult   *res;

	r->account = a;
	r->scope = pick_scope(c, a);
	r->model = rnd_int(c, 0, 1);
	r->size = rnd_int(c, 0, 2);
	r->n = rnd_int(c, 1, 4);
	snprintf(id, sizeof(id), "%lld", (long long) account_ids[a]);
	params_json(params, sizeof(params), r->n, r->size);
	v[0] = id;
	v[1] = models[r->model];
	v[2] = params;
	v[3] = scopes[r->scope];
	c->tally[a].calls++;
	res = call(c, "begin", 4, v, &refused);
	if (refused)
		count_refusal(c, a, refused);
	if (res == NULL)
		return;
	r->request_id = col_i64(res, 0);
	r->estimate = col_i64(res, 1);
	PQclear(res);
	if (r->estimate != expected_cost(r->model, r->n, r->size))
		fail("estimate of %d x %s %dx%d is %lld, expected %lld", r->n, models[r->model],
			 sizes[r->size].w, sizes[r->size].h, (long long) r->estimate,
			 (long long) expected_cost(r->model, r->n, r->size));
	c->nopen++;
}

/*
 * Finishes open request i: completed with at most the estimated outputs
 * (on the limited account, sometimes one more: an overrun), or failed with
 * a partial charge of at most the estimate. Sometimes the same call is
 * made twice, which must return the first cost and move no money.
 */
static void
op_finish(Client *c, int i)
{
	OpenReq		r = c->open[i];
	char		id[32],
				buf[512];
	const char *v[2];
	int			complete = rnd_int(c, 0, 9) < 7,
				twice = rnd_int(c, 0, 9) == 0,
				refused,
				k = rnd_int(c, 1, r.n),
				size = rnd_int(c, 0, r.size);

	if (r.account == LIMITED && rnd_int(c, 0, 9) == 0)
	{
		k = r.n + 1;
		size = r.size;
	}
	int64_t		expect,
				cost;
	PGresult   *res;

	c->open[i] = c->open[--c->nopen];
	snprintf(id, sizeof(id), "%lld", (long long) r.request_id);
	v[0] = id;
	v[1] = buf;
	if (complete)
	{
		outputs_json(buf, sizeof(buf), k, size);
		expect = expected_cost(r.model, k, size);
	}
	else
	{
		expect = rnd_int(c, 0, 1) ? 0 : rnd_i64(c, 1, r.estimate);
		snprintf(buf, sizeof(buf), "%lld", (long long) expect);
	}
	for (int round = 0; round <= twice; round++)
	{
		c->tally[r.account].calls++;
		res = call(c, complete ? "complete" : "fail", 2, v, &refused);
		if (refused)
			fail("%s of request %lld refused with PB402", complete ? "complete" : "fail",
				 (long long) r.request_id);
		if (res == NULL)
			return;
		cost = col_i64(res, 0);
		PQclear(res);
		if (cost != expect)
			fail("%s of request %lld (%s) cost %lld, expected %lld",
				 complete ? "complete" : "fail", (long long) r.request_id, buf,
				 (long long) cost, (long long) expect);
		if (round == 0)
		{
			c->tally[r.account].usage += cost;
			if (complete)
				c->tally[r.account].settled++;
			else
				c->tally[r.account].failed++;
		}
		else
			c->dup_checks++;
	}
}

static void
op_funds(Client *c, int a)
{
	char		id[32],
				amount[32],
				key[64];
	const char *v[3];
	int			refused,
				repeat = c->funds_key[0] && rnd_int(c, 0, 4) == 0;
	int64_t		amt,
				entry;
	PGresult   *res;

	if (repeat)
	{
		a = c->funds_key_account;
		amt = c->funds_key_amount;
		snprintf(key, sizeof(key), "%s", c->funds_key);
	}
	else
	{
		amt = rnd_i64(c, defs[a].topup_min, defs[a].topup_max);
		snprintf(key, sizeof(key), "stress-funds-%d-%ld", c->id, c->seq++);
	}
	snprintf(id, sizeof(id), "%lld", (long long) account_ids[a]);
	snprintf(amount, sizeof(amount), "%lld", (long long) amt);
	v[0] = id;
	v[1] = amount;
	v[2] = key;
	c->tally[a].calls++;
	res = call(c, "funds", 3, v, &refused);
	if (refused)
		fail("add_funds refused with PB402");
	if (res == NULL)
		return;
	entry = col_i64(res, 0);
	PQclear(res);
	if (repeat)
	{
		c->dup_checks++;
		if (entry != c->funds_key_entry)
			fail("add_funds key %s repeated returned entry %lld, first %lld", key,
				 (long long) entry, (long long) c->funds_key_entry);
		return;
	}
	snprintf(c->funds_key, sizeof(c->funds_key), "%s", key);
	c->funds_key_account = a;
	c->funds_key_amount = amt;
	c->funds_key_entry = entry;
	c->tally[a].funds += amt;
}

/* Checks the invariants a single balance() snapshot must satisfy. */
static void
check_snapshot(PGresult *res, int a, int final)
{
	int64_t		balance = col_i64(res, 0),
				held = col_i64(res, 1),
				available = col_i64(res, 2),
				threshold = col_i64(res, 3);
	const char *validation = PQgetvalue(res, 0, 4);
	/* the fast path's budget with the default factor 2 (README, Performance) */
	int64_t		room = available - threshold - 2 * held;
	const char *expect = room >= 3 ? "fast_path" : "per_request";

	if (available != balance - held || held < 0 || balance < 0 || available < 0)
		fail("%s %s: balance %lld, held %lld, available %lld", final ? "final" : "during run",
			 defs[a].name, (long long) balance, (long long) held, (long long) available);
	if (threshold < 1000000 || strcmp(validation, expect) != 0)
		fail("%s %s: available %lld, threshold %lld, validation %s (expected %s)",
			 final ? "final" : "during run", defs[a].name, (long long) available,
			 (long long) threshold, validation, expect);
}

static void
op_balance(Client *c, int a)
{
	char		id[32];
	const char *v[1] = {id};
	int			refused;
	PGresult   *res;

	snprintf(id, sizeof(id), "%lld", (long long) account_ids[a]);
	res = call(c, "balance", 1, v, &refused);
	if (res == NULL)
		return;
	check_snapshot(res, a, 0);
	PQclear(res);
	c->balance_checks++;
}

/* Busy accounts get more traffic; tight ones are where refusals happen. */
static int
pick_account(Client *c)
{
	static const int weights[NACCOUNTS] = {30, 20, 20, 15, 15};
	int			r = rnd_int(c, 0, 99);

	for (int a = 0; a < NACCOUNTS; a++)
	{
		if (r < weights[a])
			return a;
		r -= weights[a];
	}
	return 0;
}

/* The start of the current day in billing.timezone, as text (malloc'd). */
static char *
day_now(PGconn *conn)
{
	PGresult   *res = PQexec(conn, "SELECT (billing._limit_period('day', clock_timestamp())).starts_at");
	char	   *day;

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		die("day", conn);
	day = strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return day;
}

/*
 * Every limit, in every period that has usage: the usage charged in it
 * (the requests of its scope, or all of the account's) is at most the
 * limit plus the overruns of those requests (cost above estimate), the only
 * way past a limit. The run must have reached the limits, or this proves
 * nothing. A run across midnight (billing.timezone) is not checked: a
 * charge's ledger time and its admission's time may then fall on either
 * side of it.
 */
static void
check_limits(PGconn *conn, const char *day_start, long limited)
{
	char	   *day_end = day_now(conn);
	PGresult   *res;

	if (strcmp(day_start, day_end) != 0)
	{
		printf("stress: the run crossed midnight: spend limits not checked\n");
		free(day_end);
		return;
	}
	free(day_end);
	if (limited == 0)
		fail("no request was refused by a spend limit: the limits were never reached");
	res = PQexec(conn,
				 "SELECT coalesce(s.scope, '(account)'), s.period, s.limit_micros, "
				 "       sum(-l.amount_micros)::bigint, "
				 "       sum(GREATEST(r.cost_micros - r.cost_estimate_micros, 0))::bigint, count(*) "
				 "  FROM billing.spend_limits s "
				 "  JOIN billing.ledger l ON l.account_id = s.account_id AND l.kind = 'usage' "
				 "  JOIN billing.requests r ON r.request_id = l.request_id "
				 " CROSS JOIN LATERAL billing._limit_period(s.period, l.created_at) p "
				 " WHERE s.scope IS NULL OR r.scope = s.scope "
				 " GROUP BY s.limit_id, s.scope, s.period, s.limit_micros, p.starts_at "
				 " ORDER BY s.limit_id, p.starts_at");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		die("limits", conn);
	for (int i = 0; i < PQntuples(res); i++)
	{
		const char *scope = PQgetvalue(res, i, 0);
		int64_t		limit = strtoll(PQgetvalue(res, i, 2), NULL, 10),
					used = strtoll(PQgetvalue(res, i, 3), NULL, 10),
					overruns = strtoll(PQgetvalue(res, i, 4), NULL, 10);

		printf("stress: limit %-9s %-5s %10lld used %10lld overruns %8lld (%s requests)\n",
			   scope, PQgetvalue(res, i, 1), (long long) limit, (long long) used,
			   (long long) overruns, PQgetvalue(res, i, 5));
		if (used > limit + overruns)
			fail("limit of %s per %s: %lld used, above %lld + %lld of overruns", scope,
				 PQgetvalue(res, i, 1), (long long) used, (long long) limit, (long long) overruns);
	}
	PQclear(res);
}

/*
 * The reports agree with the ledger while charges go on (one snapshot each;
 * before the first usage entry, both sides are no usage).
 */
#define REPORT_CHECK_SQL \
	"SELECT (SELECT row(COALESCE(sum(requests), 0), sum(cost_micros)," \
	"                  COALESCE(sum(refunded_micros), 0))::text" \
	"          FROM billing.usage(NULL, '-infinity', 'infinity', '{day,model}'))" \
	"       IS NOT DISTINCT FROM" \
	"       (SELECT row(count(*) FILTER (WHERE kind = 'usage')," \
	"                   -sum(amount_micros) FILTER (WHERE kind = 'usage')," \
	"                   COALESCE(sum(amount_micros) FILTER (WHERE kind = 'refund'), 0))::text" \
	"          FROM billing.ledger WHERE kind IN ('usage', 'refund'))," \
	"       (SELECT balance_after_micros FROM billing.statement($1::bigint, '-infinity', 'infinity')" \
	"         ORDER BY entry_id DESC LIMIT 1)" \
	"       = (SELECT sum(amount_micros) FROM billing.ledger WHERE account_id = $1::bigint)"

static long report_checks;

static void *
reporter_main(void *p)
{
	PGconn	   *conn = connect_db(DB_CONNINFO);

	(void) p;
	for (long i = 0; now_s() < deadline; i++)
	{
		char		id[32];
		const char *v[1] = {id};
		PGresult   *res = PQexec(conn, "SELECT billing.rollup_usage()");

		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			fail("rollup_usage: %s", PQerrorMessage(conn));
		PQclear(res);
		snprintf(id, sizeof(id), "%lld", (long long) account_ids[i % NACCOUNTS]);
		res = PQexecParams(conn, REPORT_CHECK_SQL, 1, NULL, v, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			fail("report check: %s", PQerrorMessage(conn));
		else if (strcmp(PQgetvalue(res, 0, 0), "t") != 0 || strcmp(PQgetvalue(res, 0, 1), "t") != 0)
			fail("reports disagree with the ledger: usage %s, statement of account %s %s",
				 PQgetvalue(res, 0, 0), id, PQgetvalue(res, 0, 1));
		report_checks++;
		PQclear(res);
	}
	PQfinish(conn);
	return NULL;
}

static void *
client_main(void *p)
{
	Client	   *c = p;

	c->conn = connect_db(pooler ? pooler : DB_CONNINFO);
	for (size_t i = 0; !pooler && i < sizeof(prepared) / sizeof(prepared[0]); i++)
	{
		PGresult   *res = PQprepare(c->conn, prepared[i][0], prepared[i][1], 0, NULL);

		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			die("prepare", c->conn);
		PQclear(res);
	}
	for (long ops = 0; ops < MAX_OPS && now_s() < deadline; ops++)
	{
		int			r = rnd_int(c, 0, 99),
					a = pick_account(c);

		if (r < 40)
			op_charge(c, a);
		else if (r < 65 && c->nopen < MAX_OPEN)
			op_begin(c, a);
		else if (r < 85 && c->nopen > 0)
			op_finish(c, rnd_int(c, 0, c->nopen - 1));
		else if (r < 95)
			op_funds(c, a);
		else
			op_balance(c, a);
	}
	while (c->nopen > 0)
		op_finish(c, c->nopen - 1);
	return NULL;
}

int
main(void)
{
	PGconn	   *conn;
	PGresult   *res;
	Client	   *clients;
	pthread_t	reporter;
	int			seconds = getenv("STRESS_SECONDS") ? atoi(getenv("STRESS_SECONDS")) : 15;
	long		calls = 0,
				refused = 0,
				limited = 0,
				settled = 0,
				failed = 0,
				checks = 0,
				dups = 0;
	char		sql[512];
	double		t0;
	char	   *day_start;

	if (seconds < 1 || seconds > 40)
		seconds = 15;
	pooler = getenv("STRESS_POOLER");
	setvbuf(stdout, NULL, _IOLBF, 0);

	conn = connect_db("dbname=postgres connect_timeout=10");
	PQsetNoticeProcessor(conn, quiet, NULL);
	exec_ok(conn, "DROP DATABASE IF EXISTS billing_stress WITH (FORCE)");
	exec_ok(conn, "CREATE DATABASE billing_stress");
	PQfinish(conn);

	conn = connect_db(DB_CONNINFO);
	exec_ok(conn, "CREATE EXTENSION billing");
	exec_ok(conn, "SELECT billing.set_model('stress-img', 'image', 'stress', 'Stress Images')");
	exec_ok(conn, "SELECT billing.set_model('stress-mp', 'image', 'stress', 'Stress Megapixels')");
	snprintf(sql, sizeof(sql),
			 "SELECT billing.set_price('stress-img', '[{\"type\":\"output\",\"metric\":\"image\","
			 "\"unit_price_micros\":%d,\"unit_size\":1}]', NULL, now() - interval '1 day')",
			 IMG_PRICE);
	exec_ok(conn, sql);
	snprintf(sql, sizeof(sql),
			 "SELECT billing.set_price('stress-mp', '[{\"type\":\"output\",\"metric\":\"megapixel\","
			 "\"unit_price_micros\":%d,\"unit_size\":1}]', NULL, now() - interval '1 day')",
			 MP_PRICE);
	exec_ok(conn, sql);
	for (int a = 0; a < NACCOUNTS; a++)
	{
		snprintf(sql, sizeof(sql), "SELECT billing.create_account('stress-%s')", defs[a].name);
		res = PQexec(conn, sql);
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			die("create_account", conn);
		account_ids[a] = col_i64(res, 0);
		PQclear(res);
		snprintf(sql, sizeof(sql), "SELECT billing.add_funds(%lld, %lld, 'stress-initial')",
				 (long long) account_ids[a], (long long) defs[a].initial);
		exec_ok(conn, sql);
	}

	for (int k = 0; k < NSCOPES; k++)
		if (scope_daily_limits[k] > 0)
		{
			snprintf(sql, sizeof(sql), "SELECT billing.set_spend_limit(%lld, %lld, 'day', '%s')",
					 (long long) account_ids[LIMITED], (long long) scope_daily_limits[k], scopes[k]);
			exec_ok(conn, sql);
		}
	snprintf(sql, sizeof(sql), "SELECT billing.set_spend_limit(%lld, %d, 'month')",
			 (long long) account_ids[LIMITED], ACCOUNT_MONTHLY_LIMIT);
	exec_ok(conn, sql);
	day_start = day_now(conn);

	clients = calloc(CLIENTS, sizeof(Client));
	if (clients == NULL)
		return 1;
	t0 = now_s();
	deadline = t0 + seconds;
	for (int i = 0; i < CLIENTS; i++)
	{
		clients[i].id = i;
		clients[i].rng = 0x9E3779B97F4A7C15ULL * (uint64_t) (i + 1) ^ (uint64_t) time(NULL);
		if (pthread_create(&clients[i].thread, NULL, client_main, &clients[i]) != 0)
			die("pthread_create", NULL);
	}
	if (pthread_create(&reporter, NULL, reporter_main, NULL) != 0)
		die("pthread_create", NULL);
	for (int i = 0; i < CLIENTS; i++)
		pthread_join(clients[i].thread, NULL);
	pthread_join(reporter, NULL);
	printf("stress: clients done after %.1f s; %ld report checks\n", now_s() - t0, report_checks);

	/* The exact equations, per account. */
	for (int a = 0; a < NACCOUNTS; a++)
	{
		Tally		t = {0};
		int64_t		expect;
		char		id[32];
		const char *v[1] = {id};

		for (int i = 0; i < CLIENTS; i++)
		{
			t.funds += clients[i].tally[a].funds;
			t.usage += clients[i].tally[a].usage;
			t.settled += clients[i].tally[a].settled;
			t.failed += clients[i].tally[a].failed;
			t.refused += clients[i].tally[a].refused;
			t.limited += clients[i].tally[a].limited;
			t.calls += clients[i].tally[a].calls;
		}
		expect = defs[a].initial + t.funds - t.usage;
		snprintf(id, sizeof(id), "%lld", (long long) account_ids[a]);
		res = PQexecParams(conn,
						   "SELECT (b->>'balance_micros')::bigint, (b->>'held_micros')::bigint, "
						   "(b->>'available_micros')::bigint, "
						   "(b->>'low_balance_threshold_micros')::bigint, b->>'validation' "
						   "FROM billing.balance($1::bigint) b",
						   1, NULL, v, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
			die("final balance", conn);
		check_snapshot(res, a, 1);
		if (col_i64(res, 0) != expect || col_i64(res, 1) != 0)
			fail("%s: balance_micros %lld (expected %lld = %lld initial + %lld funds - %lld usage), "
				 "held_micros %lld (expected 0)", defs[a].name, (long long) col_i64(res, 0),
				 (long long) expect, (long long) defs[a].initial, (long long) t.funds,
				 (long long) t.usage, (long long) col_i64(res, 1));
		printf("stress: %-8s calls %6ld settled %6ld failed %5ld refused(PB402) %6ld "
			   "balance %lld validation %s\n", defs[a].name, t.calls, t.settled, t.failed,
			   t.refused, (long long) col_i64(res, 0), PQgetvalue(res, 0, 4));
		PQclear(res);

		/* the requests table tells the same story */
		res = PQexecParams(conn,
						   "SELECT count(*) FILTER (WHERE status = 'completed'), "
						   "count(*) FILTER (WHERE status = 'failed'), "
						   "count(*) FILTER (WHERE status IN ('queued', 'in_progress')), "
						   "coalesce(sum(cost_micros) FILTER (WHERE status IN ('completed', 'failed')), 0) "
						   "FROM billing.requests WHERE account_id = $1::bigint",
						   1, NULL, v, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			die("requests", conn);
		if (col_i64(res, 0) != t.settled || col_i64(res, 1) != t.failed ||
			col_i64(res, 2) != 0 || col_i64(res, 3) != t.usage)
			fail("%s: requests completed %s failed %s open %s cost %s; acknowledged %ld, %ld, 0, %lld",
				 defs[a].name, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2),
				 PQgetvalue(res, 0, 3), t.settled, t.failed, (long long) t.usage);
		PQclear(res);
		calls += t.calls;
		refused += t.refused;
		limited += t.limited;
		settled += t.settled;
		failed += t.failed;
	}
	check_limits(conn, day_start, limited);
	res = PQexec(conn, "SELECT count(*) FROM billing.verify()");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		die("verify", conn);
	if (col_i64(res, 0) != 0)
		fail("billing.verify() returned %s rows", PQgetvalue(res, 0, 0));
	PQclear(res);
	for (int i = 0; i < CLIENTS; i++)
	{
		checks += clients[i].balance_checks;
		dups += clients[i].dup_checks;
		PQfinish(clients[i].conn);
	}
	PQfinish(conn);

	printf("stress: %s: %d clients, %.1f s, %ld calls (%.0f/s), %ld settled, %ld failed, "
		   "%ld refused with PB402 (%ld by spend limits), %ld balance snapshots, "
		   "%ld repeated calls, %d problems\n",
		   atomic_load(&failures) ? "FAILED" : "ok", CLIENTS, now_s() - t0, calls,
		   calls / (now_s() - t0), settled, failed, refused, limited, checks, dups,
		   atomic_load(&failures));
	free(clients);
	free(day_start);
	return atomic_load(&failures) ? 1 : 0;
}
