"""Type stubs for paymux._core, the Rust hot path. Checked against the binary by mypy.stubtest."""

__version__: str

# --- card data (rust_core/src/card.rs) ---

# --- vault crypto (rust_core/src/vault.rs) ---

# --- routing rules (rust_core/src/rules.rs) ---

# --- health windows and circuit breakers (rust_core/src/health.rs) ---

# --- selection (rust_core/src/selection.rs) ---
