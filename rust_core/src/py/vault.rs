//! Python bindings for `crate::vault`: `Vault`, `TokenizedCard`, `RevealedCard`, `VaultError`.
//!
//! Keys go from Python `bytes` straight into the AES key schedule and HMAC state without an
//! intermediate Rust copy; the caller's `bytes` objects are Python's to manage. Card numbers
//! revealed to Python become ordinary `str` objects, which Python cannot wipe: reveal at the last
//! moment, on the way out to the PSP.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyInt, PyString};

use super::card::{card_error, now_from, number_str};
use crate::card::Pan;
use crate::vault::{self, Vault, VaultError as CoreVaultError};

pyo3::create_exception!(
    paymux._core,
    VaultError,
    PyValueError,
    "A vault operation failed. `code` is machine-readable (decrypt_failed, unknown_key_version, \
     invalid_key, invalid_ciphertext, invalid_argument, random_unavailable); the message never \
     contains key material or card data."
);

/// Map a core vault error: card refusals raise `CardError`, the rest `VaultError`.
fn vault_error(py: Python<'_>, e: CoreVaultError) -> PyErr {
    if let CoreVaultError::Card(card) = e {
        return card_error(py, card);
    }
    let err = VaultError::new_err(e.message());
    let _ = err.value(py).setattr(intern!(py, "code"), e.code());
    err
}

/// The result of `Vault.tokenize`: the token, its fingerprint, the ciphertext to store, and what
/// may be known about the card outside the vault.
#[pyclass(frozen, module = "paymux._core", name = "TokenizedCard")]
pub struct PyTokenizedCard {
    #[pyo3(get)]
    token_id: String,
    #[pyo3(get)]
    fingerprint: String,
    #[pyo3(get)]
    ciphertext: Py<PyBytes>,
    #[pyo3(get)]
    key_version: u32,
    #[pyo3(get)]
    brand: &'static str,
    #[pyo3(get)]
    bin: String,
    #[pyo3(get)]
    last4: String,
    #[pyo3(get)]
    exp_month: u8,
    #[pyo3(get)]
    exp_year: u16,
}

#[pymethods]
impl PyTokenizedCard {
    fn __repr__(&self) -> String {
        format!(
            "TokenizedCard(token_id='{}', fingerprint='{}', brand='{}', last4='{}', \
             exp_month={}, exp_year={}, key_version={})",
            self.token_id,
            self.fingerprint,
            self.brand,
            self.last4,
            self.exp_month,
            self.exp_year,
            self.key_version
        )
    }
}

/// A decrypted card for the request to the PSP. The repr shows the masked number only.
#[pyclass(frozen, module = "paymux._core", name = "RevealedCard")]
pub struct PyRevealedCard {
    pan: Pan,
    #[pyo3(get)]
    exp_month: u8,
    #[pyo3(get)]
    exp_year: u16,
}

#[pymethods]
impl PyRevealedCard {
    /// The full card number.
    #[getter]
    fn number(&self) -> &str {
        self.pan.expose()
    }

    fn __repr__(&self) -> String {
        format!(
            "RevealedCard(number='{}', exp_month={}, exp_year={})",
            self.pan.masked(),
            self.exp_month,
            self.exp_year
        )
    }
}

/// A keyring of AES-256-GCM keys by version plus a fingerprint key. Immutable: to rotate, build a
/// new Vault with the new (higher) version added.
#[pyclass(frozen, module = "paymux._core", name = "Vault")]
pub struct PyVault {
    inner: Vault,
}

#[pymethods]
impl PyVault {
    #[new]
    fn new(
        py: Python<'_>,
        keys: &Bound<'_, PyDict>,
        fingerprint_key: &Bound<'_, PyBytes>,
    ) -> PyResult<Self> {
        let mut ring: Vec<(u32, Bound<'_, PyBytes>)> = Vec::with_capacity(keys.len());
        for (version, key) in keys.iter() {
            if !version.is_instance_of::<PyInt>() {
                return Err(PyTypeError::new_err("key versions must be int"));
            }
            let version: u32 = version.extract().map_err(|_| {
                vault_error(
                    py,
                    CoreVaultError::InvalidKey("key versions must be in 0..=4294967295"),
                )
            })?;
            let key = key
                .cast_into::<PyBytes>()
                .map_err(|_| PyTypeError::new_err("keys must be bytes"))?;
            ring.push((version, key));
        }
        Vault::new(
            ring.iter().map(|(v, k)| (*v, k.as_bytes())),
            fingerprint_key.as_bytes(),
        )
        .map(|inner| PyVault { inner })
        .map_err(|e| vault_error(py, e))
    }

    /// The key version new records are written with (the highest).
    #[getter]
    fn active_key_version(&self) -> u32 {
        self.inner.active_key_version()
    }

    /// All key versions in the ring, ascending.
    #[getter]
    fn key_versions(&self) -> Vec<u32> {
        self.inner.key_versions()
    }

    /// Validate, fingerprint, mint a token id and encrypt PAN + expiry, in one call.
    #[allow(clippy::too_many_arguments)]
    fn tokenize(
        &self,
        py: Python<'_>,
        tenant: &str,
        number: &Bound<'_, PyString>,
        exp_month: i64,
        exp_year: i64,
        now_year: i64,
        now_month: i64,
    ) -> PyResult<PyTokenizedCard> {
        let now = now_from(now_year, now_month)?;
        let number = number_str(py, number)?;
        let t = self
            .inner
            .tokenize(tenant, number, exp_month, exp_year, now)
            .map_err(|e| vault_error(py, e))?;
        Ok(PyTokenizedCard {
            ciphertext: PyBytes::new(py, &t.ciphertext).unbind(),
            key_version: t.key_version,
            brand: t.info.brand.as_str(),
            bin: t.info.bin().to_owned(),
            last4: t.info.last4().to_owned(),
            exp_month: t.expiry.month,
            exp_year: t.expiry.year,
            token_id: t.token_id,
            fingerprint: t.fingerprint,
        })
    }

    /// Tenant-scoped keyed fingerprint of a card number: `fp_` + 64 hex digits.
    fn fingerprint(
        &self,
        py: Python<'_>,
        tenant: &str,
        number: &Bound<'_, PyString>,
    ) -> PyResult<String> {
        self.inner
            .fingerprint(tenant, number_str(py, number)?)
            .map_err(|e| vault_error(py, e))
    }

    /// Encrypt arbitrary bytes for (tenant, token_id) under the active key.
    fn encrypt<'py>(
        &self,
        py: Python<'py>,
        tenant: &str,
        token_id: &str,
        plaintext: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
        let ct = self
            .inner
            .encrypt(tenant, token_id, plaintext)
            .map_err(|e| vault_error(py, e))?;
        Ok(PyBytes::new(py, &ct))
    }

    /// Decrypt bytes written by `encrypt` for the same (tenant, token_id).
    fn decrypt<'py>(
        &self,
        py: Python<'py>,
        tenant: &str,
        token_id: &str,
        ciphertext: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
        let pt = self
            .inner
            .decrypt(tenant, token_id, ciphertext)
            .map_err(|e| vault_error(py, e))?;
        Ok(PyBytes::new(py, &pt))
    }

    /// Decrypt a card record written by `tokenize`.
    fn reveal(
        &self,
        py: Python<'_>,
        tenant: &str,
        token_id: &str,
        ciphertext: &[u8],
    ) -> PyResult<PyRevealedCard> {
        let r = self
            .inner
            .reveal(tenant, token_id, ciphertext)
            .map_err(|e| vault_error(py, e))?;
        Ok(PyRevealedCard {
            exp_month: r.expiry.month,
            exp_year: r.expiry.year,
            pan: r.pan,
        })
    }

    /// Authenticate a record and write it again under the active key.
    fn reencrypt<'py>(
        &self,
        py: Python<'py>,
        tenant: &str,
        token_id: &str,
        ciphertext: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
        let ct = self
            .inner
            .reencrypt(tenant, token_id, ciphertext)
            .map_err(|e| vault_error(py, e))?;
        Ok(PyBytes::new(py, &ct))
    }

    /// The key version a ciphertext was written with, read from its header.
    #[staticmethod]
    fn key_version_of(py: Python<'_>, ciphertext: &[u8]) -> PyResult<u32> {
        vault::key_version_of(ciphertext).map_err(|e| vault_error(py, e))
    }

    fn __repr__(&self) -> String {
        format!(
            "Vault(key_versions={:?}, active={})",
            self.inner.key_versions(),
            self.inner.active_key_version()
        )
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let vault_error_type = py.get_type::<VaultError>();
    vault_error_type.setattr("code", "vault_error")?;
    m.add("VaultError", vault_error_type)?;
    m.add_class::<PyVault>()?;
    m.add_class::<PyTokenizedCard>()?;
    m.add_class::<PyRevealedCard>()?;
    Ok(())
}
