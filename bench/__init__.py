"""Benchmarks, apart from the tests: each prints ratios against a baseline measured
in the same run. What they measured is in bench/RESULTS.md.
"""
