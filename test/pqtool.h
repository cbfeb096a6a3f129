/*
 * What the libpq programs (test/stress.c, test/fuzz.c, bench/cost.c)
 * share: a clock, deterministic randomness and setup statements that must
 * succeed. Included by each program, which is one file.
 */
#ifndef BILLING_PQTOOL_H
#define BILLING_PQTOOL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libpq-fe.h"

/* seconds on the monotonic clock */
static inline double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* xorshift64*: the next number of the sequence in *state (not 0) */
static inline uint64_t
xorshift64(uint64_t *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return *state * 2685821657736338717ULL;
}

/* Runs sql on conn, or says what failed (prog names the program) and exits 1. */
static inline void
pq_must(PGconn *conn, const char *prog, const char *sql)
{
	PGresult   *res = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(res);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
	{
		fprintf(stderr, "%s: setup statement failed: %s\n%s", prog, sql, PQerrorMessage(conn));
		exit(1);
	}
	PQclear(res);
}

/* A copy of the first value that query sql returns on conn, or it says what failed and exits 1. */
static inline char *
pq_value(PGconn *conn, const char *prog, const char *sql)
{
	PGresult   *res = PQexec(conn, sql);
	char	   *value;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) < 1)
	{
		fprintf(stderr, "%s: query failed: %s\n%s", prog, sql, PQerrorMessage(conn));
		exit(1);
	}
	value = strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return value;
}

#endif
