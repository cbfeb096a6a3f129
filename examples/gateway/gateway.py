#!/usr/bin/python3
"""A reference HTTP gateway in front of billing: the API that customers call.

Python's standard library (http.server) and psycopg 3, nothing else. It
connects as a login role that has only billing_app, maps a bearer API key to
an account and a scope, asks billing to admit every request before the
(fake) provider works on it, and settles it with what the provider returned.

usage: gateway.py --keys KEYS.json [--port 8080] [--dsn CONNINFO]
                  [--seed 0] [--video-seconds 2] [--failure-rate 0.2]

KEYS.json maps API keys to accounts (a real gateway keeps this in a table
of its own, next to billing's):
    {"sk_test_alice": {"account_id": 1, "scope": "key_alice",
                       "limits": {"day": 5000000}}}
"limits" (optional) are spend limits of the key's scope, in micros per
period (day, week, month), set with billing.set_spend_limit at startup.
"""
import argparse
import datetime
import json
import queue
import re
import sys
import threading
import time
from contextlib import contextmanager
from decimal import Decimal
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import psycopg
import psycopg.types.json
from psycopg.types.json import Jsonb

from fake_provider import FakeProvider

# billing's SQLSTATEs as HTTP errors, the one table of the gateway (and of
# README.md). PB402 has three errmsgs, each its own code; a row with
# errmsg None matches every other errmsg of its SQLSTATE.
ERRORS = {
    # (SQLSTATE, errmsg): (HTTP status, error code)
    ("PB402", "insufficient balance"): (402, "insufficient_balance"),
    ("PB402", "credit limit exceeded"): (402, "credit_limit_exceeded"),
    ("PB402", "spend limit reached"): (402, "spend_limit_reached"),
    ("PB404", None): (404, "not_found"),
    ("PB409", None): (409, "conflict"),
    ("22023", None): (400, "invalid_request"),
    ("42501", None): (403, "permission_denied"),
    ("40P01", None): (503, "retry"),
}


def to_json(value, indent="\n"):
    """JSON text of value, indented (indent None: compact). Amounts stay
    exact: billing's decimals are read as Decimal (see main) and written
    back as the numbers they are."""
    inner, colon = (indent + "  ", ": ") if indent else ("", ":")
    if isinstance(value, dict) and value:
        return "{" + ",".join(f"{inner}{json.dumps(str(k))}{colon}{to_json(v, inner or None)}"
                              for k, v in value.items()) + (indent or "") + "}"
    if isinstance(value, list) and value:
        return "[" + ",".join(inner + to_json(v, inner or None) for v in value) + (indent or "") + "]"
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime.datetime):
        return json.dumps(value.isoformat())
    return json.dumps(value)


def params_of(body):
    """A request's params for billing: its body less the model and the
    prompt (no price depends on a prompt, and billing need not keep it)."""
    return {k: v for k, v in body.items() if k not in ("model", "prompt")}


class ApiError(Exception):
    def __init__(self, status, code, message, detail=None, hint=None):
        super().__init__(message)
        self.status, self.body = status, {"error": {
            "code": code, "message": message, "detail": detail, "hint": hint}}

    @classmethod
    def from_billing(cls, e):
        """The HTTP error of a billing error; None when ERRORS has no row for it."""
        diag = e.diag
        found = (ERRORS.get((diag.sqlstate, diag.message_primary))
                 or ERRORS.get((diag.sqlstate, None)))
        if found is None:
            return None
        return cls(*found, diag.message_primary, diag.message_detail, diag.message_hint)


class Pool:
    """At most `size` connections, each in autocommit: one billing call is
    one transaction."""

    def __init__(self, conninfo, size):
        self.conninfo, self.idle, self.slots = conninfo, queue.LifoQueue(), threading.BoundedSemaphore(size)

    @contextmanager
    def connection(self):
        with self.slots:
            try:
                conn = self.idle.get_nowait()
            except queue.Empty:
                conn = psycopg.connect(self.conninfo, autocommit=True)
            try:
                yield conn
            finally:
                if conn.broken or conn.closed:
                    conn.close()
                else:
                    self.idle.put(conn)

    def one(self, sql, *args):
        """The first column of the first row of a query."""
        with self.connection() as conn:
            return conn.execute(sql, args).fetchone()[0]

    def rows(self, sql, *args):
        with self.connection() as conn:
            cur = conn.execute(sql, args)
            names = [c.name for c in cur.description]
            return [dict(zip(names, row)) for row in cur]


class Gateway:
    def __init__(self, pool, keys, provider):
        self.db, self.keys, self.provider = pool, keys, provider
        # the video jobs this gateway started: request_id -> account_id and
        # what the provider said (billing_app cannot read whose a request is)
        self.jobs, self.jobs_lock = {}, threading.Lock()

    def apply_limits(self):
        for key in self.keys.values():
            for period, micros in key.get("limits", {}).items():
                self.db.one("SELECT billing.set_spend_limit(%s, %s, %s, %s)",
                            key["account_id"], micros, period, key["scope"])

    # --- the endpoints: each takes (key, query, body, *path groups)

    def models(self, key, query, body):
        return 200, {"object": "list", "data": self.db.rows(
            "SELECT model, media, provider, provider_name, executed_model, is_default,"
            " currency, components, effective_from FROM billing.catalog ORDER BY model, provider")}

    def balance(self, key, query, body):
        return 200, self.db.one("SELECT billing.balance(%s)", key["account_id"])

    def usage(self, key, query, body):
        group_by = query["group_by"].split(",") if "group_by" in query else None
        return 200, {"object": "list", "data": self.db.rows(
            "SELECT * FROM billing.usage(%s, coalesce(%s::timestamptz, now() - interval '30 days'),"
            " coalesce(%s::timestamptz, now()), coalesce(%s::text[], '{day,model}'))",
            key["account_id"], query.get("from"), query.get("to"), group_by)}

    def auto_topup(self, key, query, body):
        self.db.one("SELECT billing.configure_auto_topup(%s, %s, %s, %s)", key["account_id"],
                    body.get("threshold_micros"), body.get("amount_micros"), body.get("enabled", True))
        return 200, self.db.one("SELECT billing.balance(%s)", key["account_id"])

    def _begin(self, key, body, idempotency_key):
        """Admission: billing holds the estimate, or refuses (402 and co)."""
        params = params_of(body)
        begun = self.db.one("SELECT billing.begin_request(%s, %s, %s, %s, %s)", key["account_id"],
                            body.get("model"), Jsonb(params), idempotency_key, key["scope"])
        return begun["request_id"], begun["status"], params

    def images(self, key, query, body, idempotency_key=None):
        if query.get("dryRun") == "true":
            return 200, self._estimate(body)
        request_id, status, params = self._begin(key, body, idempotency_key)
        images = self.provider.images(request_id, params)
        if status == "completed":       # a replay of the key: nothing is generated or charged again
            metadata = self.db.one("SELECT billing.response_metadata(%s)", request_id)
        else:
            metadata = self.db.one(
                "SELECT billing.complete_request(%s, %s, %s)", request_id,
                Jsonb({"images": [{"width": i["width"], "height": i["height"]} for i in images]}),
                Jsonb({"upstream_id": f"up_img_{request_id}"}))
        return 200, {"created": int(time.time()), "data": images, "metadata": metadata}

    def create_video(self, key, query, body, idempotency_key=None):
        if query.get("dryRun") == "true":
            return 200, self._estimate(body)
        request_id, status, params = self._begin(key, body, idempotency_key)
        with self.jobs_lock:
            fresh = request_id not in self.jobs
            if fresh:
                self.jobs[request_id] = {"account_id": key["account_id"], "outputs": None}
        if fresh and status == "queued":
            self.provider.start_video(request_id, params,
                                      partial(self._video_started, request_id),
                                      partial(self._video_finished, request_id))
        return 202 if fresh else 200, self._video(request_id)

    def get_video(self, key, query, body, video_id):
        return 200, self._video(self._own_video(key, video_id))

    def cancel_video(self, key, query, body, video_id):
        request_id = self._own_video(key, video_id)
        self.db.one("SELECT billing.cancel_request(%s)", request_id)
        return 200, self._video(request_id)

    # --- helpers

    def _estimate(self, body):
        """?dryRun=true: billing's estimate; nothing is generated, written or held."""
        return self.db.one("SELECT billing.estimate(%s, %s)", body.get("model"), Jsonb(params_of(body)))

    def _own_video(self, key, video_id):
        request_id = int(video_id[4:]) if re.fullmatch(r"vid_\d{1,18}", video_id) else None
        job = self.jobs.get(request_id)
        if job is None or job["account_id"] != key["account_id"]:
            raise ApiError(404, "not_found", f'video "{video_id}" does not exist')
        return request_id

    def _video(self, request_id):
        metadata = self.db.one("SELECT billing.response_metadata(%s)", request_id)
        video = {"id": f"vid_{request_id}", "object": "video", "status": metadata["status"],
                 "model": metadata["model"]}
        outputs = self.jobs[request_id]["outputs"]
        if metadata["status"] == "completed" and outputs:
            video.update(duration_seconds=outputs.get("duration_seconds"),
                         url=f"/files/vid_{request_id}.mp4")
        if metadata["status"] == "failed":
            video["error"] = {"code": "generation_failed", "message": "the provider could not generate the video"}
        video["metadata"] = metadata
        return video

    # The provider's callbacks, from its job threads. A job cancelled in the
    # meantime makes billing refuse the move (PB409), and nothing changes.
    def _video_started(self, request_id, routing):
        self._settle("UPDATE billing.requests SET status = 'in_progress', routing = %s"
                     " WHERE request_id = %s", Jsonb(routing), request_id)

    def _video_finished(self, request_id, outputs, routing):
        if outputs is None:
            self._settle("SELECT billing.fail_request(%s, %s)", request_id, "upstream generation failed")
        else:
            self.jobs[request_id]["outputs"] = outputs
            self._settle("SELECT billing.complete_request(%s, %s, %s)",
                         request_id, Jsonb(outputs), Jsonb(routing))

    def _settle(self, sql, *args):
        try:
            with self.db.connection() as conn:
                conn.execute(sql, args)
        except psycopg.Error as e:
            if e.sqlstate != "PB409":
                print(f"settling failed: {e}", file=sys.stderr, flush=True)


ROUTES = [
    # method, path, endpoint, takes an Idempotency-Key
    ("POST", r"/v1/images/generations", Gateway.images, True),
    ("POST", r"/v1/videos", Gateway.create_video, True),
    ("GET", r"/v1/videos/([^/]+)", Gateway.get_video, False),
    ("DELETE", r"/v1/videos/([^/]+)", Gateway.cancel_video, False),
    ("GET", r"/v1/balance", Gateway.balance, False),
    ("GET", r"/v1/usage", Gateway.usage, False),
    ("GET", r"/v1/models", Gateway.models, False),
    ("POST", r"/v1/auto_topup", Gateway.auto_topup, False),
]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    gateway = None      # set in main
    quiet = False

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def dispatch(self, method):
        try:
            status, body = self.route(method)
        except ApiError as e:
            status, body = e.status, e.body
        except psycopg.Error as e:
            error = ApiError.from_billing(e)
            if error is None:
                print(f"unmapped database error {e.sqlstate}: {e}", file=sys.stderr, flush=True)
                error = ApiError(500, "internal_error", "the request could not be processed")
            status, body = error.status, error.body
        data = (to_json(body) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def route(self, method):
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        for m, pattern, endpoint, idempotent in ROUTES:
            match = re.fullmatch(pattern, url.path)
            if match and m == method:
                break
        else:
            raise ApiError(404, "not_found", f"no route for {method} {url.path}")
        key = self.gateway.keys.get(self.headers.get("Authorization", "").removeprefix("Bearer "))
        if key is None:
            raise ApiError(401, "unauthorized", "a valid API key is needed",
                           hint="Send it as Authorization: Bearer <key>.")
        try:
            body = json.loads(raw, parse_float=Decimal) if raw else {}
        except ValueError as e:
            raise ApiError(400, "invalid_json", "the request body is not valid JSON", str(e))
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_json", "the request body must be a JSON object")
        extra = {"idempotency_key": self.headers.get("Idempotency-Key")} if idempotent else {}
        return endpoint(self.gateway, key, query, body, *match.groups(), **extra)

    def log_message(self, fmt, *args):
        if not self.quiet:
            super().log_message(fmt, *args)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keys", required=True, help="JSON file: API key -> account_id, scope, limits")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--dsn", default="", help="libpq connection string (default: the PG* environment)")
    ap.add_argument("--pool", type=int, default=10, help="database connections at most")
    ap.add_argument("--seed", type=int, default=0, help="seed of the fake provider")
    ap.add_argument("--video-seconds", type=float, default=2.0, help="how long a fake video job takes")
    ap.add_argument("--failure-rate", type=float, default=0.2, help="share of fake video jobs that fail")
    ap.add_argument("--quiet", action="store_true", help="no access log")
    args = ap.parse_args()

    # jsonb read with exact decimals: billing's amounts are never floats here
    psycopg.types.json.set_json_loads(partial(json.loads, parse_float=Decimal))
    psycopg.types.json.set_json_dumps(partial(to_json, indent=None))
    with open(args.keys) as f:
        keys = json.load(f)
    gateway = Gateway(Pool(args.dsn, args.pool), keys,
                      FakeProvider(args.seed, args.video_seconds, args.failure_rate))
    gateway.apply_limits()
    Handler.gateway, Handler.quiet = gateway, args.quiet
    ThreadingHTTPServer.request_queue_size = 128     # bursts of clients wait, not reset
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"listening on http://{args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
