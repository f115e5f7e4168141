# trioproxy: two commands on a fresh machine (Python 3.11+, npm).
#   make demo   set up and run trioproxy (auth off) in front of a demo app
#   make test   install everything the tests need and run the whole suite

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
DEMO_PORT ?= 8888
DEMO_PREFIX ?= /user/demo/

.PHONY: demo test venv install install-test unit clean

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

install-test: $(VENV)/.installed-test

demo: install
	@echo
	@echo "  trioproxy demo: open http://127.0.0.1:$(DEMO_PORT)$(DEMO_PREFIX)   (Ctrl-C to stop)"
	@echo
	JUPYTERHUB_SERVICE_PREFIX=$(DEMO_PREFIX) $(VENV)/bin/trioproxy --authtype none --ip 127.0.0.1 --port $(DEMO_PORT) \
		-- $(PY) -m trioproxy.demo --port {port}

test: install-test
	$(PY) -m pytest

unit: install-test
	$(PY) -m pytest tests/test_settings.py tests/test_template.py tests/test_routing.py tests/test_headers.py tests/test_applog.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
