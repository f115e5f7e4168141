# Benchmarks (issue 4), included from the Makefile (uses its PYTHON, PY and install target).
#   make bench          the full run: 3 repetitions, writes benchmarks/RESULTS.md (about 6 minutes)
#   make bench-quick    1 short repetition, same scenarios, RESULTS.md labelled QUICK (about 1 minute)
#   make bench-install  what both need: nginx, wrk, curl (Debian, as root) and jhsingle-native-proxy
# Extra harness options: make bench BENCH_ARGS="--reps 5 --columns direct,trioproxy"

BENCH_WORK    := benchmarks/.work
JHSINGLE_VENV := $(BENCH_WORK)/venv-jhsingle
BENCH_ARGS    ?=

.PHONY: bench bench-quick bench-install bench-tools

# jhsingle-native-proxy 0.8.3 in a venv of its own, with tornado < 6.6: from 6.6 on, its websocket
# origin check refuses every browser websocket.
$(JHSINGLE_VENV)/.installed:
	rm -rf $(JHSINGLE_VENV)
	$(PYTHON) -m venv $(JHSINGLE_VENV)
	$(JHSINGLE_VENV)/bin/python -m pip install -q --disable-pip-version-check \
		'jhsingle-native-proxy==0.8.3' 'tornado<6.6'
	touch $@

bench-tools:
	sh benchmarks/install-tools.sh

bench-install: install bench-tools $(JHSINGLE_VENV)/.installed

bench: bench-install
	$(PY) -m benchmarks.harness --profile full $(BENCH_ARGS)

bench-quick: bench-install
	$(PY) -m benchmarks.harness --profile quick $(BENCH_ARGS)
