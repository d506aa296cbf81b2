"""Tests of the routing engine (paymux.routing) and its configuration."""
