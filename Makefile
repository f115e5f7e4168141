# trioproxy: two commands on a fresh machine (Python 3.11+, npm).
#   make demo   set up and run trioproxy (auth off) in front of a demo app
#   make test   install everything the tests need and run the whole suite

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
DEMO_PORT ?= 8888
DEMO_PREFIX ?= /user/demo/
# The real-JupyterHub tests (tests/hub.py): JupyterHub 6 lives in $(VENV) (the `test` extra),
# 4.1 and 5.x each in a venv of its own, configurable-http-proxy 5 under .node, Debian's chromium.
HUBS   ?= .hubs
NODE   ?= .node
HUB4_SPEC ?= jupyterhub>=4.1,<4.2
HUB5_SPEC ?= jupyterhub>=5.4,<6
CHP_SPEC  ?= configurable-http-proxy@5
# Recipe apps that cannot share $(VENV) (tests/test_recipes.py): MLflow in a venv of its own
# (in $(VENV) it would downgrade pyarrow, python-dateutil and importlib-metadata), and Solara's
# front end, which Solara fetches from a CDN at run time, unpacked from npm.
APPS_DIR    ?= .apps
MLFLOW_SPEC ?= mlflow>=3.17,<4

.PHONY: demo test lint venv install install-test unit fuzz soak screenshots clean

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	touch $@

venv: $(VENV)/.created

$(VENV)/.installed: $(VENV)/.created pyproject.toml
	$(PIP) install -q -e .
	touch $@

install: $(VENV)/.installed

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PIP) install -q -e '.[test,apps]'
	touch $@

# One venv per older JupyterHub major version (tests/hub.py finds $(HUBS)/N/bin/jupyterhub).
$(HUBS)/4/.installed:
	rm -rf $(HUBS)/4 && $(PYTHON) -m venv $(HUBS)/4
	$(HUBS)/4/bin/python -m pip install -q --disable-pip-version-check '$(HUB4_SPEC)'
	touch $@

$(HUBS)/5/.installed:
	rm -rf $(HUBS)/5 && $(PYTHON) -m venv $(HUBS)/5
	$(HUBS)/5/bin/python -m pip install -q --disable-pip-version-check '$(HUB5_SPEC)'
	touch $@

$(NODE)/.installed:
	npm install --silent --no-audit --no-fund --prefix $(NODE) $(CHP_SPEC)
	touch $@

$(APPS_DIR)/mlflow/.installed:
	rm -rf $(APPS_DIR)/mlflow && $(PYTHON) -m venv $(APPS_DIR)/mlflow
	$(APPS_DIR)/mlflow/bin/python -m pip install -q --disable-pip-version-check '$(MLFLOW_SPEC)'
	touch $@

$(APPS_DIR)/solara-cdn/.installed: $(VENV)/.installed-test
	$(PY) tests/apps/real/solara_cdn.py $(APPS_DIR)/solara-cdn
	touch $@

# Headless browser for tests/browser.py: Debian's chromium, when root with apt-get (else those
# tests skip). No stamp unless it is there, so a later `make test` as root still installs it.
$(HUBS)/.chromium:
	@mkdir -p $(HUBS)
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation; \
	fi
	@if [ -x /usr/bin/chromium ]; then touch $@; else echo "no /usr/bin/chromium: the browser tests will be skipped"; fi

install-test: $(VENV)/.installed-test $(HUBS)/4/.installed $(HUBS)/5/.installed $(NODE)/.installed $(HUBS)/.chromium \
	$(APPS_DIR)/mlflow/.installed $(APPS_DIR)/solara-cdn/.installed

demo: install
	@echo
	@echo "  trioproxy demo: open http://127.0.0.1:$(DEMO_PORT)$(DEMO_PREFIX)   (Ctrl-C to stop)"
	@echo
	JUPYTERHUB_SERVICE_PREFIX=$(DEMO_PREFIX) $(VENV)/bin/trioproxy --authtype none --ip 127.0.0.1 --port $(DEMO_PORT) \
		-- $(PY) -m trioproxy.demo --port {port}

# The test files run on TEST_WORKERS processes (pytest-xdist, one file per worker at a time, so
# a file's shared fixtures stay shared): most tests wait on real processes, not on the CPU.
TEST_WORKERS ?= 2

test: install-test lint
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

# Types (mypy --strict, as configured in pyproject.toml) and lint (ruff): part of make test.
lint: install-test
	$(PY) -m ruff check
	$(PY) -m mypy

unit: install-test
	$(PY) -m pytest tests/test_settings.py tests/test_template.py tests/test_routing.py tests/test_headers.py tests/test_applog.py tests/test_cookies.py tests/test_rewrite.py tests/test_hub_cookies.py tests/test_scopes.py tests/test_layout.py tests/test_frames.py tests/test_compat.py tests/test_procfs.py

# The tests of known gaps, excluded from make test (README: Known gaps)
gaps: install-test
	$(PY) -m pytest -q -m gap || test $$? -eq 5  # 5: none left

# The README's pictures of trioproxy's pages (tests/screenshots/*.png), made by the suite's
# Chromium through the real JupyterHub 6 (tests/test_screenshots.py; the suite runs the same
# test with the pictures in a temporary directory).
screenshots: install-test
	TRIOPROXY_SCREENSHOTS=tests/screenshots $(PY) -m pytest -q tests/test_screenshots.py

# The long fuzz run (the suite runs a short one)
fuzz: install-test
	FUZZ_EXAMPLES=20000 $(PY) -m pytest -q tests/test_fuzz.py tests/test_rewrite.py tests/test_frames.py

# The long soak (the suite runs a quick one): 1,000 websockets, 100 streams, 3 minutes, then SIGTERM
soak: install-test
	SOAK_SECONDS=180 $(PY) -m pytest -q -s tests/test_soak.py

# Benchmarks (issue 4): make bench, make bench-quick
-include benchmarks/bench.mk

# The dependency bounds, tested (issue 11): the suite with trioproxy installed under the oldest
# (.ci/constraints-oldest.txt) or the newest (.ci/constraints-newest.txt) allowed releases, each in
# a venv of its own (.venv-oldest, .venv-newest; the Hubs, CHP and chromium are shared).
# BOUNDS_TESTS picks test files (default: the whole suite), e.g.
#   make test-oldest BOUNDS_TESTS="tests/test_compat.py tests/test_ws_proxy.py"
BOUNDS_TESTS ?=
.PHONY: test-oldest test-newest
.venv-%/.installed: pyproject.toml .ci/constraints-%.txt
	rm -rf .venv-$* && $(PYTHON) -m venv .venv-$*
	.venv-$*/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
	.venv-$*/bin/python -m pip install -q --disable-pip-version-check -c .ci/constraints-$*.txt -e '.[test]'
	touch $@

test-oldest test-newest: test-%: .venv-%/.installed $(HUBS)/4/.installed $(HUBS)/5/.installed $(NODE)/.installed $(HUBS)/.chromium
	.venv-$*/bin/python -m pytest $(BOUNDS_TESTS)

clean:
	rm -rf $(VENV) .venv-oldest .venv-newest $(HUBS) $(NODE) $(APPS_DIR) .pytest_cache build *.egg-info
