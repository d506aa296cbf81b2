"""Shared pytest configuration. Subsystem fixtures live in each test folder's own conftest.py."""
