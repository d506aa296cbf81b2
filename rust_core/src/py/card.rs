//! Python bindings for `crate::card`: card-number checks, `CardInfo`, `CardError`.

use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::card::{self, CardError as CoreCardError, CardInfo, YearMonth, IIN_TABLE};

pyo3::create_exception!(
    paymux._core,
    CardError,
    PyValueError,
    "A card number or expiry was refused. `code` is machine-readable (e.g. \"luhn_failed\"); \
     the message never contains card data."
);

/// Raise `CardError` with its `code` attribute set.
pub(crate) fn card_error(py: Python<'_>, e: CoreCardError) -> PyErr {
    let err = CardError::new_err(e.message());
    // Setting an attribute on a fresh exception instance cannot fail in practice; if it did, the
    // class-level default `code` would still be there.
    let _ = err.value(py).setattr(intern!(py, "code"), e.code());
    err
}

/// Borrow a card number as UTF-8. A string that cannot be encoded (lone surrogates) is refused as
/// `invalid_number` rather than surfacing a `UnicodeEncodeError` whose `.object` holds the input.
pub(crate) fn number_str<'a>(py: Python<'_>, number: &'a Bound<'_, PyString>) -> PyResult<&'a str> {
    number
        .to_str()
        .map_err(|_| card_error(py, CoreCardError::InvalidNumber))
}

/// Brand, BIN, last 4 and length of a valid card number.
#[pyclass(frozen, module = "paymux._core", name = "CardInfo")]
pub struct PyCardInfo {
    inner: CardInfo,
}

#[pymethods]
impl PyCardInfo {
    #[getter]
    fn brand(&self) -> &'static str {
        self.inner.brand.as_str()
    }

    #[getter]
    fn bin(&self) -> &str {
        self.inner.bin()
    }

    #[getter]
    fn last4(&self) -> &str {
        self.inner.last4()
    }

    #[getter]
    fn length(&self) -> u8 {
        self.inner.length
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PyCardInfo>()
            .is_ok_and(|o| o.get().inner == self.inner)
    }

    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.inner.brand.hash(&mut h);
        self.inner.bin().hash(&mut h);
        self.inner.last4().hash(&mut h);
        self.inner.length.hash(&mut h);
        h.finish()
    }

    fn __repr__(&self) -> String {
        format!(
            "CardInfo(brand='{}', last4='{}', length={})",
            self.inner.brand.as_str(),
            self.inner.last4(),
            self.inner.length
        )
    }
}

/// Luhn check; spaces and dashes are ignored, any other non-digit makes it False.
#[pyfunction]
fn luhn_valid(number: &Bound<'_, PyString>) -> bool {
    number.to_str().is_ok_and(card::luhn_valid)
}

/// Brand from the IIN (longest matching prefix), or None.
#[pyfunction]
fn card_brand(number: &Bound<'_, PyString>) -> Option<&'static str> {
    card::card_brand(number.to_str().ok()?).map(|b| b.as_str())
}

/// First 6 and last 4 digits, `*` between (`424242******4242`).
#[pyfunction]
fn mask_pan(py: Python<'_>, number: &Bound<'_, PyString>) -> PyResult<String> {
    card::mask_pan(number_str(py, number)?).map_err(|e| card_error(py, e))
}

/// The BIN: 8 digits for PANs of 16+ digits, else 6.
#[pyfunction]
fn card_bin(py: Python<'_>, number: &Bound<'_, PyString>) -> PyResult<String> {
    card::card_bin(number_str(py, number)?).map_err(|e| card_error(py, e))
}

/// Validate a card number (digits, Luhn, brand, brand length) and describe it.
#[pyfunction]
fn inspect_card(py: Python<'_>, number: &Bound<'_, PyString>) -> PyResult<PyCardInfo> {
    card::validate(number_str(py, number)?)
        .map(|inner| PyCardInfo { inner })
        .map_err(|e| card_error(py, e))
}

/// Parse the caller's "now"; a bad one is a programming error, so a plain ValueError.
pub(crate) fn now_from(now_year: i64, now_month: i64) -> PyResult<YearMonth> {
    YearMonth::new(now_year, now_month)
        .ok_or_else(|| PyValueError::new_err("now_year must be four digits and now_month 1 to 12"))
}

/// Normalize an expiry to (month, four-digit year) and refuse it if invalid or expired.
#[pyfunction]
fn check_expiry(
    py: Python<'_>,
    exp_month: i64,
    exp_year: i64,
    now_year: i64,
    now_month: i64,
) -> PyResult<(u8, u16)> {
    let now = now_from(now_year, now_month)?;
    card::check_expiry(exp_month, exp_year, now)
        .map(|e| (e.month, e.year))
        .map_err(|e| card_error(py, e))
}

/// The IIN table as (range_start, range_end, prefix_len, brand) rows.
#[pyfunction]
fn iin_table() -> Vec<(u32, u32, u8, &'static str)> {
    IIN_TABLE
        .iter()
        .map(|r| (r.start, r.end, r.prefix_len, r.brand.as_str()))
        .collect()
}

/// Valid PAN lengths of a brand.
#[pyfunction]
fn brand_lengths(brand: &str) -> PyResult<Vec<usize>> {
    card::Brand::ALL
        .iter()
        .find(|b| b.as_str() == brand)
        .map(|b| b.valid_lengths().to_vec())
        .ok_or_else(|| PyValueError::new_err("unknown brand"))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let card_error_type = py.get_type::<CardError>();
    // Class-level default so `code` exists on the type (and for stubtest); instances override it.
    card_error_type.setattr("code", "card_error")?;
    m.add("CardError", card_error_type)?;
    m.add_class::<PyCardInfo>()?;
    m.add_function(wrap_pyfunction!(luhn_valid, m)?)?;
    m.add_function(wrap_pyfunction!(card_brand, m)?)?;
    m.add_function(wrap_pyfunction!(mask_pan, m)?)?;
    m.add_function(wrap_pyfunction!(card_bin, m)?)?;
    m.add_function(wrap_pyfunction!(inspect_card, m)?)?;
    m.add_function(wrap_pyfunction!(check_expiry, m)?)?;
    m.add_function(wrap_pyfunction!(iin_table, m)?)?;
    m.add_function(wrap_pyfunction!(brand_lengths, m)?)?;
    Ok(())
}
