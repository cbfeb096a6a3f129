#!/usr/bin/python3
"""A reference HTTP gateway in front of billing: the API that customers call.

Python's standard library (http.server, email for multipart bodies) and
psycopg 3, nothing else. It speaks OpenAI's API (images, videos, models), so
that OpenAI's SDKs work unchanged with their base URL pointed at it. It
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
import email.parser
import email.policy
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
# README.md). PB402 has four errmsgs, each its own code; a row with errmsg
# None matches every other errmsg of its SQLSTATE.
ERRORS = {
    # (SQLSTATE, errmsg): (HTTP status, error code)
    ("PB402", "insufficient balance"): (402, "insufficient_balance"),
    ("PB402", "credit limit exceeded"): (402, "credit_limit_exceeded"),
    ("PB402", "spend limit reached"): (402, "spend_limit_reached"),
    ("PB402", "payment overdue"): (402, "payment_overdue"),
    ("PB404", None): (404, "not_found"),
    ("PB409", None): (409, "conflict"),
    ("22023", None): (400, "invalid_request"),
    ("42501", None): (403, "permission_denied"),
    ("40P01", None): (503, "retry"),
}

# OpenAI's error `type` of each HTTP status the gateway answers with
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
               403: "permission_error", 404: "invalid_request_error", 409: "invalid_request_error",
               500: "server_error", 503: "server_error"}

# What OpenAI's video API calls a job's progress, by billing's status
PROGRESS = {"queued": 0, "in_progress": 50, "completed": 100, "failed": 100, "cancelled": 0}


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


def form_value(text):
    """A multipart field as the JSON value it stands for: OpenAI's SDKs send
    every field as text ("2", "true"), billing's params want numbers and
    booleans. Numbers stay exact (Decimal, never float)."""
    if re.fullmatch(r"-?\d{1,18}", text):
        return int(text)
    if re.fullmatch(r"-?\d{1,18}\.\d{1,18}", text):
        return Decimal(text)
    return {"true": True, "false": False}.get(text, text)


def parse_form(content_type, raw):
    """multipart/form-data: (fields, files), files mapping a field name to
    a list of (filename, bytes). The SDKs name repeated files "image[]"."""
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + raw)
    if not msg.is_multipart():
        raise ApiError(400, "invalid_request", "the multipart/form-data body cannot be read")
    fields, files = {}, {}
    for part in msg.iter_parts():
        name = (part.get_param("name", header="content-disposition") or "").removesuffix("[]")
        data = part.get_payload(decode=True) or b""
        if part.get_filename() is not None:
            files.setdefault(name, []).append((part.get_filename(), data))
        else:
            text = data.decode("utf-8", "replace")
            fields[name] = text if name in ("model", "prompt") else form_value(text)
    return fields, files


def video_params(body):
    """OpenAI's video fields as billing's params: `seconds` ("4") is
    duration_seconds, `size` ("1280x720") is the resolution of its shorter
    side (720p); any other key (audio, ...) is passed as it is."""
    params = params_of(body)
    if "seconds" in params:
        seconds = params.pop("seconds")
        params["duration_seconds"] = form_value(seconds) if isinstance(seconds, str) else seconds
    if "size" in params:
        size = re.fullmatch(r"(\d{1,5})x(\d{1,5})", str(params.pop("size")))
        if size is None:
            raise ApiError(400, "invalid_request", "size must be WIDTHxHEIGHT, e.g. 1280x720", param="size")
        params["resolution"] = f"{min(int(size[1]), int(size[2]))}p"
    return params


class ApiError(Exception):
    """An error in OpenAI's shape ({"error": {message, type, param, code}}),
    with billing's detail and hint added."""

    def __init__(self, status, code, message, detail=None, hint=None, param=None):
        super().__init__(message)
        self.status, self.body = status, {"error": {
            "message": message, "type": ERROR_TYPES.get(status, "invalid_request_error"),
            "param": param, "code": code, "detail": detail, "hint": hint}}

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


# The routes, in the order they are declared: (method, path pattern,
# endpoint, whether it is a generation: takes an Idempotency-Key and files)
ROUTES = []


def route(method, pattern, generation=False):
    """Declares the decorated Gateway method the endpoint of method and the
    path pattern (its groups are the endpoint's last arguments)."""
    def declare(endpoint):
        ROUTES.append((method, pattern, endpoint, generation))
        return endpoint
    return declare


class Gateway:
    def __init__(self, pool, keys, provider):
        self.db, self.keys, self.provider = pool, keys, provider
        # the video jobs this gateway started: request_id -> account_id, what
        # was asked and what the provider said (billing_app cannot read whose
        # a request is)
        self.jobs, self.jobs_lock = {}, threading.Lock()
        # section 20's prices per account, once this billing has them
        # (read from pg_proc: to_regproc needs USAGE on the schema)
        self.account_prices = self.db.one(
            "SELECT EXISTS (SELECT FROM pg_proc WHERE proname = 'account_catalog'"
            " AND pronamespace = 'billing'::regnamespace)")

    def apply_limits(self):
        for key in self.keys.values():
            for period, micros in key.get("limits", {}).items():
                self.db.one("SELECT billing.set_spend_limit(%s, %s, %s, %s)",
                            key["account_id"], micros, period, key["scope"])

    # --- the endpoints: each takes (key, query, body, *path groups)

    @route("GET", r"/v1/models")
    def list_models(self, key, query, body):
        return 200, {"object": "list", "data": self._models(key)}

    @route("GET", r"/v1/models/([^/]+)")
    def get_model(self, key, query, body, model):
        for found in self._models(key, model):
            return 200, found
        raise ApiError(404, "not_found", f'model "{model}" does not exist', param="model")

    @route("GET", r"/v1/balance")
    def balance(self, key, query, body):
        return 200, self.db.one("SELECT billing.balance(%s)", key["account_id"])

    @route("GET", r"/v1/usage")
    def usage(self, key, query, body):
        group_by = query["group_by"].split(",") if "group_by" in query else None
        return 200, {"object": "list", "data": self.db.rows(
            "SELECT * FROM billing.usage(%s, coalesce(%s::timestamptz, now() - interval '30 days'),"
            " coalesce(%s::timestamptz, now()), coalesce(%s::text[], '{day,model}'))",
            key["account_id"], query.get("from"), query.get("to"), group_by)}

    @route("POST", r"/v1/auto_topup")
    def auto_topup(self, key, query, body):
        self.db.one("SELECT billing.configure_auto_topup(%s, %s, %s, %s)", key["account_id"],
                    body.get("threshold_micros"), body.get("amount_micros"), body.get("enabled", True))
        return 200, self.db.one("SELECT billing.balance(%s)", key["account_id"])

    @route("POST", r"/v1/images/generations", generation=True)
    def images(self, key, query, body, idempotency_key=None, files=None):
        return self._images(key, query, body.get("model"), params_of(body), idempotency_key)

    @route("POST", r"/v1/images/edits", generation=True)
    def edit_images(self, key, query, body, idempotency_key=None, files=None):
        """An edit: the same as a generation, priced with the number of input
        images (billing's input_images param). The images themselves (and a
        mask) are the provider's business; billing needs only their count."""
        images = (files or {}).get("image")
        if not images:
            raise ApiError(400, "invalid_request", "an edit needs one or more image files", param="image")
        params = params_of(body)
        params["input_images"] = len(images)
        return self._images(key, query, body.get("model"), params, idempotency_key)

    @route("POST", r"/v1/videos", generation=True)
    def create_video(self, key, query, body, idempotency_key=None, files=None):
        params = video_params(body)
        if query.get("dryRun") == "true":
            return 200, self._estimate(key, body.get("model"), params)
        request_id, status = self._begin(key, body.get("model"), params, idempotency_key)
        with self.jobs_lock:
            fresh = request_id not in self.jobs
            if fresh:
                self.jobs[request_id] = {
                    "account_id": key["account_id"], "created_at": int(time.time()), "completed_at": None,
                    "prompt": body.get("prompt"), "size": body.get("size"), "deleted": False, "outputs": None,
                    "seconds": str(body.get("seconds", params.get("duration_seconds", ""))) or None}
        if fresh and status == "queued":
            self.provider.start_video(request_id, params,
                                      partial(self._video_started, request_id),
                                      partial(self._video_finished, request_id))
        return 202 if fresh else 200, self._video(request_id)

    @route("GET", r"/v1/videos")
    def list_videos(self, key, query, body):
        """The caller's videos, newest first (order=asc: oldest first), in
        pages of `limit` after the video `after`, as OpenAI pages them."""
        limit = query.get("limit", "20")
        if not re.fullmatch(r"\d{1,3}", limit) or not 1 <= int(limit) <= 100:
            raise ApiError(400, "invalid_request", "limit must be 1 to 100", param="limit")
        newest_first = query.get("order", "desc") != "asc"
        after = self._video_id(query["after"], "after") if "after" in query else None
        with self.jobs_lock:
            ids = sorted((r for r, job in self.jobs.items()
                          if job["account_id"] == key["account_id"] and not job["deleted"]
                          and (after is None or (r < after if newest_first else r > after))),
                         reverse=newest_first)
        page = [self._video(r) for r in ids[:int(limit)]]
        return 200, {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                     "last_id": page[-1]["id"] if page else None, "has_more": len(ids) > int(limit)}

    @route("GET", r"/v1/videos/([^/]+)")
    def get_video(self, key, query, body, video_id):
        return 200, self._video(self._own_video(key, video_id))

    @route("DELETE", r"/v1/videos/([^/]+)")
    def delete_video(self, key, query, body, video_id):
        """A running job is cancelled and charged nothing; a finished one
        keeps what it cost. Either way the video is gone from then on."""
        request_id = self._own_video(key, video_id)
        try:
            self.db.one("SELECT billing.cancel_request(%s)", request_id)
        except psycopg.Error as e:
            if e.sqlstate != "PB409":       # finished already: nothing to cancel
                raise
        self.jobs[request_id]["deleted"] = True
        return 200, dict(self._video(request_id), object="video.deleted", deleted=True)

    @route("GET", r"/v1/videos/([^/]+)/content")
    def video_content(self, key, query, body, video_id):
        request_id = self._own_video(key, video_id)
        if self.jobs[request_id]["outputs"] is None:
            raise ApiError(404, "not_found", f'video "{video_id}" has no content: it is not completed')
        return 200, self.provider.video_file(request_id), "video/mp4"

    @route("GET", r"/v1/invoices/([^/]+)")
    def get_invoice(self, key, query, body, invoice_id):
        """billing.invoice_document, served to its own account only: any
        other id (another account's, unknown, not a number) is a 404 alike."""
        document = None
        if re.fullmatch(r"\d{1,18}", invoice_id):
            try:
                document = self.db.one("SELECT billing.invoice_document(%s)", int(invoice_id))
            except psycopg.Error as e:
                if e.sqlstate != "PB404":
                    raise
        if document is None or document["account_id"] != key["account_id"]:
            raise ApiError(404, "not_found", f'invoice "{invoice_id}" does not exist')
        return 200, document

    # --- helpers

    def _begin(self, key, model, params, idempotency_key):
        """Admission: billing holds the estimate, or refuses (402 and co)."""
        begun = self.db.one("SELECT billing.begin_request(%s, %s, %s, %s, %s)", key["account_id"],
                            model, Jsonb(params), idempotency_key, key["scope"])
        return begun["request_id"], begun["status"]

    def _images(self, key, query, model, params, idempotency_key):
        if query.get("dryRun") == "true":
            return 200, self._estimate(key, model, params)
        request_id, status = self._begin(key, model, params, idempotency_key)
        images = self.provider.images(request_id, params)
        if status == "completed":       # a replay of the key: nothing is generated or charged again
            metadata = self.db.one("SELECT billing.response_metadata(%s)", request_id)
        else:
            metadata = self.db.one(
                "SELECT billing.complete_request(%s, %s, %s)", request_id,
                Jsonb({"images": [{"width": i["width"], "height": i["height"]} for i in images]}),
                Jsonb({"upstream_id": f"up_img_{request_id}"}))
        return 200, {"created": int(time.time()), "data": images, "metadata": metadata}

    def _estimate(self, key, model, params):
        """?dryRun=true: billing's estimate; nothing is generated, written or held."""
        if self.account_prices:
            return self.db.one("SELECT billing.estimate(%s, %s, %s)", model, Jsonb(params), key["account_id"])
        return self.db.one("SELECT billing.estimate(%s, %s)", model, Jsonb(params))

    def _models(self, key, model=None):
        """OpenAI's model objects, with the price of the model's default
        route (the one an estimate uses) under `pricing`: the account's
        price (book and discount) where billing has them, else the list."""
        if self.account_prices:
            rows = self.db.rows("SELECT * FROM billing.account_catalog(%s)"
                                " WHERE %s::text IS NULL OR model = %s ORDER BY model, provider",
                                key["account_id"], model, model)
        else:
            rows = self.db.rows("SELECT * FROM billing.catalog WHERE %s::text IS NULL OR model = %s"
                                " ORDER BY model, provider", model, model)
        pricing_keys = ("media", "provider", "currency", "components", "effective_from",
                        "price_book", "multiplier_ppm")
        return [{"id": r["model"], "object": "model", "created": int(r["effective_from"].timestamp()),
                 "owned_by": r["provider"], "pricing": {k: r[k] for k in pricing_keys if k in r}}
                for r in rows if r["is_default"]]

    def _video_id(self, video_id, param=None):
        if not re.fullmatch(r"vid_\d{1,18}", video_id):
            raise ApiError(404 if param is None else 400, "not_found" if param is None else "invalid_request",
                           f'"{video_id}" is not a video id', param=param)
        return int(video_id[4:])

    def _own_video(self, key, video_id):
        request_id = self._video_id(video_id)
        job = self.jobs.get(request_id)
        if job is None or job["account_id"] != key["account_id"] or job["deleted"]:
            raise ApiError(404, "not_found", f'video "{video_id}" does not exist')
        return request_id

    def _video(self, request_id):
        """OpenAI's video object, with billing's metadata: cost_estimate
        while the job runs, cost once it is finished."""
        metadata = self.db.one("SELECT billing.response_metadata(%s)", request_id)
        job, status = self.jobs[request_id], metadata["status"]
        video = {"id": f"vid_{request_id}", "object": "video", "model": metadata["model"], "status": status,
                 "progress": PROGRESS[status], "created_at": job["created_at"],
                 "completed_at": job["completed_at"], "expires_at": None, "prompt": job["prompt"],
                 "seconds": job["seconds"], "size": job["size"], "remixed_from_video_id": None, "error": None}
        if status == "completed" and job["outputs"]:
            # what the provider made, and what was billed: its duration
            video["duration_seconds"] = job["outputs"].get("duration_seconds")
        if status == "failed":
            video["error"] = {"code": "generation_failed", "message": "the provider could not generate the video"}
        video["metadata"] = metadata
        return video

    # The provider's callbacks, from its job threads. A job cancelled in the
    # meantime makes billing refuse the move (PB409), and nothing changes.
    def _video_started(self, request_id, routing):
        self._settle("UPDATE billing.requests SET status = 'in_progress', routing = %s"
                     " WHERE request_id = %s", Jsonb(routing), request_id)

    def _video_finished(self, request_id, outputs, routing):
        job = self.jobs[request_id]
        if outputs is None:
            settled = self._settle("SELECT billing.fail_request(%s, %s)", request_id, "upstream generation failed")
        else:
            settled = self._settle("SELECT billing.complete_request(%s, %s, %s)",
                                   request_id, Jsonb(outputs), Jsonb(routing))
            if settled:
                job["outputs"] = outputs
        if settled:
            job["completed_at"] = int(time.time())

    def _settle(self, sql, *args):
        """True when billing took the move."""
        try:
            with self.db.connection() as conn:
                conn.execute(sql, args)
            return True
        except psycopg.Error as e:
            if e.sqlstate != "PB409":
                print(f"settling failed: {e}", file=sys.stderr, flush=True)
            return False


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
        content_type = "application/json"
        try:
            # an endpoint answers (status, JSON) or (status, bytes, their type)
            status, body, *other_type = self.route(method)
            content_type = other_type[0] if other_type else content_type
        except ApiError as e:
            status, body = e.status, e.body
        except psycopg.Error as e:
            error = ApiError.from_billing(e)
            if error is None:
                print(f"unmapped database error {e.sqlstate}: {e}", file=sys.stderr, flush=True)
                error = ApiError(500, "internal_error", "the request could not be processed")
            status, body = error.status, error.body
        data = body if isinstance(body, bytes) else (to_json(body) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if status == 409:
            # OpenAI's SDKs retry a 409 (a lock timeout to them); billing's
            # conflicts are final, so they are told not to
            self.send_header("x-should-retry", "false")
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
        content_type = self.headers.get("Content-Type", "")
        files = {}
        if content_type.startswith("multipart/form-data"):
            # how the SDKs send image edits and videos: fields and files
            body, files = parse_form(content_type, raw)
        else:
            try:
                body = json.loads(raw, parse_float=Decimal) if raw else {}
            except ValueError as e:
                raise ApiError(400, "invalid_json", "the request body is not valid JSON", str(e))
            if not isinstance(body, dict):
                raise ApiError(400, "invalid_json", "the request body must be a JSON object")
        extra = {"idempotency_key": self.headers.get("Idempotency-Key"), "files": files} if idempotent else {}
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
