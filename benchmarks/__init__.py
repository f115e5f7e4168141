"""The benchmark harness of trioproxy (issue 4): ``python -m benchmarks.harness --help``.

Never imported by trioproxy; the test suite only runs it as a subprocess (smoke test).
"""
