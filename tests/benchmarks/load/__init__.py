"""The load test: viewer and resident sessions played by Locust.

python -m tests.benchmarks.load --help
"""
