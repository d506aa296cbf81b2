//! paymux_core: the per-payment hot path of the paymux gateway.
//!
//! Every algorithm lives in a plain Rust module that `cargo test` exercises without Python;
//! the PyO3 bindings are confined to the `py` module and compiled only with the `python` feature.

pub mod card;
pub mod health;
pub mod rules;
pub mod selection;
pub mod strict_json;
pub mod vault;

#[cfg(feature = "python")]
mod py;
