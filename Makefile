# The two commands a newcomer needs: `make run` and `make test` (see README).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Test workers (pytest-xdist); the browser and end-to-end suites are the slow part.
TEST_WORKERS ?= auto
# Reconciliation's set-based matching has a portable path for SQLite (make
# run's default): `make test` runs these tests a second time on SQLite.
SQLITE_TESTS ?= tests/reconciliation
# `make bench`: lines per gateway (and a bill three times that size for linearity).
BENCH_LINES ?= 1000000
# `make bench`: extra arguments of bench/web.py (e.g. --rounds 5 --seconds 10, --only notify).
BENCH_WEB_ARGS ?=

.PHONY: run test lint messages clean-venv bench

# Runtime and test requirements in one venv, reinstalled when either file changes.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

var:
	mkdir -p var

# Test-only JavaScript (axe-core for the accessibility checks), pinned by
# package-lock.json, reinstalled when it changes.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --ignore-scripts
	touch $@

run: $(VENV)/.installed var
	$(PY) manage.py migrate --noinput
	$(PY) manage.py demo_setup
	$(PY) -m sandbox keys
	$(PY) scripts/run.py

test: lint var
	scripts/ensure-services.sh
	scripts/ensure-debian-packages.sh
	$(MAKE) node_modules/.installed
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)
	$(if $(PYTEST_ARGS),,DATABASE_URL=sqlite:///$(CURDIR)/var/test-sqlite.sqlite3 $(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup -m "not e2e and not browser" $(SQLITE_TESTS))

# The money paths over HTTP beside a minimal baseline (bench/web.py: the
# shop and the baseline under gunicorn, the sandbox, wrk; one table), then
# reconciliation against a million-line bill per gateway, beside a raw COPY
# + FULL OUTER JOIN of the same data (bench/reconcile.py). PostgreSQL.
# Both always run; the exit status is the worse of the two (web: 1 a goal
# missed, 2 a correctness check failed).
bench: $(VENV)/.installed
	scripts/ensure-services.sh
	scripts/ensure-debian-packages.sh wrk
	status=0; \
	$(PY) bench/web.py $(BENCH_WEB_ARGS) || status=$$?; \
	$(PY) bench/reconcile.py --lines $(BENCH_LINES) --linear 3 || { rc=$$?; [ $$rc -gt $$status ] && status=$$rc; }; \
	exit $$status

# Ruff, then mypy twice: the shop (pyproject.toml, config.settings.test) and
# the sandbox gateway, a Django project of its own (sandbox/mypy.toml).
lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m mypy --config-file sandbox/mypy.toml

# Extract marked strings into both catalogues and compile them; translate
# the new Chinese entries in locale/zh_Hans/LC_MESSAGES/django.po.
messages: $(VENV)/.installed
	$(PY) manage.py makemessages -l zh_Hans -l en --no-obsolete --ignore=.venv --ignore=tests --ignore=var --ignore=sandbox --ignore=node_modules
	$(PY) manage.py compilemessages --ignore=.venv

clean-venv:
	rm -rf $(VENV)
