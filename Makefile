# One command to run a node, one to run every test. See README.md.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: install run sandbox demo test test-fast lint format chromium bench-adapter bench-sync bench-jira bench-triggers bench-pingpong soak clean

$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is needed (found %d.%d); set PYTHON=python3.11" % sys.version_info[:2])'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

install: $(VENV)/.installed

## make run: one node (web + worker + beat) on $(PORT), SQLite and a file-system broker by default.
run: install
	$(PY) manage.py serve --port $(PORT)

## make sandbox: a local ServiceNow sandbox on SANDBOX_PORT (8101), seeded, login admin / admin.
SANDBOX_PORT ?= 8101
sandbox: install
	$(PY) manage.py servicenow_sandbox --port $(SANDBOX_PORT) --seed demo

## make demo: two ServiceNow sandboxes, a Jira sandbox and three linked-up-ready nodes; Ctrl-C stops all.
demo: install
	$(PY) manage.py demo

## make test: the whole suite, browser tests included (installs Debian's chromium when missing);
## the slow soak test is left out on purpose (make soak, or pytest -m slow).
test: install chromium
	$(VENV)/bin/pytest

test-fast: install
	$(VENV)/bin/pytest -m "not integration and not browser"

chromium:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then (apt-get update -qq && apt-get install -y -qq chromium >/dev/null); \
	  else echo "Browser tests need Debian's chromium: sudo apt-get install chromium"; exit 1; fi; }

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench-adapter: install
	$(PY) benchmarks/adapter_read.py

bench-sync: install
	$(PY) benchmarks/sync_throughput.py

## make bench-jira: the same figures for ServiceNow -> Jira (a ServiceNow and a Jira sandbox).
bench-jira: install
	$(PY) benchmarks/jira_throughput.py

## make bench-triggers: a trigger matching 1,000 incidents, Save -> all Synchronized, then a
## Bulk Exalate with a worker SIGKILL in the middle (benchmarks/trigger_bulk.py).
bench-triggers: install
	$(PY) benchmarks/trigger_bulk.py

## make bench-pingpong N=1000: five phases (exalate, comment back, description, round trip,
## unexalate) on SQLite and on PostgreSQL + Redis (benchmarks/ping_pong.py; BACKEND=sqlite|postgres|both).
BACKEND ?= both
bench-pingpong: install
	$(PY) benchmarks/ping_pong.py --incidents $(N) --backend $(BACKEND)

## make bench-pages: Sync queue and Entity sync status timings with 100,000 twins and
## 1,000,000 events (benchmarks/pages.py; seeds var/bench-pages.sqlite3 on its first run).
bench-pages: install
	$(PY) benchmarks/pages.py

## make soak N=1000: the soak test (benchmarks/soak.py); prints counts that must all be 0.
N ?= 1000
soak: install
	$(PY) benchmarks/soak.py --incidents $(N)

clean:
	rm -rf $(VENV) var test-artifacts .pytest_cache .ruff_cache
