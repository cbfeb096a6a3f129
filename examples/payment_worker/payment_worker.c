/*
 * payment_worker: an example payment worker for billing's auto top-up.
 *
 * It reads billing's event log (docs/events.md) with a cursor it keeps: the
 * last event_id it handled, in a file, so that a restart goes on where the
 * last run stopped and loses nothing. It settles every auto_topup_requested
 * event with billing.complete_topup(): a real worker would charge the
 * customer's card here; this one pretends to, and can pretend to fail.
 * NOTIFY billing_events only wakes it; it also polls every second, since an
 * event is readable only once every transaction older than it has ended.
 *
 * usage: payment_worker [--fail-every N] [--chargeback-every N] [--max-events N]
 *                       [--timeout SECONDS] [--cursor FILE] [CONNINFO]
 *   --fail-every N   every Nth top-up fails (payment declined); 0: none (default)
 *   --chargeback-every N  every Nth successful payment is disputed at once:
 *                    billing.reverse_topup() takes it back and turns auto
 *                    top-up off; 0: none (default)
 *   --max-events N   stop after N events (of any type); 0: read the backlog and stop
 *   --timeout S      stop after S seconds; with --max-events, a timeout is an error
 *   --cursor FILE    where the last event_id is kept (default: none, start at the first)
 *   CONNINFO         libpq connection string; default: the PG* environment
 *
 * Prints one line per event ("event: <type> <payload>"), one per top-up that
 * reloads to a target ("reload: ..."), one per settled top-up ("completed:
 * <json>") and one per chargeback ("reversed: <json>"). The cursor is saved after each event is
 * handled, so an event is handled at least once; a second completion of a
 * top-up with the same outcome changes nothing. Exit status: 0 done,
 * 1 error, 2 usage, 3 timed out before --max-events.
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
	long		chargeback_every;
	long		settled;		/* top-ups settled so far */
	long		paid;			/* of them, paid */
	const char *cursor_file;	/* NULL: the cursor is not kept */
	char		cursor[32];		/* the last event_id handled, as text */
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
 * Enough for the payloads of top-up events, flat objects of numbers
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

/* The cursor kept in the file, "0" when there is none yet. */
static void
load_cursor(Worker *w)
{
	FILE	   *f;

	snprintf(w->cursor, sizeof(w->cursor), "0");
	if (w->cursor_file == NULL || (f = fopen(w->cursor_file, "r")) == NULL)
		return;
	if (fscanf(f, "%31s", w->cursor) != 1)
		die(NULL, "cursor file %s is empty", w->cursor_file);
	fclose(f);
}

/* Replaces the file at once (write, then rename), so a crash leaves the old or the new id. */
static void
save_cursor(Worker *w, const char *event_id)
{
	char		tmp[4096];
	FILE	   *f;

	snprintf(w->cursor, sizeof(w->cursor), "%s", event_id);
	if (w->cursor_file == NULL)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", w->cursor_file);
	if ((f = fopen(tmp, "w")) == NULL || fprintf(f, "%s\n", event_id) < 0 || fclose(f) != 0 ||
		rename(tmp, w->cursor_file) != 0)
		die(w->conn, "could not save the cursor in %s: %s", w->cursor_file, strerror(errno));
}

/*
 * Reports to billing what became of the payment of topup_id: runs sql with
 * its text values and prints "done: <billing's answer>"; a refusal (say the
 * top-up was cancelled meanwhile) is reported on stderr, naming what, not
 * fatal. Non-zero when billing took it.
 */
static int
report(Worker *w, const char *sql, int nvalues, const char *const *values,
	   const char *done, const char *what, long long topup_id)
{
	PGresult   *res = PQexecParams(w->conn, sql, nvalues, NULL, values, NULL, NULL, 0);
	int			ok = PQresultStatus(res) == PGRES_TUPLES_OK;

	if (ok)
		printf("%s: %s\n", done, PQgetvalue(res, 0, 0));
	else
		fprintf(stderr, "%s %lld: %s", what, topup_id, PQresultErrorMessage(res));
	PQclear(res);
	return ok;
}

/*
 * A chargeback: the payment of topup_id was disputed and taken back by the
 * provider. The key (one per top-up) makes a repeat after a restart a replay.
 */
static void
chargeback(Worker *w, long long topup_id)
{
	char		id[32],
				key[48];
	const char *values[2];

	snprintf(id, sizeof(id), "%lld", topup_id);
	snprintf(key, sizeof(key), "cb_%lld", topup_id);
	values[0] = id;
	values[1] = key;
	report(w, "SELECT billing.reverse_topup($1::bigint, NULL, 'chargeback', true, $2)", 2, values,
		   "reversed", "chargeback of top-up", topup_id);
}

/*
 * Takes the payment (pretend) of the top-up that payload requests and
 * reports the outcome to billing. The amount is the event's: with a target
 * it reloads the account to it (docs/topup.md), cut to the monthly cap when
 * "clamped" is true.
 */
static void
settle(Worker *w, long long topup_id, const char *payload)
{
	char		id[32],
				reference[48];
	const char *values[4];
	int			fail;

	w->settled++;
	fail = w->fail_every > 0 && w->settled % w->fail_every == 0;
	if (json_int(payload, "target_micros") > 0)
		printf("reload: top-up %lld of %lld micros to the target %lld (available %s, clamped %s)\n",
			   topup_id, json_int(payload, "amount_micros"), json_int(payload, "target_micros"),
			   strstr(payload, "\"available_micros\": -") ? "below 0" : "at or above 0",
			   strstr(payload, "\"clamped\": true") ? "yes" : "no");
	snprintf(id, sizeof(id), "%lld", topup_id);
	snprintf(reference, sizeof(reference), "pay_%lld", topup_id);
	values[0] = id;
	values[1] = fail ? "false" : "true";
	values[2] = fail ? NULL : reference;
	values[3] = fail ? "card declined (simulated)" : NULL;
	if (report(w, "SELECT billing.complete_topup($1::bigint, $2::boolean, $3, $4)", 4, values,
			   "completed", "top-up", topup_id) &&
		!fail && w->chargeback_every > 0 && ++w->paid % w->chargeback_every == 0)
		chargeback(w, topup_id);
	fflush(stdout);
}

/*
 * Handles the events after the cursor, a batch at a time, until none is
 * left or max_events are handled; returns how many it handled.
 */
static long
drain(Worker *w, long max_events, long handled)
{
	const char *values[1];
	long		before = handled;

	for (;;)
	{
		PGresult   *res;
		int			n;

		values[0] = w->cursor;
		res = PQexecParams(w->conn,
						   "SELECT event_id, type, payload FROM billing.events_after($1::bigint, 100)",
						   1, NULL, values, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			die(w->conn, "events_after failed");
		n = PQntuples(res);
		for (int i = 0; i < n && (max_events < 0 || handled < max_events); i++)
		{
			const char *type = PQgetvalue(res, i, 1);
			const char *payload = PQgetvalue(res, i, 2);

			printf("event: %s %s\n", type, payload);
			fflush(stdout);
			if (strcmp(type, "auto_topup_requested") == 0 && json_int(payload, "topup_id") > 0)
				settle(w, json_int(payload, "topup_id"), payload);
			save_cursor(w, PQgetvalue(res, i, 0));
			handled++;
		}
		PQclear(res);
		if (n == 0 || (max_events >= 0 && handled >= max_events))
			return handled - before;
	}
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
		else if (strcmp(argv[i], "--chargeback-every") == 0 && i + 1 < argc)
			w.chargeback_every = parse_count(argv[i], argv[i + 1]), i++;
		else if (strcmp(argv[i], "--max-events") == 0 && i + 1 < argc)
			max_events = parse_count(argv[i], argv[i + 1]), i++;
		else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
			timeout = parse_count(argv[i], argv[i + 1]), i++;
		else if (strcmp(argv[i], "--cursor") == 0 && i + 1 < argc)
			w.cursor_file = argv[++i];
		else if (argv[i][0] != '-' && i == argc - 1)
			conninfo = argv[i];
		else
		{
			fprintf(stderr, "usage: %s [--fail-every N] [--chargeback-every N] [--max-events N] [--timeout SECONDS]"
					" [--cursor FILE] [CONNINFO]\n", argv[0]);
			return 2;
		}
	}
	deadline = timeout >= 0 ? time(NULL) + timeout : 0;
	load_cursor(&w);

	w.conn = PQconnectdb(conninfo);
	if (PQstatus(w.conn) != CONNECTION_OK)
		die(w.conn, "could not connect");
	res = PQexec(w.conn, "LISTEN billing_events");
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		die(w.conn, "LISTEN failed");
	PQclear(res);
	printf("listening\n");
	fflush(stdout);

	/* the backlog first: what was written while no worker ran */
	events += drain(&w, max_events == 0 ? -1 : max_events, events);
	while (max_events != 0 && (max_events < 0 || events < max_events))
	{
		PGnotify   *n;
		fd_set		fds;
		struct timeval tv = {1, 0};
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
		}
		/* a wake-up, or a second's poll */
		FD_ZERO(&fds);
		FD_SET(sock, &fds);
		if (select(sock + 1, &fds, NULL, NULL, &tv) < 0 && errno != EINTR)
			die(w.conn, "select failed: %s", strerror(errno));
		if (!PQconsumeInput(w.conn))
			die(w.conn, "lost the connection");
		while ((n = PQnotifies(w.conn)) != NULL)
			PQfreemem(n);
		events += drain(&w, max_events, events);
	}
	PQfinish(w.conn);
	return 0;
}
