#!/usr/bin/python3
"""billing behind PgBouncer in transaction pooling (test/pgbouncer.sh).

Eight clients share a pool of three server connections, so consecutive
statements of one client run on different backends. Checks that every
call behaves as on a direct connection: a key replays whichever backend
sees it, every backend's caches see a committed change of prices, limits
and billing type at once, and a call that fails (a refusal, a lock timeout
inside the charge's fast path, a read-only transaction) hands its server
connection back clean for the next client. Environment: POOLER (libpq
connection string of the pooler), DIRECT (of the server). Prints
"ok"/"FAILED" per check; the exit status is the number of failures.
"""
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import psycopg

failed = 0


def check(ok, what, got=None):
    global failed
    print(("ok: " if ok else "FAILED: ") + what + ("" if ok else f"\n  got: {got}"), flush=True)
    failed += not ok


def connect(conninfo):
    # no prepared statements: a named one does not outlive a transaction here
    return psycopg.connect(conninfo, autocommit=True, prepare_threshold=None)


direct = connect(os.environ["DIRECT"])
clients = [connect(os.environ["POOLER"]) for _ in range(8)]


def one(conn, query, *args):
    return conn.execute(query, args).fetchone()[0]


def sqlstate(conn, query, *args):
    try:
        conn.execute(query, args)
        return "ok"
    except psycopg.Error as e:
        if not conn.autocommit:
            conn.rollback()
        return e.sqlstate


direct.execute("SET client_min_messages = warning")
direct.execute("DROP EXTENSION IF EXISTS billing CASCADE")
direct.execute("CREATE EXTENSION billing")
direct.execute("SELECT billing.set_model('pb-img', 'image', 'acme', 'Acme Images')")
direct.execute("""SELECT billing.set_price('pb-img', '[{"type":"output","metric":"image","unit_price_micros":1000}]',
                  NULL, now() - interval '1 day')""")
acct = one(direct, "SELECT billing.create_account('pb-1')")
direct.execute("SELECT billing.add_funds(%s, 100000000)", (acct,))
charge = "SELECT billing.charge(%s, 'pb-img', '{}', '{\"images\":[{}]}', '{}', %s) ->> 'request_id'"

pool = ThreadPoolExecutor(len(clients))


def on_all(query, *args):
    """query on every client at once, each held a moment so that the
    pool's server connections all serve some of them"""
    return list(pool.map(lambda c: one(c, f"SELECT ({query}) FROM pg_sleep(0.05)", *args), clients))


pids = set(on_all("pg_backend_pid()"))
check(len(pids) == 3, f"eight clients share the pool's three server connections ({len(pids)} seen)", pids)

# a key replays on whichever backend: one request, one charge
ids = {one(c, charge, acct, "pb-key-1") for c in clients}
check(len(ids) == 1, "a key used by eight clients makes one request", ids)
check(one(direct, "SELECT count(*) FROM billing.ledger WHERE account_id = %s AND kind = 'usage'", acct) == 1,
      "a key used by eight clients charges once")

# the caches of every backend see each committed change at once
stale = []
for price in range(2000, 12000, 1000):
    clients[price // 1000 % 8].execute(
        "SELECT billing.set_price('pb-img', %s::jsonb, NULL, now() - interval '1 second')",
        ('[{"type":"output","metric":"image","unit_price_micros":%d}]' % price,))
    stale += [(price, got) for got in on_all("billing.estimate('pb-img', '{}') ->> 'total_cost_micros'")
              if got != str(price)]
check(not stale, "every client's estimate sees each new price version at once", stale[:5])

clients[0].execute("SELECT billing.set_spend_limit(%s, 25000, 'day')", (acct,))
outcomes = [sqlstate(c, charge, acct, None) for c in clients]
# the price is now 11000: two charges fit under 25000 with the first (1000)
check(outcomes.count("ok") == 2 and outcomes.count("PB402") == 6,
      "a spend limit set by one client holds for every client at once", outcomes)
clients[1].execute("SELECT billing.set_spend_limit(%s, NULL, 'day')", (acct,))
check(all(sqlstate(c, charge, acct, None) == "ok" for c in clients[:3]),
      "a removed limit is gone for every client at once")

clients[2].execute("SELECT billing.set_billing_type(%s, 'postpaid')", (acct,))
types = set(on_all("billing.balance(%s) ->> 'billing_type'", acct))
check(types == {"postpaid"}, "a change of billing type is seen by every client", types)
clients[3].execute("SELECT billing.set_billing_type(%s, 'prepaid')", (acct,))

# a failed call returns its server connection clean: a lock timeout inside
# the fast path (the holder, direct, has every slice), a refusal, a
# read-only transaction; then every client works
def charge_in_savepoint(c, setting):
    """The charge's outcome ("ok" or its SQLSTATE) in a savepoint of a
    transaction that sets setting (SET LOCAL)"""
    with c.transaction():
        c.execute("SET LOCAL " + setting)
        try:
            with c.transaction():
                c.execute(charge, (acct, None))
            return "ok"
        except psycopg.Error as e:
            return e.sqlstate


holder = psycopg.connect(os.environ["DIRECT"])
holder.execute("SELECT FROM billing.account_slices WHERE account_id = %s FOR UPDATE", (acct,))
results = [charge_in_savepoint(c, "lock_timeout = '100ms'") for c in clients]
check(set(results) == {"55P03"}, "a charge that waits on a locked slice times out (55P03) in its savepoint", results)
# the same in autocommit: one simple query, an implicit transaction
autocommit = [sqlstate(c, "SET lock_timeout = '100ms'; SELECT billing.charge(%d, 'pb-img', '{}', '{\"images\":[{}]}')"
                       % acct) for c in clients]
holder.rollback()
check(set(autocommit) == {"55P03"}, "a charge that waits on a locked slice times out (55P03) in autocommit", autocommit)
poor = one(direct, "SELECT billing.create_account('pb-poor')")
check({sqlstate(c, charge, poor, None) for c in clients} == {"PB402"}, "a charge without funds is refused (PB402)")
results = [charge_in_savepoint(c, "transaction_read_only = on") for c in clients]
check(set(results) == {"25006"}, "a charge in a read-only transaction is refused (25006)", results)
after = [sqlstate(c, charge, acct, None) for c in clients for _ in range(3)]
check(set(after) == {"ok"}, "after the failures every client's next calls run", after)
check(one(direct, "SELECT count(*) FROM billing.verify()") == 0, "verify() is clean")
check(one(direct, "SELECT (billing.balance(%s) ->> 'held_micros')::bigint", acct) == 0, "nothing is held")
sys.exit(failed)
