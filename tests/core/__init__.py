"""Tests of the Rust core (paymux._core) through its Python bindings."""
