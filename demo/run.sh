#!/usr/bin/env bash
# The demo: installs what is missing, builds billing, starts a throwaway
# PostgreSQL 15 cluster, runs demo/demo.sql (a day of an AI media API's
# billing in SQL), then starts the reference gateway (examples/gateway/) and
# walks through the API's billing page with curl, then the same flow with
# OpenAI's own Node SDK (demo/sdk_demo.mjs; the npm package `openai` goes into
# the throwaway folder), and ends with the SQL view of the same day. Removes
# the cluster and stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
bash test/setup.sh
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export PATH="$("$PG_CONFIG" --bindir):$PATH"
. test/cluster.sh
DIR=${BILLING_DEMO_DIR:-/tmp/billing-demo}
PORT=${BILLING_DEMO_PORT:-55499}
HTTP=${BILLING_DEMO_HTTP_PORT:-$((PORT + 1))}
API=http://127.0.0.1:$HTTP
GATEWAY_PID=
cleanup() {
	[ -z "$GATEWAY_PID" ] || kill "$GATEWAY_PID" 2>/dev/null || true
	cluster_stop "$DIR"; rm -rf "$DIR"
}
cluster_start "$DIR" "$PORT"
trap cleanup EXIT
psql -X -q -v ON_ERROR_STOP=0 -d postgres -f demo/demo.sql

sql() { psql -X -q -At -v ON_ERROR_STOP=1 -d postgres -c "$1"; }
say() { printf '\n== %s\n' "$*"; }
# curl METHOD PATH [KEY] [JSON] [HEADER]: prints the request, then the response
# with its status line
call() {
	local method=$1 path=$2 key=${3:-sk_live_web} json=${4:-} header=${5:-} args
	args=(-s -i -X "$method" -H "Authorization: Bearer $key")
	[ -z "$json" ] || args+=(-H 'Content-Type: application/json' -d "$json")
	[ -z "$header" ] || args+=(-H "$header")
	printf '$ curl -X %s %s%s%s%s\n' "$method" "$API$path" "${header:+ -H '$header'}" \
		" -H 'Authorization: Bearer $key'" "${json:+ -d '$json'}"
	curl "${args[@]}" "$API$path" | tr -d '\r' | grep -vE '^(Server|Date|Content-Type|Content-Length):'
}
# post_video JSON: call POST /v1/videos, and VID is the new video's id
post_video() {
	call POST /v1/videos sk_live_web "$1" >"$DIR/response"; cat "$DIR/response"
	VID=$(sed -n 's/^  "id": "\(.*\)",$/\1/p' "$DIR/response")
}
# wait_video: polls GET /v1/videos/$VID until the job is finished
wait_video() {
	local i status
	for i in $(seq 30); do
		sleep 1
		status=$(curl -s -H 'Authorization: Bearer sk_live_web' "$API/v1/videos/$VID" |
			sed -n 's/^  "status": "\(.*\)",$/\1/p')
		echo "... $VID is $status"
		[ "$status" = completed ] || [ "$status" = failed ] && break
	done
}

say 'the API backend: a login role with only billing_app, a customer with 1.00 USD and two API keys, one with 0.50 USD and a key for the SDK'
ACCT=$(sql "SELECT billing.create_account('cus_web')")
sql "SELECT billing.add_funds($ACCT, 1000000, 'stripe:pi_web', 'card payment')" >/dev/null
SDK_ACCT=$(sql "SELECT billing.create_account('cus_sdk')")
sql "SELECT billing.add_funds($SDK_ACCT, 500000, 'stripe:pi_sdk', 'card payment')" >/dev/null
sql "CREATE ROLE api_gateway LOGIN; GRANT billing_app TO api_gateway"
cat >"$DIR/keys.json" <<EOF
{"sk_live_web":  {"account_id": $ACCT, "scope": null},
 "sk_live_team": {"account_id": $ACCT, "scope": "team-key", "limits": {"day": 100000}},
 "sk_live_sdk":  {"account_id": $SDK_ACCT, "scope": null}}
EOF
cat "$DIR/keys.json"
/usr/bin/python3 examples/gateway/gateway.py --keys "$DIR/keys.json" --port "$HTTP" --quiet \
	--dsn "host=$DIR port=$PORT dbname=postgres user=api_gateway" --seed 1 --video-seconds 3 \
	--failure-rate 0 >"$DIR/gateway.log" 2>&1 &
GATEWAY_PID=$!
for i in $(seq 50); do grep -q listening "$DIR/gateway.log" && break; sleep 0.2; done
cat "$DIR/gateway.log"

say 'the models and their prices'
call GET /v1/models
say 'a dry run (?dryRun=true): the cost estimate, nothing generated or charged'
call POST '/v1/images/generations?dryRun=true' sk_live_web '{"model":"flux-pro","n":2,"size":"1024x1536","prompt":"a lighthouse at dawn"}'
say 'the same request for real: the images, and metadata.cost (charged once per Idempotency-Key)'
call POST /v1/images/generations sk_live_web '{"model":"flux-pro","n":2,"size":"1024x1536","prompt":"a lighthouse at dawn"}' 'Idempotency-Key: web-img-1'

say 'a video job (OpenAI fields: seconds "8" and size "1920x1080" are 8 s of 1080p): 202 with metadata.cost_estimate (held), polled until it carries metadata.cost'
post_video '{"model":"veo-3","seconds":"8","size":"1920x1080","prompt":"waves"}'
wait_video
call GET "/v1/videos/$VID"

say 'a key with a daily limit of 0.10 USD (scope "team-key"): one image fits, the next does not'
call POST /v1/images/generations sk_live_team '{"model":"flux-pro","size":"1024x1024"}'
call POST /v1/images/generations sk_live_team '{"model":"flux-pro","size":"1024x1024"}'
call GET /v1/balance sk_live_team

say 'out of funds: HTTP 402 with the remedies'
call POST /v1/videos sk_live_web '{"model":"veo-3","seconds":"8","size":"1920x1080"}'

say 'remedy: enable auto top-up (below the threshold already, so a top-up is requested at once)'
call POST /v1/auto_topup sk_live_web '{"threshold_micros":500000,"amount_micros":2000000}'
say 'the example payment worker reads the event log and settles the top-up'
echo '$ examples/payment_worker/payment_worker --max-events 0 "host=... user=postgres"'
examples/payment_worker/payment_worker --max-events 0 --timeout 30 "host=$DIR port=$PORT dbname=postgres user=postgres"
call GET /v1/balance
say 'the video again: admitted now'
post_video '{"model":"veo-3","seconds":"8","size":"1920x1080"}'
wait_video
call GET "/v1/videos/$VID"

say 'the usage report of the day, by model and scope'
if [ "$(sql "SELECT to_regproc('billing.usage') IS NOT NULL")" = t ]; then
	call GET '/v1/usage?group_by=day,model,scope'
else
	echo '(billing.usage() is not in this version of billing: skipped)'
fi

say "the same flow with OpenAI's Node SDK (npm package openai), its baseURL pointed at the gateway"
mkdir -p "$DIR/openai-sdk"
echo '{"private": true}' >"$DIR/openai-sdk/package.json"
npm install --prefix "$DIR/openai-sdk" --no-audit --no-fund --loglevel=error openai@7.60.0 >/dev/null
OPENAI_SDK_DIR=$DIR/openai-sdk GATEWAY_URL=$API/v1 API_KEY=sk_live_sdk node demo/sdk_demo.mjs

say 'the SQL view of the same day: the ledger of cus_web, its requests, its balance, verify()'
psql -X -q -v ON_ERROR_STOP=1 -d postgres <<EOF
\pset pager off
SELECT entry_id, kind, amount_micros, request_id, topup_id, reference, created_by
  FROM billing.ledger WHERE account_id = $ACCT ORDER BY entry_id;
SELECT request_id, model, scope, status, cost_estimate_micros, cost_micros, routing ->> 'upstream_id' AS upstream_id
  FROM billing.requests WHERE account_id = $ACCT ORDER BY request_id;
SELECT jsonb_pretty(billing.balance($ACCT)) AS balance;
SELECT * FROM billing.verify();
EOF
