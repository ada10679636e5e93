"""asyncflow's benchmark suite: every scenario beside a plain-asyncio baseline.

Run it with ``python -m benchmarks`` (``--quick`` for a short run); see ``README.md`` here for
what each scenario measures. The suite is not part of the package and not part of the test run
(``tests/test_benchmarks.py`` only checks that the runner works on tiny sizes).
"""
