//! PyO3 glue: the only place that knows about Python. One submodule per core concept, each with a
//! `register` function that adds its classes, functions and exceptions to `paymux._core`.

use pyo3::prelude::*;

mod card;
mod health;
mod rules;
mod selection;
mod strict_json;
mod vault;

#[pymodule]
#[pyo3(name = "_core")]
fn core_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    card::register(m)?;
    vault::register(m)?;
    rules::register(m)?;
    health::register(m)?;
    selection::register(m)?;
    strict_json::register(m)?;
    Ok(())
}
