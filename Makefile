# billing: PGXS build. The version is set here once.
EXTENSION   = billing
EXTVERSION  = 0.3.0

MODULE_big  = billing
OBJS = src/billing.o src/args.o src/direct.o src/tables.o src/events.o src/cache.o src/money.o src/spi_plan.o src/jsonout.o src/settings.o \
       src/pricing/pricing.o src/pricing/pricingparams.o src/pricing/pricingcomponents.o \
       src/pricing/pricingcost.o src/pricing/pricingcatalog.o src/pricing/route_cache.o \
       src/ledger/ledger.o src/ledger/accounts.o src/ledger/kinds.o src/ledger/slices.o src/ledger/gates.o src/ledger/corrections.o \
       src/ledger/limits.o src/ledger/alerts.o src/ledger/reversals.o \
       src/requests/requests.o src/requests/trigger.o \
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

REGRESS = setup money pricing accounts charges requests validation topup invoices security \
          settings settlement postpaid_switch credits refunds postpaid_refunds events \
          threshold verify limits alerts reports distribution direct cancel backup \
          price_books price_books_cancel \
          provider_costs commitments \
          topup_cap reversals \
          collections collections_cancel interplay
REGRESS_OPTS =
# Tests that need timers (statement_timeout, lock_timeout), which a server
# under libfaketime does not fire; none depends on the date. FAKETIME=1
# (test/run.sh's runs with the clock ahead) leaves them out.
REGRESS_TIMERS = cancel price_books_cancel collections_cancel
ifdef FAKETIME
REGRESS := $(filter-out $(REGRESS_TIMERS),$(REGRESS))
endif
ISOLATION = charge_race idempotency_race complete_cancel_race double_complete hold_race \
            threshold_race topup_race topup_cross close_period_race disable_in_flight \
            expire_credits_race expire_credits_twice refund_race refund_close_race \
            events_order budget_race limit_race limit_hold alert_race limit_set_race \
            restore_clock_race book_in_flight provider_cost_race \
            topup_cap_race reversal_race void_close_race credit_note_race
ISOLATION_OPTS = --inputdir=test/isolation --outputdir=test/isolation/output_iso --dbname=billing_iso
# The TAP tests run last in make installcheck, through PGXS's prove_installcheck.
# PostgreSQL::Test::Cluster starts servers of its own, so they need a user that
# PostgreSQL runs as (not root); TAP_TESTS= skips them, PROVE_TESTS=test/t/x.pl
# picks one.
TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl

# Warnings are errors in CI only: test/setup.sh builds with COPT=-Werror.
PG_CPPFLAGS = -Isrc -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
# billing.so exports only the billing_ names PostgreSQL calls (src/exports.map).
SHLIB_LINK = -Wl,--version-script=src/exports.map
EXTRA_CLEAN = billing.control test/stress test/fuzz bench/cost examples/payment_worker/payment_worker \
              test/isolation/output_iso

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

# billing on a Citus cluster of three local nodes (test/citus.sh); needs
# Citus installed for PG_CONFIG, or CITUS_SRC (a Citus source tree to build)
citus:
	PG_CONFIG=$(PG_CONFIG) bash test/citus.sh
.PHONY: citus
