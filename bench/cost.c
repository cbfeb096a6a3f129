/*
 * bench/cost: what one call costs the server, for make bench's (6).
 *
 *   cost charge|charge-scoped|charge-costed|floor|video ARG CALLS
 *
 * One connection makes CALLS calls of the statement of MODE (the ones of
 * bench/pgbench/charge.sql, charge_scoped.sql, charge_costed.sql and
 * floor.sql; for video, a pair of video.sql: begin_request, then
 * complete_request of the request it began; ARG is the
 * account, or for floor the number of plain accounts to pick from at
 * random), then prints
 *
 *   mode=charge calls=N cpu_us=X wal_bytes=X
 *
 * cpu_us is the CPU time of the connection's backend per call, read from
 * /proc/PID/schedstat (so this runs on the server's host: pgbench cannot
 * name its backends), and wal_bytes the WAL written per call
 * (pg_current_wal_lsn() before and after; run alone on the cluster, the
 * WAL is the calls' own). Connection settings come from the environment.
 * Exits 1 when a call fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
#define VIDEO_BEGIN_SQL \
	"SELECT billing.begin_request($1::bigint, 'bench-vid', '{\"duration_seconds\":4}') ->> 'request_id'"
#define VIDEO_COMPLETE_SQL \
	"SELECT billing.complete_request($1::bigint, '{\"duration_seconds\":4}')"
#define FLOOR_SQL \
	"WITH d AS (UPDATE plain.accounts SET balance_micros = balance_micros - 40000 " \
	"           WHERE account_id = $1 AND balance_micros >= 40000 RETURNING account_id), " \
	"r AS (INSERT INTO plain.requests (account_id, model, status, params, outputs, cost_micros) " \
	"      SELECT account_id, 'bench-img', 'completed', '{\"n\":1,\"size\":\"1024x1024\"}', " \
	"             '{\"images\":[{\"width\":1024,\"height\":1024}]}', 40000 FROM d " \
	"      RETURNING account_id, request_id) " \
	"INSERT INTO plain.ledger (account_id, kind, amount_micros, request_id) " \
	"SELECT account_id, 'usage', -40000, request_id FROM r RETURNING entry_id"

/* Prepares sql as name; exits 1 when it fails. */
static void
prepare(PGconn *conn, const char *name, const char *sql)
{
	PGresult   *res = PQprepare(conn, name, sql, 0, NULL);

	if (PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		fprintf(stderr, "cost: prepare: %s", PQerrorMessage(conn));
		exit(1);
	}
	PQclear(res);
}

/* Runs the prepared statement name with one argument; its one value, or exits 1. */
static char *
call(PGconn *conn, const char *name, const char *arg, long n)
{
	const char *values[1] = {arg};
	PGresult   *res = PQexecPrepared(conn, name, 1, values, NULL, NULL, 0);
	char	   *value;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
	{
		fprintf(stderr, "cost: call %ld failed: %s", n + 1, PQerrorMessage(conn));
		exit(1);
	}
	value = strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return value;
}

/* CPU time process pid has run, in nanoseconds */
static long long
process_cpu_ns(int pid)
{
	char		path[64];
	long long	ns = -1;
	FILE	   *f;

	snprintf(path, sizeof(path), "/proc/%d/schedstat", pid);
	f = fopen(path, "r");
	if (f == NULL || fscanf(f, "%lld", &ns) != 1)
	{
		fprintf(stderr, "cost: cannot read %s (the server must run on this host)\n", path);
		exit(1);
	}
	fclose(f);
	return ns;
}

static double
wal_position(PGconn *conn)
{
	char	   *v = pq_value(conn, "cost", "SELECT pg_current_wal_lsn() - '0/0'");
	double		pos = atof(v);

	free(v);
	return pos;
}

int
main(int argc, char **argv)
{
	const char *sql;
	int			spread = 0;
	int			video = 0;
	long		arg,
				calls;
	uint64_t	rng = 88172645463325252ULL;
	PGconn	   *conn;
	long long	cpu0;
	double		wal0;
	int			pid;

	if (argc != 4 || (arg = atol(argv[2])) < 1 || (calls = atol(argv[3])) < 1)
	{
		fprintf(stderr, "usage: cost charge|charge-scoped|charge-costed|floor|video ARG CALLS\n");
		return 2;
	}
	if (strcmp(argv[1], "charge") == 0)
		sql = CHARGE_SQL;
	else if (strcmp(argv[1], "charge-scoped") == 0)
		sql = CHARGE_SCOPED_SQL;
	else if (strcmp(argv[1], "charge-costed") == 0)
		sql = CHARGE_COSTED_SQL;
	else if (strcmp(argv[1], "video") == 0)
	{
		sql = VIDEO_BEGIN_SQL;
		video = 1;
	}
	else if (strcmp(argv[1], "floor") == 0)
	{
		sql = FLOOR_SQL;
		spread = 1;
	}
	else
	{
		fprintf(stderr, "cost: unknown mode %s\n", argv[1]);
		return 2;
	}
	conn = PQconnectdb("");
	if (PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "cost: %s", PQerrorMessage(conn));
		return 1;
	}
	prepare(conn, "s", sql);
	if (video)
		prepare(conn, "complete", VIDEO_COMPLETE_SQL);
	pid = PQbackendPID(conn);
	wal0 = wal_position(conn);
	cpu0 = process_cpu_ns(pid);
	for (long n = 0; n < calls; n++)
	{
		char		account[32];
		char	   *value;

		snprintf(account, sizeof(account), "%ld",
				 spread ? 1 + (long) (xorshift64(&rng) % (uint64_t) arg) : arg);
		value = call(conn, "s", account, n);
		if (video)
		{
			char	   *request = value;

			value = call(conn, "complete", request, n);
			free(request);
		}
		free(value);
	}
	printf("mode=%s calls=%ld cpu_us=%.1f wal_bytes=%.0f\n", argv[1], calls,
		   (process_cpu_ns(pid) - cpu0) / 1e3 / calls, (wal_position(conn) - wal0) / calls);
	PQfinish(conn);
	return 0;
}
