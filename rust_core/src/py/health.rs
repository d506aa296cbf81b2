//! Python bindings for `crate::health`: `HealthBook` (thread-safe: one Mutex inside) and
//! `HealthStats`.

use std::sync::{Mutex, MutexGuard};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::health::{self as core, HealthConfig, Outcome, Stats, OUTCOME_NAMES};

/// Sliding-window outcome counters and latency histograms per (connector, segment), and a circuit
/// breaker per connector. Time is passed in (`now`, seconds) so callers and tests control it.
#[pyclass(frozen, module = "paymux._core")]
pub struct HealthBook {
    inner: Mutex<core::HealthBook>,
}

impl HealthBook {
    /// The book, for this module and the selector. A poisoned lock is taken over: every update
    /// keeps the book consistent before anything that could panic.
    pub(crate) fn lock(&self) -> MutexGuard<'_, core::HealthBook> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn value_error(e: core::HealthError) -> PyErr {
    PyValueError::new_err(e.0)
}

fn parse_outcome(outcome: &str) -> PyResult<Outcome> {
    Outcome::parse(outcome).ok_or_else(|| {
        PyValueError::new_err(format!(
            "unknown outcome {outcome:?} (expected one of: {})",
            OUTCOME_NAMES.join(", ")
        ))
    })
}

fn count_arg(name: &str, v: i64, max: i64) -> PyResult<i64> {
    if (1..=max).contains(&v) {
        Ok(v)
    } else {
        Err(PyValueError::new_err(format!(
            "{name} must be between 1 and {max}, got {v}"
        )))
    }
}

/// Statistics of one (connector, segment): counts over the time window, rates over the time
/// window and the count window, latency percentiles (upper edge of the histogram bucket, ms).
#[pyclass(frozen, module = "paymux._core")]
pub struct HealthStats {
    stats: Stats,
}

#[pymethods]
impl HealthStats {
    #[getter]
    fn approved(&self) -> u64 {
        self.stats.window.get(Outcome::Approved)
    }
    #[getter]
    fn hard(&self) -> u64 {
        self.stats.window.get(Outcome::Hard)
    }
    #[getter]
    fn fix_data(&self) -> u64 {
        self.stats.window.get(Outcome::FixData)
    }
    #[getter]
    fn issuer_not_now(&self) -> u64 {
        self.stats.window.get(Outcome::IssuerNotNow)
    }
    #[getter]
    fn soft_route(&self) -> u64 {
        self.stats.window.get(Outcome::SoftRoute)
    }
    #[getter]
    fn technical(&self) -> u64 {
        self.stats.window.get(Outcome::Technical)
    }
    #[getter]
    fn timeout(&self) -> u64 {
        self.stats.window.get(Outcome::Timeout)
    }
    #[getter]
    fn total(&self) -> u64 {
        self.stats.window.total()
    }
    #[getter]
    fn approval_rate(&self) -> Option<f64> {
        self.stats.window.approval_rate()
    }
    #[getter]
    fn technical_rate(&self) -> Option<f64> {
        self.stats.window.technical_rate()
    }
    #[getter]
    fn latency_p50(&self) -> Option<f64> {
        self.stats.latency_p50
    }
    #[getter]
    fn latency_p95(&self) -> Option<f64> {
        self.stats.latency_p95
    }
    #[getter]
    fn latency_p99(&self) -> Option<f64> {
        self.stats.latency_p99
    }
    #[getter]
    fn count_window_total(&self) -> u64 {
        self.stats.count_window.total()
    }
    #[getter]
    fn count_window_approval_rate(&self) -> Option<f64> {
        self.stats.count_window.approval_rate()
    }
    #[getter]
    fn count_window_technical_rate(&self) -> Option<f64> {
        self.stats.count_window.technical_rate()
    }
    /// Counts per outcome over the time window.
    fn counts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (name, c) in OUTCOME_NAMES.iter().zip(self.stats.window.counts) {
            d.set_item(name, c)?;
        }
        Ok(d)
    }
    fn __repr__(&self) -> String {
        format!(
            "HealthStats(total={}, approval_rate={}, technical_rate={}, latency_p50={})",
            self.stats.window.total(),
            py_opt(self.stats.window.approval_rate()),
            py_opt(self.stats.window.technical_rate()),
            py_opt(self.stats.latency_p50)
        )
    }
}

fn py_opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:?}")).unwrap_or_else(|| "None".into())
}

fn stats_dict(d: &Bound<'_, PyDict>, s: &Stats) -> PyResult<()> {
    for (name, c) in OUTCOME_NAMES.iter().zip(s.window.counts) {
        d.set_item(name, c)?;
    }
    d.set_item("total", s.window.total())?;
    d.set_item("approval_rate", s.window.approval_rate())?;
    d.set_item("technical_rate", s.window.technical_rate())?;
    d.set_item("latency_p50", s.latency_p50)?;
    d.set_item("latency_p95", s.latency_p95)?;
    d.set_item("latency_p99", s.latency_p99)?;
    d.set_item("count_window_total", s.count_window.total())?;
    d.set_item("count_window_approval_rate", s.count_window.approval_rate())?;
    d.set_item(
        "count_window_technical_rate",
        s.count_window.technical_rate(),
    )?;
    Ok(())
}

#[pymethods]
impl HealthBook {
    #[new]
    #[pyo3(signature = (*, window_seconds=60.0, bucket_seconds=1.0, count_window=200,
                        breaker_consecutive_failures=5, breaker_failure_rate=0.5,
                        breaker_min_volume=20, breaker_open_seconds=5.0,
                        breaker_max_open_seconds=60.0, breaker_half_open_probes=3,
                        evidence_half_life=0.0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        window_seconds: f64,
        bucket_seconds: f64,
        count_window: i64,
        breaker_consecutive_failures: i64,
        breaker_failure_rate: f64,
        breaker_min_volume: i64,
        breaker_open_seconds: f64,
        breaker_max_open_seconds: f64,
        breaker_half_open_probes: i64,
        evidence_half_life: f64,
    ) -> PyResult<Self> {
        let cfg = HealthConfig {
            window_seconds,
            bucket_seconds,
            count_window: count_arg("count_window", count_window, 1_000_000)? as usize,
            breaker_consecutive_failures: count_arg(
                "breaker_consecutive_failures",
                breaker_consecutive_failures,
                1_000_000,
            )? as u32,
            breaker_failure_rate,
            breaker_min_volume: count_arg("breaker_min_volume", breaker_min_volume, 1_000_000_000)?
                as u32,
            breaker_open_seconds,
            breaker_max_open_seconds,
            breaker_half_open_probes: count_arg(
                "breaker_half_open_probes",
                breaker_half_open_probes,
                1_000_000,
            )? as u32,
            evidence_half_life,
        };
        Ok(HealthBook {
            inner: Mutex::new(core::HealthBook::new(cfg).map_err(value_error)?),
        })
    }

    /// Record one attempt's outcome and latency. `segment` is one segment string or a sequence of
    /// them (every level the caller will query, e.g. ["visa|DE|EUR", "visa|DE", "visa", "*"]);
    /// the connector's breaker counts the attempt once either way.
    fn record(
        &self,
        connector: &str,
        segment: &Bound<'_, PyAny>,
        outcome: &str,
        latency_ms: f64,
        now: f64,
    ) -> PyResult<()> {
        let outcome = parse_outcome(outcome)?;
        if let Ok(s) = segment.cast::<PyString>() {
            let s = s.to_str()?;
            return self
                .lock()
                .record(connector, &[s], outcome, latency_ms, now)
                .map_err(value_error);
        }
        let items: Vec<Bound<'_, PyString>> = segment
            .extract()
            .map_err(|_| PyTypeError::new_err("segment must be a str or a sequence of str"))?;
        let mut names = Vec::with_capacity(items.len());
        for s in &items {
            names.push(s.to_str()?);
        }
        self.lock()
            .record(connector, &names, outcome, latency_ms, now)
            .map_err(value_error)
    }

    /// Statistics of (connector, segment) as of `now` (all zero for one never recorded).
    fn stats(&self, connector: &str, segment: &str, now: f64) -> PyResult<HealthStats> {
        let stats = self
            .lock()
            .stats(connector, segment, now)
            .map_err(value_error)?;
        Ok(HealthStats { stats })
    }

    /// The selector's evidence for (connector, segment): count-window (approved, soft_route +
    /// technical + timeout), each entry weighted by its age in the segment's attempts
    /// (`evidence_half_life`; unweighted counts when it is 0).
    fn psp_evidence(&self, connector: &str, segment: &str, now: f64) -> PyResult<(f64, f64)> {
        core::check_now(now).map_err(value_error)?;
        Ok(self.lock().psp_evidence(connector, segment, now))
    }

    /// "closed", "open" or "half_open" as of `now`.
    fn breaker_state(&self, connector: &str, now: f64) -> PyResult<&'static str> {
        Ok(self
            .lock()
            .breaker_state(connector, now)
            .map_err(value_error)?
            .as_str())
    }

    /// Whether a request may go to `connector` now; a half-open breaker hands out a limited number
    /// of probe slots (each call that returns True takes one).
    fn allow_request(&self, connector: &str, now: f64) -> PyResult<bool> {
        self.lock()
            .allow_request(connector, now)
            .map_err(value_error)
    }

    /// One dict per (connector, segment), sorted, for metrics export.
    fn snapshot<'py>(&self, py: Python<'py>, now: f64) -> PyResult<Bound<'py, PyList>> {
        let rows = self.lock().snapshot(now).map_err(value_error)?;
        let out = PyList::empty(py);
        for row in rows {
            let d = PyDict::new(py);
            d.set_item("connector", row.connector)?;
            d.set_item("segment", row.segment)?;
            d.set_item("breaker", row.breaker.as_str())?;
            stats_dict(&d, &row.stats)?;
            out.append(d)?;
        }
        Ok(out)
    }

    fn __repr__(&self) -> String {
        let book = self.lock();
        let c = book.config();
        format!(
            "<HealthBook window={}s/{}s buckets, count_window={}>",
            c.window_seconds, c.bucket_seconds, c.count_window
        )
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<HealthBook>()?;
    m.add_class::<HealthStats>()?;
    Ok(())
}
