/*
 * bench/driver: closed-loop load generator for billing (libpq, pthreads).
 *
 *   driver MODE CLIENTS SECONDS ARG [CALLS]
 *
 * MODE is one of
 *   charge        billing.charge() of one 1024x1024 image on account ARG
 *   charge-scoped the same charge with the scope (API key) "bench-key"
 *   charge-costed the same charge of model bench-costed, whose route has a
 *                 provider cost version (bench/run.sh sets it)
 *   plain-spread  the plain-SQL floor: conditional debit + request row +
 *                 ledger row in one statement, accounts 1..ARG at random
 *   plain-one     the same statement, always on plain account ARG
 *   report        billing.usage() of account ARG by day and model over the
 *                 window in plain.report_window (bench/run.sh fills it)
 *   statement     billing.statement() of account ARG from plain.report_window's
 *                 page_from: its latest 100 entries
 *
 * Connection settings come from the environment (PGHOST, PGPORT, PGUSER,
 * PGDATABASE). Each client connects and prepares its statement, then all
 * start together; after SECONDS the run stops and the driver prints one line
 *
 *   mode=charge clients=16 seconds=10.00 ok=N refused=N errors=N tps=X p50_ms=X p99_ms=X
 *
 * counting only calls that finished inside the window. Latency is per call,
 * client side. Exit status 1 when any call failed (a refusal is not a
 * failure: refused counts PB402 and plain debits that found no funds).
 *
 * With CALLS, each client makes exactly CALLS calls instead (SECONDS is then
 * ignored), and the line ends with what one call cost the server:
 *
 *   ... cpu_us=X wal_bytes=X
 *
 * cpu_us is the CPU time of the clients' backends (/proc/PID/schedstat: the
 * driver must run on the server's host) and wal_bytes the WAL written
 * (pg_current_wal_lsn() before and after), each divided by the calls. Run
 * alone on the cluster, the WAL is the calls' own.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "libpq-fe.h"
#include "../test/pqtool.h"

#define CHARGE_SQL \
	"SELECT billing.charge($1::bigint, 'bench-img', '{\"n\":1,\"size\":\"1024x1024\"}'::jsonb, " \
	"'{\"images\":[{\"width\":1024,\"height\":1024}]}'::jsonb)"
#define CHARGE_SCOPED_SQL \
	"SELECT billing.charge($1::bigint, 'bench-img', '{\"n\":1,\"size\":\"1024x1024\"}'::jsonb, " \
	"'{\"images\":[{\"width\":1024,\"height\":1024}]}'::jsonb, '{}'::jsonb, NULL, 'bench-key')"
#define CHARGE_COSTED_SQL \
	"SELECT billing.charge($1::bigint, 'bench-costed', '{\"n\":1,\"size\":\"1024x1024\"}'::jsonb, " \
	"'{\"images\":[{\"width\":1024,\"height\":1024}]}'::jsonb)"

/*
 * The floor: what a minimal hand-written design costs, one statement that
 * debits only when covered, records the request and appends a ledger entry.
 */
#define PLAIN_SQL \
	"WITH d AS (UPDATE plain.accounts SET balance_micros = balance_micros - $2 " \
	"           WHERE account_id = $1 AND balance_micros >= $2 RETURNING account_id), " \
	"r AS (INSERT INTO plain.requests (account_id, model, status, params, outputs, cost_micros) " \
	"      SELECT account_id, 'bench-img', 'completed', '{\"n\":1,\"size\":\"1024x1024\"}', " \
	"             '{\"images\":[{\"width\":1024,\"height\":1024}]}', $2 FROM d " \
	"      RETURNING account_id, request_id) " \
	"INSERT INTO plain.ledger (account_id, kind, amount_micros, request_id) " \
	"SELECT account_id, 'usage', -$2, request_id FROM r RETURNING entry_id"

#define PLAIN_COST "40000"

#define REPORT_SQL \
	"SELECT count(*) FROM plain.report_window w, " \
	"     billing.usage($1::bigint, w.from_ts, w.to_ts, '{day,model}')"
#define STATEMENT_SQL \
	"SELECT count(*) FROM plain.report_window w, " \
	"     billing.statement($1::bigint, w.page_from, 'infinity')"

enum mode
{
	MODE_CHARGE,
	MODE_CHARGE_SCOPED,
	MODE_CHARGE_COSTED,
	MODE_PLAIN_SPREAD,
	MODE_PLAIN_ONE,
	MODE_REPORT,
	MODE_STATEMENT
};

typedef struct Client
{
	pthread_t	thread;
	int			id;
	PGconn	   *conn;
	uint64_t	rng;
	long		ok;
	long		refused;
	long		errors;
	int			backend_pid;
	uint32_t   *lat_us;		/* latencies of the calls inside the window */
	size_t		nlat;
	size_t		caplat;
} Client;

static enum mode mode;
static long arg;
static long fixed_calls;		/* CALLS, 0 for a timed run */
static pthread_barrier_t start_barrier;
static atomic_int stop;
static atomic_int setup_failed;
static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;
static int	reported_errors;

/* Prints the first few failures, so that a broken setup is visible. */
static void
report(const char *what, const char *msg)
{
	pthread_mutex_lock(&report_lock);
	if (reported_errors++ < 5)
		fprintf(stderr, "driver: %s: %s", what, msg);
	pthread_mutex_unlock(&report_lock);
}

static void
record_latency(Client *c, double seconds)
{
	if (c->nlat == c->caplat)
	{
		c->caplat = c->caplat ? c->caplat * 2 : 65536;
		c->lat_us = realloc(c->lat_us, c->caplat * sizeof(uint32_t));
		if (c->lat_us == NULL)
		{
			fprintf(stderr, "driver: out of memory\n");
			exit(2);
		}
	}
	c->lat_us[c->nlat++] = (uint32_t) (seconds * 1e6 + 0.5);
}

static void *
client_main(void *p)
{
	Client	   *c = p;
	const char *sql = mode == MODE_CHARGE ? CHARGE_SQL :
		mode == MODE_CHARGE_SCOPED ? CHARGE_SCOPED_SQL :
		mode == MODE_CHARGE_COSTED ? CHARGE_COSTED_SQL :
		mode == MODE_REPORT ? REPORT_SQL : mode == MODE_STATEMENT ? STATEMENT_SQL : PLAIN_SQL;
	int			nparams = mode == MODE_PLAIN_SPREAD || mode == MODE_PLAIN_ONE ? 2 : 1;
	PGresult   *res;

	c->conn = PQconnectdb("");
	if (PQstatus(c->conn) != CONNECTION_OK)
	{
		report("connect", PQerrorMessage(c->conn));
		atomic_store(&setup_failed, 1);
	}
	else
	{
		res = PQprepare(c->conn, "s", sql, 0, NULL);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
		{
			report("prepare", PQerrorMessage(c->conn));
			atomic_store(&setup_failed, 1);
		}
		PQclear(res);
		c->backend_pid = PQbackendPID(c->conn);
	}
	pthread_barrier_wait(&start_barrier);
	if (atomic_load(&setup_failed))
		return NULL;

	for (long n = 0; fixed_calls ? n < fixed_calls : !atomic_load(&stop); n++)
	{
		char		idbuf[32];
		const char *values[2];
		double		t0,
					t1;
		long		account = arg;
		int			counted;
		ExecStatusType st;

		if (mode == MODE_PLAIN_SPREAD)
			account = 1 + (long) (xorshift64(&c->rng) % (uint64_t) arg);
		snprintf(idbuf, sizeof(idbuf), "%ld", account);
		values[0] = idbuf;
		values[1] = PLAIN_COST;

		t0 = now_s();
		res = PQexecPrepared(c->conn, "s", nparams, values, NULL, NULL, 0);
		t1 = now_s();
		/* a call that ends after the stop signal is outside the window */
		counted = !atomic_load(&stop);
		st = PQresultStatus(res);
		if (st == PGRES_TUPLES_OK && PQntuples(res) == 1)
		{
			if (counted)
			{
				c->ok++;
				record_latency(c, t1 - t0);
			}
		}
		else if (st == PGRES_TUPLES_OK ||
				 (st == PGRES_FATAL_ERROR &&
				  strcmp(PQresultErrorField(res, PG_DIAG_SQLSTATE) ?
						 PQresultErrorField(res, PG_DIAG_SQLSTATE) : "", "PB402") == 0))
			c->refused += counted;
		else
		{
			c->errors++;
			report("call", PQerrorMessage(c->conn));
			if (PQstatus(c->conn) != CONNECTION_OK)
			{
				PQclear(res);
				break;
			}
		}
		PQclear(res);
	}
	return NULL;
}

/* CPU time a process has run, in nanoseconds; -1 when unknown. */
static long long
process_cpu_ns(int pid)
{
	char		path[64];
	long long	ns = -1;
	FILE	   *f;

	snprintf(path, sizeof(path), "/proc/%d/schedstat", pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	if (fscanf(f, "%lld", &ns) != 1)
		ns = -1;
	fclose(f);
	return ns;
}

/* Sum of process_cpu_ns() over the clients' backends; -1 when unknown. */
static long long
backends_cpu_ns(const Client *clients, int nclients)
{
	long long	total = 0;

	for (int i = 0; i < nclients; i++)
	{
		long long	ns = process_cpu_ns(clients[i].backend_pid);

		if (ns < 0)
			return -1;
		total += ns;
	}
	return total;
}

/* The server's WAL insert position in bytes, from a connection of its own. */
static double
wal_position(PGconn *conn)
{
	PGresult   *res = PQexec(conn, "SELECT pg_current_wal_lsn() - '0/0'");
	double		pos = -1;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		pos = atof(PQgetvalue(res, 0, 0));
	else
		report("wal position", PQerrorMessage(conn));
	PQclear(res);
	return pos;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t	x = *(const uint32_t *) a,
				y = *(const uint32_t *) b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted values, in milliseconds. */
static double
percentile_ms(const uint32_t *sorted, size_t n, double p)
{
	size_t		rank;

	if (n == 0)
		return 0;
	rank = (size_t) (p * n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return sorted[rank - 1] / 1000.0;
}

static void
usage(void)
{
	fprintf(stderr, "usage: driver charge|charge-scoped|charge-costed|plain-spread|plain-one|report|statement CLIENTS SECONDS ARG [CALLS]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	int			nclients;
	double		seconds,
				t0,
				elapsed = 0;
	Client	   *clients;
	long		ok = 0,
				refused = 0,
				errors = 0;
	size_t		nlat = 0;
	uint32_t   *all;
	PGconn	   *wal_conn = NULL;
	double		wal0 = 0,
				wal1 = 0;
	long long	cpu0 = 0,
				cpu1 = 0;

	if (argc != 5 && argc != 6)
		usage();
	if (strcmp(argv[1], "charge") == 0)
		mode = MODE_CHARGE;
	else if (strcmp(argv[1], "charge-scoped") == 0)
		mode = MODE_CHARGE_SCOPED;
	else if (strcmp(argv[1], "charge-costed") == 0)
		mode = MODE_CHARGE_COSTED;
	else if (strcmp(argv[1], "plain-spread") == 0)
		mode = MODE_PLAIN_SPREAD;
	else if (strcmp(argv[1], "plain-one") == 0)
		mode = MODE_PLAIN_ONE;
	else if (strcmp(argv[1], "report") == 0)
		mode = MODE_REPORT;
	else if (strcmp(argv[1], "statement") == 0)
		mode = MODE_STATEMENT;
	else
		usage();
	nclients = atoi(argv[2]);
	seconds = atof(argv[3]);
	arg = atol(argv[4]);
	fixed_calls = argc == 6 ? atol(argv[5]) : 0;
	if (nclients < 1 || nclients > 1000 || (seconds <= 0 && fixed_calls == 0) || arg < 1 ||
		(argc == 6 && fixed_calls < 1))
		usage();
	if (fixed_calls)
	{
		wal_conn = PQconnectdb("");
		if (PQstatus(wal_conn) != CONNECTION_OK)
		{
			report("connect", PQerrorMessage(wal_conn));
			return 2;
		}
	}

	clients = calloc(nclients, sizeof(Client));
	if (clients == NULL)
		return 2;
	pthread_barrier_init(&start_barrier, NULL, nclients + 1);
	for (int i = 0; i < nclients; i++)
	{
		clients[i].id = i;
		clients[i].rng = 0x9E3779B97F4A7C15ULL * (i + 1) ^ (uint64_t) time(NULL);
		if (pthread_create(&clients[i].thread, NULL, client_main, &clients[i]) != 0)
		{
			fprintf(stderr, "driver: cannot start thread: %s\n", strerror(errno));
			return 2;
		}
	}
	pthread_barrier_wait(&start_barrier);
	t0 = now_s();
	if (fixed_calls && !atomic_load(&setup_failed))
	{
		/* the clients started already: their first call is not yet done */
		cpu0 = backends_cpu_ns(clients, nclients);
		wal0 = wal_position(wal_conn);
	}
	if (!atomic_load(&setup_failed) && !fixed_calls)
	{
		struct timespec ts = {(time_t) seconds,
		(long) ((seconds - (time_t) seconds) * 1e9)};

		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
	if (!fixed_calls)
	{
		atomic_store(&stop, 1);
		elapsed = now_s() - t0;
	}
	for (int i = 0; i < nclients; i++)
		pthread_join(clients[i].thread, NULL);
	if (fixed_calls)
		elapsed = now_s() - t0;
	if (fixed_calls && !atomic_load(&setup_failed))
	{
		cpu1 = backends_cpu_ns(clients, nclients);
		wal1 = wal_position(wal_conn);
	}
	for (int i = 0; i < nclients; i++)
	{
		ok += clients[i].ok;
		refused += clients[i].refused;
		errors += clients[i].errors;
		nlat += clients[i].nlat;
		PQfinish(clients[i].conn);
	}
	if (atomic_load(&setup_failed))
		return 2;

	all = malloc((nlat ? nlat : 1) * sizeof(uint32_t));
	if (all == NULL)
		return 2;
	nlat = 0;
	for (int i = 0; i < nclients; i++)
	{
		if (clients[i].nlat)
			memcpy(all + nlat, clients[i].lat_us, clients[i].nlat * sizeof(uint32_t));
		nlat += clients[i].nlat;
		free(clients[i].lat_us);
	}
	qsort(all, nlat, sizeof(uint32_t), cmp_u32);

	printf("mode=%s clients=%d seconds=%.2f ok=%ld refused=%ld errors=%ld tps=%.1f "
		   "p50_ms=%.3f p99_ms=%.3f",
		   argv[1], nclients, elapsed, ok, refused, errors, ok / elapsed,
		   percentile_ms(all, nlat, 0.50), percentile_ms(all, nlat, 0.99));
	if (fixed_calls)
	{
		double		calls = (double) fixed_calls * nclients;

		printf(" cpu_us=%.1f wal_bytes=%.0f",
			   cpu0 >= 0 && cpu1 >= 0 ? (cpu1 - cpu0) / 1e3 / calls : -1.0,
			   (wal1 - wal0) / calls);
		PQfinish(wal_conn);
	}
	printf("\n");
	free(all);
	free(clients);
	return errors ? 1 : 0;
}
