# reqstats -- build, test, lint and run.
#
#   make               release build: build/reqstats
#   make test          unit + integration tests (installs missing packages)
#   make test-asan     the same suite against an ASan+UBSan build
#   make lint          cppcheck, clang-tidy, banned functions
#   make format-check  clang-format must have nothing to change
#   make run           redis-server + app + nginx in the foreground
#                      (with REDIS_CLUSTER=host:port,...: no Redis, the app on that cluster)
#   make run-cluster   the same on a local Redis Cluster: 6 redis-server (3 masters,
#                      3 replicas) on REDIS_PORT..REDIS_PORT+5, state in RUN_DIR/cluster
#   make bench         the benchmark (never part of make test)
#   make soak          60 s saturation: worker memory and fds stay flat
#   make fuzz          the canonical-path fuzzer for FUZZ_SECONDS
#   make test-e2e      docker-compose end to end, standalone and cluster (needs Docker)
#   make dist          dist/reqstats-<version>.zip of the committed tree
#   make version       print the version
#
# Interface variables of `make run`: HTTP_PORT, REDIS_PORT, RUN_DIR.
#
# The version is written once, in app/version.h; `reqstats --version`
# prints it and `make dist` names the archive after it.

CC      ?= cc
BUILD   ?= build
PYTHON  ?= python3

HTTP_PORT  ?= 5000
REDIS_PORT ?= 6379
RUN_DIR    ?= ./run
FUZZ_SECONDS ?= 60

VERSION := $(shell sed -n 's/^\#define REQSTATS_VERSION "\([^"]*\)"$$/\1/p' app/version.h)

WARN := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wformat=2 -Wvla -Wpointer-arith -Wundef -Wcast-align -Wwrite-strings \
        -Wmissing-declarations -Wold-style-definition -Wnull-dereference -Werror
HARDEN := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fstack-clash-protection -fPIE
HARDEN_LD := -pie -Wl,-z,relro,-z,now -Wl,-z,noexecstack

BASE_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -MMD -MP
RELEASE_CFLAGS := -O2 -g $(HARDEN)
ASAN_CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
               -fno-sanitize-recover=undefined
LIBS := -lfcgi -lhiredis -ljansson -lcurl

APP_SRCS := $(wildcard app/*.c)
APP_LIB_SRCS := $(filter-out app/main.c,$(APP_SRCS))

# Pure modules and their unit tests: tests/unit/test_<module>.c.
UNIT_TESTS := $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))

# ---- builds ------------------------------------------------------------

# $(call objs,DIR,SOURCES)
objs = $(patsubst app/%.c,$(1)/obj/%.o,$(2))

REL_OBJS := $(call objs,$(BUILD),$(APP_SRCS))
ASAN_OBJS := $(call objs,$(BUILD)/asan,$(APP_SRCS))

.PHONY: all asan unit test test-unit test-integration test-asan lint format format-check \
        run run-cluster deps bench soak fuzz test-e2e dist version clean

all: $(BUILD)/reqstats

asan: $(BUILD)/asan/reqstats

$(BUILD)/obj/%.o: app/%.c
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(RELEASE_CFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/asan/obj/%.o: app/%.c
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(ASAN_CFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/reqstats: $(REL_OBJS)
	$(CC) $(RELEASE_CFLAGS) $(HARDEN_LD) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/asan/reqstats: $(ASAN_OBJS)
	$(CC) $(ASAN_CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)

# Unit tests link the module objects they test (all but main.o) + cmocka.
$(BUILD)/tests/obj/%.o: tests/unit/%.c
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(ASAN_CFLAGS) -Iapp -Wno-missing-prototypes \
	    -Wno-missing-declarations -c -o $@ $<

$(BUILD)/tests/test_%: $(BUILD)/tests/obj/test_%.o $(call objs,$(BUILD)/asan,$(APP_LIB_SRCS))
	$(CC) $(ASAN_CFLAGS) -o $@ $^ $(LIBS) -lcmocka

unit: $(addprefix $(BUILD)/tests/,$(UNIT_TESTS))

-include $(REL_OBJS:.o=.d) $(ASAN_OBJS:.o=.d) $(wildcard $(BUILD)/tests/obj/*.d)

# ---- tests ---------------------------------------------------------------

# `make test` is the command CI runs: unit tests (built with sanitizers)
# and the integration suite against the release binary. The last line of
# its output is "N passed, N failed".
test: deps all unit
	@$(PYTHON) tests/run --bin $(BUILD)/reqstats --unit-dir $(BUILD)/tests

test-unit: deps unit
	@$(PYTHON) tests/run --unit-only --unit-dir $(BUILD)/tests

test-integration: deps all
	@$(PYTHON) tests/run --integration-only --bin $(BUILD)/reqstats

# The same suite against the ASan+UBSan build of the app.
test-asan: deps asan unit
	@$(PYTHON) tests/run --bin $(BUILD)/asan/reqstats --unit-dir $(BUILD)/tests

# ---- quality -------------------------------------------------------------

# Functions the code must not use: unbounded copies, unchecked parsing.
BANNED := sprintf|vsprintf|strcpy|strcat|gets|atoi|atol|atoll|sscanf|strtok|strncpy

lint:
	@command -v cppcheck >/dev/null && command -v clang-tidy >/dev/null || \
	    { echo "lint needs cppcheck and clang-tidy (apt-get install cppcheck clang-tidy)"; exit 1; }
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	    --std=c11 -D_GNU_SOURCE --suppress=missingIncludeSystem --inline-suppr app/
	clang-tidy --quiet $(APP_SRCS) -- -std=c11 -D_GNU_SOURCE -Iapp
	@if grep -nE '\b($(BANNED))\s*\(' app/*.c app/*.h tests/unit/*.c tests/fuzz/*.c tests/integration/*.c; then \
	    echo "lint: banned function used (see above)"; exit 1; fi
	@echo "lint: ok"

format:
	clang-format -i app/*.c app/*.h tests/unit/*.c tests/fuzz/*.c tests/integration/*.c

format-check:
	@clang-format --dry-run --Werror app/*.c app/*.h tests/unit/*.c tests/fuzz/*.c tests/integration/*.c && \
	    echo "format-check: ok"

# ---- running ---------------------------------------------------------------

run: deps all
	@HTTP_PORT=$(HTTP_PORT) REDIS_PORT=$(REDIS_PORT) RUN_DIR=$(RUN_DIR) \
	    exec $(PYTHON) tests/stack.py --bin $(BUILD)/reqstats

run-cluster: deps all
	@HTTP_PORT=$(HTTP_PORT) REDIS_PORT=$(REDIS_PORT) RUN_DIR=$(RUN_DIR) \
	    exec $(PYTHON) tests/stack.py --cluster --bin $(BUILD)/reqstats

# Debian 12 packages the build, the tests and `make run` need. Installed
# with apt-get when missing (root), otherwise listed. chromium and
# chromium-driver: the dashboard's browser test.
DEPS_PKGS := gcc make pkg-config libfcgi-dev libhiredis-dev libjansson-dev \
             libcurl4-openssl-dev libcmocka-dev nginx redis-server redis-tools python3 curl \
             prometheus chromium chromium-driver

deps:
	@missing=$$(for p in $(DEPS_PKGS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || \
	    echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" != 0 ]; then \
	        echo "missing packages: $$missing (run: sudo make deps)"; exit 1; fi; \
	    echo "installing: $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	        apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

bench: deps all
	@$(PYTHON) bench/run --bin $(BUILD)/reqstats

# 60 s of saturation load: worker RSS and fds must stay flat.
soak: deps all
	@$(PYTHON) bench/soak --bin $(BUILD)/reqstats

fuzz:
	@tests/fuzz/run $(FUZZ_SECONDS)

# Both compose files: the standalone stack, then the cluster override.
test-e2e:
	@rc=0; tests/e2e/run || rc=1; tests/e2e/cluster || rc=1; exit $$rc

# The source archive: HEAD as `git archive` exports it (paths marked
# export-ignore in .gitattributes left out), under one top folder
# reqstats-<version>/. Uncommitted changes are not in it.
dist:
	@test -n "$(VERSION)" || { echo "dist: no version in app/version.h"; exit 1; }
	@git diff --quiet HEAD -- || echo "dist: note: uncommitted changes are not in the archive"
	@mkdir -p dist
	git archive --format=zip --prefix=reqstats-$(VERSION)/ -o dist/reqstats-$(VERSION).zip HEAD
	@echo "dist: dist/reqstats-$(VERSION).zip"

version:
	@echo "$(VERSION)"

clean:
	rm -rf $(BUILD)
