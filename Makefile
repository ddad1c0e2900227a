# pg_pipeline: PGXS build
EXTENSION    = pg_pipeline
MODULE_big   = pg_pipeline
OBJS         = $(patsubst %.c,%.o,$(sort $(wildcard src/*/*.c)))
DATA         = $(wildcard sql/pg_pipeline--*.sql)
PGFILEDESC   = "pg_pipeline - data pipelines inside PostgreSQL"
# the static docs site command (docs/site.md), installed into bindir
SCRIPTS      = scripts/pg_pipeline_site

# make installcheck runs, against a running server with the extension
# installed: the pg_regress suites (sql/, expected/), the isolation specs
# (test/isolation/) and the Perl TAP tests (test/t/, which start servers of
# their own; not as root). scripts/test.sh runs these and the pgTAP, layer
# and OpenLineage suites, each on a throwaway server.
REGRESS        = $(basename $(notdir $(filter-out $(DATA),$(wildcard sql/*.sql))))
REGRESS_OPTS   = --load-extension=pg_pipeline
ISOLATION      = $(basename $(notdir $(wildcard test/isolation/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test/isolation --load-extension=pg_pipeline
TAP_TESTS      = 1
PROVE_TESTS    = test/t/*.pl

PG_CPPFLAGS  = -I$(srcdir)/src/include -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare
# Export only what PostgreSQL looks up (SQL functions, the magic block,
# _PG_init, worker entry points), so that no other library loaded into the
# server can interpose on our internal functions, nor we on theirs.
PG_CPPFLAGS += -D'PGDLLEXPORT=__attribute__((visibility("default")))'
PG_CFLAGS    = -fvisibility=hidden
# the OpenLineage sender posts events with libcurl (libcurl4-openssl-dev)
SHLIB_LINK  += -lcurl
PIPELINE_VERSION := $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(dir $(firstword $(MAKEFILE_LIST)))pg_pipeline.control)
PG_CPPFLAGS += -DPIPELINE_VERSION='"$(PIPELINE_VERSION)"'
PG_CONFIG   ?= pg_config
PGXS        := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
