//! Python bindings for `crate::selection`: `Selector`, `Ranking` and `Estimate`.

use std::sync::Mutex;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};

use super::health::HealthBook;
use crate::selection::{self as core, Rng, SelectorConfig};

/// Orders candidate connectors by expected value from the health windows of a `HealthBook`.
#[pyclass(frozen, module = "paymux._core")]
pub struct Selector {
    health: Py<HealthBook>,
    cfg: SelectorConfig,
    rng: Mutex<Rng>,
}

/// How one candidate was judged.
#[pyclass(frozen, module = "paymux._core")]
pub struct Estimate {
    #[pyo3(get)]
    connector: Py<PyString>,
    #[pyo3(get)]
    approval: f64,
    #[pyo3(get)]
    fee: i64,
    #[pyo3(get)]
    expected_value: f64,
    #[pyo3(get)]
    samples: u64,
    #[pyo3(get)]
    segment: Option<Py<PyString>>,
    #[pyo3(get)]
    breaker: &'static str,
    #[pyo3(get)]
    explored: bool,
    #[pyo3(get)]
    probe: bool,
}

#[pymethods]
impl Estimate {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Estimate(connector={:?}, approval={:.4}, fee={}, expected_value={:.2}, samples={}, \
             segment={}, breaker={:?}, explored={}, probe={})",
            self.connector.bind(py).to_string(),
            self.approval,
            self.fee,
            self.expected_value,
            self.samples,
            self.segment
                .as_ref()
                .map(|s| format!("{:?}", s.bind(py).to_string()))
                .unwrap_or("None".into()),
            self.breaker,
            if self.explored { "True" } else { "False" },
            if self.probe { "True" } else { "False" }
        )
    }
}

/// The candidates best first (`order`) and how each was judged (`estimates`, in input order).
#[pyclass(frozen, module = "paymux._core")]
pub struct Ranking {
    candidates: Vec<Py<PyString>>,
    segments: Vec<Py<PyString>>,
    inner: core::Ranking,
}

#[pymethods]
impl Ranking {
    #[getter]
    fn order<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(
            py,
            self.inner
                .order
                .iter()
                .map(|&i| self.candidates[i].bind(py)),
        )
    }

    #[getter]
    fn estimates<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for e in &self.inner.estimates {
            list.append(Estimate {
                connector: self.candidates[e.candidate].clone_ref(py),
                approval: e.approval,
                fee: e.fee,
                expected_value: e.expected_value,
                samples: e.samples,
                segment: e.segment.map(|s| self.segments[s].clone_ref(py)),
                breaker: e.breaker.as_str(),
                explored: e.explored,
                probe: e.probe,
            })?;
        }
        Ok(list)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!("Ranking(order={})", self.order(py)?.repr()?))
    }
}

#[pymethods]
impl Selector {
    #[new]
    #[pyo3(signature = (health, *, exploration=0.02, min_samples=30, prior_approval=0.8, seed=None,
                        latency_penalty_per_ms=0.0))]
    fn new(
        health: Py<HealthBook>,
        exploration: f64,
        min_samples: i64,
        prior_approval: f64,
        seed: Option<&Bound<'_, PyAny>>,
        latency_penalty_per_ms: f64,
    ) -> PyResult<Self> {
        if min_samples < 1 {
            return Err(PyValueError::new_err(format!(
                "min_samples must be at least 1, got {min_samples}"
            )));
        }
        let cfg = SelectorConfig {
            exploration,
            min_samples: min_samples as u64,
            prior_approval,
            latency_penalty_per_ms,
        };
        cfg.validate().map_err(|e| PyValueError::new_err(e.0))?;
        let rng = match seed.filter(|s| !s.is_none()) {
            None => Rng::from_entropy(),
            Some(s) => Rng::seeded(s.extract::<u64>().map_err(|_| {
                PyValueError::new_err("seed must be None or an integer in [0, 2**64)")
            })?),
        };
        Ok(Selector {
            health,
            cfg,
            rng: Mutex::new(rng),
        })
    }

    /// The HealthBook this selector reads.
    #[getter]
    fn health(&self, py: Python<'_>) -> Py<HealthBook> {
        self.health.clone_ref(py)
    }

    /// Order `candidates` for a payment of `amount` minor units; `fees[i]` is candidate i's fee in
    /// minor units; `segments` finest first (e.g. ["visa|DE|EUR", "visa|DE", "visa", "*"]).
    fn rank(
        &self,
        candidates: Vec<Bound<'_, PyString>>,
        segments: Vec<Bound<'_, PyString>>,
        amount: i64,
        fees: Vec<i64>,
        now: f64,
    ) -> PyResult<Ranking> {
        let mut cands = Vec::with_capacity(candidates.len());
        for c in &candidates {
            cands.push(c.to_str()?);
        }
        let mut segs = Vec::with_capacity(segments.len());
        for s in &segments {
            segs.push(s.to_str()?);
        }
        let inner = {
            let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
            let mut book = self.health.get().lock();
            core::rank(
                &mut book, &self.cfg, &mut rng, &cands, &segs, amount, &fees, now,
            )
            .map_err(|e| PyValueError::new_err(e.0))?
        };
        Ok(Ranking {
            candidates: candidates.into_iter().map(Bound::unbind).collect(),
            segments: segments.into_iter().map(Bound::unbind).collect(),
            inner,
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "<Selector exploration={} min_samples={} prior_approval={}>",
            self.cfg.exploration, self.cfg.min_samples, self.cfg.prior_approval
        )
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Selector>()?;
    m.add_class::<Ranking>()?;
    m.add_class::<Estimate>()?;
    Ok(())
}
