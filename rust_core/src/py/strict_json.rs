//! Python binding for `crate::strict_json`: one call per request body, bytes in, None or a pair out.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::strict_json::{self, Issue};

/// `None` when `body` is valid UTF-8 and no JSON object in it repeats a key; else `(code, detail)`
/// with code `invalid_utf8`, `duplicate_key` (detail: the key's dotted path), `too_deep` or
/// `invalid_json` (the caller's decoder then says what is wrong). The GIL is released while it
/// scans.
#[pyfunction]
fn json_issue(py: Python<'_>, body: &Bound<'_, PyBytes>) -> Option<(&'static str, Option<String>)> {
    let bytes = body.as_bytes();
    let result = if bytes.len() > 16 * 1024 {
        py.detach(|| strict_json::check(bytes))
    } else {
        strict_json::check(bytes)
    };
    match result {
        Ok(()) => None,
        Err(Issue::DuplicateKey(path)) => Some(("duplicate_key", Some(path))),
        Err(issue) => Some((issue.code(), None)),
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(json_issue, m)?)?;
    Ok(())
}
