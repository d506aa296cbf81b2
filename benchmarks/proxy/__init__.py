"""Helpers for the gateway and proxy benchmarks and the load tests: processes, ports, load."""
