/*
 * payment_worker: an example payment worker for billing's auto top-up.
 *
 * It LISTENs on billing_topup and settles every auto_topup_requested event
 * with billing.complete_topup(): a real worker would charge the customer's
 * card here; this one pretends to, and can pretend to fail. On start it
 * also settles the top-ups still pending, whose notifications it missed
 * while it was not listening.
 *
 * usage: payment_worker [--fail-every N] [--max-events N] [--timeout SECONDS] [CONNINFO]
 *   --fail-every N   every Nth top-up fails (payment declined); 0: none (default)
 *   --max-events N   stop after N notifications (requested and disabled)
 *   --timeout S      stop after S seconds; with --max-events, a timeout is an error
 *   CONNINFO         libpq connection string; default: the PG* environment
 *
 * Prints one line per notification ("notification: <payload>") and one per
 * settled top-up ("completed: <json>"). Exit status: 0 done, 1 error,
 * 2 usage, 3 timed out before --max-events.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>

#include "libpq-fe.h"

typedef struct Worker
{
	PGconn	   *conn;
	long		fail_every;
	long		settled;		/* top-ups settled so far */
	long long  *done;			/* their ids, so a top-up is settled once */
	long		ndone;
	long		capacity;
} Worker;

static void
die(PGconn *conn, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (conn)
	{
		fprintf(stderr, ": %s", PQerrorMessage(conn));
		PQfinish(conn);
	}
	fputc('\n', stderr);
	exit(1);
}

static long
parse_count(const char *opt, const char *arg)
{
	char	   *end;
	long		v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno != 0 || *arg == '\0' || *end != '\0' || v < 0)
	{
		fprintf(stderr, "payment_worker: %s needs a non-negative integer, got \"%s\"\n", opt, arg);
		exit(2);
	}
	return v;
}

/*
 * The integer value of "key" in a flat JSON object, or -1 when absent.
 * Enough for billing_topup payloads, which are flat objects of numbers
 * and strings.
 */
static long long
json_int(const char *json, const char *key)
{
	char		pattern[64];
	const char *p;

	snprintf(pattern, sizeof(pattern), "\"%s\"", key);
	p = strstr(json, pattern);
	if (p == NULL)
		return -1;
	p += strlen(pattern);
	while (*p == ' ' || *p == ':')
		p++;
	return (*p >= '0' && *p <= '9') ? strtoll(p, NULL, 10) : -1;
}

static int
json_event_is(const char *json, const char *event)
{
	char		pattern[96];
	const char *p = strstr(json, "\"event\"");

	if (p == NULL)
		return 0;
	p += strlen("\"event\"");
	while (*p == ' ' || *p == ':')
		p++;
	snprintf(pattern, sizeof(pattern), "\"%s\"", event);
	return strncmp(p, pattern, strlen(pattern)) == 0;
}

static int
already_done(Worker *w, long long topup_id)
{
	for (long i = 0; i < w->ndone; i++)
		if (w->done[i] == topup_id)
			return 1;
	if (w->ndone == w->capacity)
	{
		w->capacity = w->capacity ? w->capacity * 2 : 64;
		w->done = realloc(w->done, w->capacity * sizeof(long long));
		if (w->done == NULL)
			die(w->conn, "out of memory");
	}
	w->done[w->ndone++] = topup_id;
	return 0;
}

/* Takes the payment (pretend) and reports the outcome to billing. */
static void
settle(Worker *w, long long topup_id)
{
	char		id[32],
				reference[48];
	const char *values[4];
	int			fail;
	PGresult   *res;

	if (already_done(w, topup_id))
		return;
	w->settled++;
	fail = w->fail_every > 0 && w->settled % w->fail_every == 0;
	snprintf(id, sizeof(id), "%lld", topup_id);
	snprintf(reference, sizeof(reference), "pay_%lld", topup_id);
	values[0] = id;
	values[1] = fail ? "false" : "true";
	values[2] = fail ? NULL : reference;
	values[3] = fail ? "card declined (simulated)" : NULL;
	res = PQexecParams(w->conn,
					   "SELECT billing.complete_topup($1::bigint, $2::boolean, $3, $4)",
					   4, NULL, values, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		/* a refusal (say the top-up was cancelled meanwhile) is reported, not fatal */
		fprintf(stderr, "top-up %lld: %s", topup_id, PQresultErrorMessage(res));
	else
		printf("completed: %s\n", PQgetvalue(res, 0, 0));
	PQclear(res);
	fflush(stdout);
}

/* Settles the top-ups requested while no worker was listening. */
static void
catch_up(Worker *w)
{
	PGresult   *res = PQexec(w->conn,
							 "SELECT topup_id FROM billing.topups WHERE status = 'pending'"
							 " ORDER BY topup_id");
	int			n;
	long long  *ids;

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		fprintf(stderr, "catch-up skipped: %s", PQresultErrorMessage(res));
		PQclear(res);
		return;
	}
	n = PQntuples(res);
	ids = calloc(n > 0 ? n : 1, sizeof(long long));
	if (ids == NULL)
		die(w->conn, "out of memory");
	for (int i = 0; i < n; i++)
		ids[i] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
	PQclear(res);
	for (int i = 0; i < n; i++)
		settle(w, ids[i]);
	free(ids);
}

int
main(int argc, char **argv)
{
	Worker		w = {0};
	long		max_events = -1,
				timeout = -1,
				events = 0;
	const char *conninfo = "";
	time_t		deadline;
	PGresult   *res;

	for (int i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--fail-every") == 0 && i + 1 < argc)
			w.fail_every = parse_count(argv[i], argv[i + 1]), i++;
		else if (strcmp(argv[i], "--max-events") == 0 && i + 1 < argc)
			max_events = parse_count(argv[i], argv[i + 1]), i++;
		else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
			timeout = parse_count(argv[i], argv[i + 1]), i++;
		else if (argv[i][0] != '-' && i == argc - 1)
			conninfo = argv[i];
		else
		{
			fprintf(stderr, "usage: %s [--fail-every N] [--max-events N] [--timeout SECONDS] [CONNINFO]\n",
					argv[0]);
			return 2;
		}
	}
	deadline = timeout >= 0 ? time(NULL) + timeout : 0;

	w.conn = PQconnectdb(conninfo);
	if (PQstatus(w.conn) != CONNECTION_OK)
		die(w.conn, "could not connect");
	res = PQexec(w.conn, "LISTEN billing_topup");
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		die(w.conn, "LISTEN failed");
	PQclear(res);
	printf("listening\n");
	fflush(stdout);
	/* after LISTEN, so that no top-up falls between the two */
	catch_up(&w);

	while (max_events < 0 || events < max_events)
	{
		PGnotify   *n;
		fd_set		fds;
		struct timeval tv,
				   *tvp = NULL;
		int			sock = PQsocket(w.conn);

		if (timeout >= 0)
		{
			time_t		left = deadline - time(NULL);

			if (left <= 0)
			{
				fprintf(stderr, "timed out after %ld events\n", events);
				PQfinish(w.conn);
				return max_events >= 0 ? 3 : 0;
			}
			tv.tv_sec = left;
			tv.tv_usec = 0;
			tvp = &tv;
		}
		FD_ZERO(&fds);
		FD_SET(sock, &fds);
		if (select(sock + 1, &fds, NULL, NULL, tvp) < 0 && errno != EINTR)
			die(w.conn, "select failed: %s", strerror(errno));
		if (!PQconsumeInput(w.conn))
			die(w.conn, "lost the connection");
		while ((max_events < 0 || events < max_events) &&
			   (n = PQnotifies(w.conn)) != NULL)
		{
			events++;
			printf("notification: %s\n", n->extra);
			fflush(stdout);
			if (json_event_is(n->extra, "auto_topup_requested"))
			{
				long long	topup_id = json_int(n->extra, "topup_id");

				if (topup_id > 0)
					settle(&w, topup_id);
			}
			PQfreemem(n);
		}
	}
	PQfinish(w.conn);
	free(w.done);
	return 0;
}
