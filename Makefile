# billing: PGXS build. The version is set here once.
EXTENSION   = billing
EXTVERSION  = 0.3.0

MODULE_big  = billing
OBJS = src/billing.o src/args.o src/direct.o src/tables.o src/events.o src/cache.o src/money.o src/spi_plan.o src/jsonout.o src/settings.o \
       src/pricing/pricing.o src/pricing/pricingparams.o src/pricing/pricingcomponents.o \
       src/pricing/pricingcost.o src/pricing/pricingcatalog.o src/pricing/route_cache.o \
       src/ledger/ledger.o src/ledger/accounts.o src/ledger/kinds.o src/ledger/slices.o src/ledger/gates.o src/ledger/corrections.o \
       src/ledger/limits.o src/ledger/alerts.o src/ledger/reversals.o \
       src/requests/requests.o src/requests/finish.o src/requests/trigger.o \
       src/topup/topup.o src/topup/cap.o src/invoice/invoice.o src/invoice/details.o

# The install script is assembled from one SQL file per concern, in this
# order: the tables (src/schema.sql, install only: the tables of 0.1.0 as
# they are now; src/schema/VERSION.sql, the tables each later release added)
# and then the re-runnable parts (CREATE OR REPLACE, guarded roles, grants).
SQL_OBJECTS = src/triggers.sql src/events.sql src/ledger/ledger.sql src/pricing/pricing.sql src/pricing/books.sql \
              src/requests/requests.sql src/topup/topup.sql \
              src/invoice/invoice.sql src/invoice/collections.sql src/ledger/credits.sql src/ledger/limits.sql \
              src/reports/reports.sql src/citus.sql src/ledger/reversals.sql \
              src/ledger/verify.sql src/security.sql src/backup.sql
SCHEMA_0.2.0 = src/schema/0.2.0.sql
SCHEMA_0.3.0 = src/schema/0.3.0.sql
SQL_PARTS = src/schema.sql $(SCHEMA_0.2.0) $(SCHEMA_0.3.0) $(SQL_OBJECTS)
# The update from each earlier release is assembled the same way: for every
# release since it, in order, its hand-written, idempotent changes to the
# tables there were (src/upgrade/FROM--TO.sql) and the tables it added (the
# install's src/schema/TO.sql), then every re-runnable part again,
# which brings each function body, view, trigger and grant (and each C
# function's symbol) to this release's, and last the data changes that need
# those (src/upgrade/FROM--TO.after.sql).
UPGRADE_0.2.0 = src/upgrade/0.2.0--0.3.0.sql $(SCHEMA_0.3.0) $(SQL_OBJECTS)
UPGRADE_0.1.0 = src/upgrade/0.1.0--0.2.0.sql $(SCHEMA_0.2.0) src/upgrade/0.2.0--0.3.0.sql $(SCHEMA_0.3.0) \
                $(SQL_OBJECTS) src/upgrade/0.1.0--0.2.0.after.sql
UPGRADES = billing--0.2.0--$(EXTVERSION).sql billing--0.1.0--$(EXTVERSION).sql
DATA_built = billing--$(EXTVERSION).sql $(UPGRADES)

# The suites are every file of their directory. Each regress test needs
# only setup (the extension and the helpers of schema regress), which runs
# first; the rest run in the order of their names and none depends on
# another's rows.
REGRESS = setup $(filter-out setup,$(notdir $(basename $(wildcard test/sql/*.sql))))
REGRESS_OPTS = --inputdir=test --outputdir=test
# Tests that need timers (statement_timeout, lock_timeout), which a server
# under libfaketime does not fire; none depends on the date. FAKETIME=1
# (test/run.sh's runs with the clock ahead) leaves them out.
REGRESS_TIMERS = cancel price_books_cancel collections_cancel
ifdef FAKETIME
REGRESS := $(filter-out $(REGRESS_TIMERS),$(REGRESS))
endif
ISOLATION = $(notdir $(basename $(wildcard test/isolation/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test/isolation --outputdir=test/isolation/output_iso --dbname=billing_iso
# The TAP tests (make check-tap, and last in make installcheck) run through
# PGXS's prove_installcheck. PostgreSQL::Test::Cluster starts servers of its
# own, so they need a user that PostgreSQL runs as (not root); TAP_TESTS=
# leaves them out of installcheck, PROVE_TESTS=test/t/x.pl picks one.
TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl

# Warnings are errors in CI only: test/setup.sh builds with COPT=-Werror.
PG_CPPFLAGS = -Isrc -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
# billing.so exports only the billing_ names PostgreSQL calls (src/exports.map).
SHLIB_LINK = -Wl,--version-script=src/exports.map
EXTRA_CLEAN = billing.control test/stress test/fuzz bench/cost examples/payment_worker/payment_worker \
              test/results test/regression.diffs test/regression.out test/isolation/output_iso

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS tracks no header dependencies: every object depends on every header.
# (After the include, so that "all" stays the default goal.)
$(OBJS): $(wildcard src/*.h src/*/*.h)
$(shlib): src/exports.map

billing--$(EXTVERSION).sql: $(SQL_PARTS)
	cat $^ > $@
billing--0.2.0--$(EXTVERSION).sql: $(UPGRADE_0.2.0)
	cat $^ > $@
billing--0.1.0--$(EXTVERSION).sql: $(UPGRADE_0.1.0)
	cat $^ > $@
# PGXS builds the control file for "all"; its default_version is EXTVERSION.
billing.control: billing.control.in Makefile
	sed 's/@EXTVERSION@/$(EXTVERSION)/' $< > $@

# libpq programs (make programs; a plain make builds the extension only):
# stress test, fuzzer, the benchmark's cost probe, example payment worker.
LIBPQ_CFLAGS = -O2 -Wall -Wextra $(COPT) -I$(shell $(PG_CONFIG) --includedir)
LIBPQ_LIBS = -L$(shell $(PG_CONFIG) --libdir) -lpq
test/stress: test/stress.c test/pqtool.h
	$(CC) $(LIBPQ_CFLAGS) -o $@ $< $(LIBPQ_LIBS) -lpthread
test/fuzz: test/fuzz.c test/pqtool.h
	$(CC) $(LIBPQ_CFLAGS) -o $@ $< $(LIBPQ_LIBS)
bench/cost: bench/cost.c test/pqtool.h
	$(CC) $(LIBPQ_CFLAGS) -o $@ $< $(LIBPQ_LIBS)
examples/payment_worker/payment_worker: examples/payment_worker/payment_worker.c
	$(CC) $(LIBPQ_CFLAGS) -o $@ $< $(LIBPQ_LIBS)

PROGRAMS = test/stress test/fuzz bench/cost examples/payment_worker/payment_worker
programs: $(PROGRAMS)
.PHONY: programs bench bench-majors

bench: bench/cost
	bash bench/run.sh
# make bench on 15 here and on 17 and 18 in their chroots (bench/majors.sh)
bench-majors: bench/cost
	PG_CONFIG=$(PG_CONFIG) bash bench/majors.sh

# One target per test suite (docs/testing.md), each against the build
# installed for PG_CONFIG; test/run.sh runs them all. check-regress,
# check-isolation, check-stress and check-fuzz use the server of
# PGHOST/PGPORT; check-tap starts servers of its own (as a user PostgreSQL
# runs as), and so do the others, on the ports and in the directories their
# scripts' headers name.
CHECKS = check-regress check-isolation check-tap check-stress check-fuzz check-sanitize \
         check-upgrade check-dump check-pgbouncer check-gateway check-citus
.PHONY: $(CHECKS)
check-regress:
	$(pg_regress_installcheck) $(REGRESS_OPTS) $(REGRESS) || { head -c 20000 test/regression.diffs; exit 1; }
check-isolation:
	$(pg_isolation_regress_installcheck) $(ISOLATION_OPTS) $(ISOLATION) || \
		{ head -c 20000 test/isolation/output_iso/regression.diffs; exit 1; }
check-tap:
	$(prove_installcheck)
check-stress: test/stress
	timeout 300 test/stress
check-fuzz: test/fuzz
	timeout 600 test/fuzz
# ASan, UBSan and billing's Asserts over check-regress and check-isolation
check-sanitize:
	PG_CONFIG=$(PG_CONFIG) bash test/sanitize.sh
# from 0.2.0 (UPGRADE_FROM=0.1.0: from 0.1.0) to this release
check-upgrade:
	PG_CONFIG=$(PG_CONFIG) bash test/upgrade.sh
check-dump: test/stress
	PG_CONFIG=$(PG_CONFIG) timeout 900 bash test/dump.sh
check-pgbouncer:
	PG_CONFIG=$(PG_CONFIG) timeout 900 bash test/pgbouncer.sh
# the reference gateway (examples/gateway/) over HTTP
check-gateway:
	PG_CONFIG=$(PG_CONFIG) bash test/gateway.sh
# billing on a Citus cluster of three local nodes; needs Citus installed for
# PG_CONFIG, or CITUS_SRC (a Citus source tree to build); exits 77 without
check-citus:
	PG_CONFIG=$(PG_CONFIG) bash test/citus.sh
