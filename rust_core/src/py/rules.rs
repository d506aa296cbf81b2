//! Python bindings for `crate::rules`: `RuleSet`, `RouteDecision` and `RuleError`.

use pyo3::create_exception;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyMapping, PyString, PyTuple};

use crate::rules::{self as core, Payment, RuleRef, Strategy, Value};

create_exception!(
    paymux._core,
    RuleError,
    PyValueError,
    "A routing rule set that does not compile. `.rule` is the rule's name (or its index when it has \
     no usable name, \"default\" for the default, None for a top-level key) and `.field` the \
     dotted field inside it."
);

const MAX_DEPTH: usize = 32;

/// Convert a Python config tree (mappings, lists, scalars) into a `Value`.
fn to_value(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if depth > MAX_DEPTH {
        return Ok(Value::Unsupported("a structure nested too deeply".into()));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::Str(s.to_str()?.to_owned()));
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        return Ok(match obj.extract::<i64>() {
            Ok(i) => Value::Int(i),
            Err(_) => Value::Unsupported("an integer out of the 64-bit range".into()),
        });
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(Value::Float(f.value()));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut entries = Vec::with_capacity(d.len());
        for (k, v) in d.iter() {
            entries.push((key(&k)?, to_value(&v, depth + 1)?));
        }
        return Ok(Value::Map(entries));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut items = Vec::new();
        for item in obj.try_iter()? {
            items.push(to_value(&item?, depth + 1)?);
        }
        return Ok(Value::List(items));
    }
    if let Ok(m) = obj.cast::<PyMapping>() {
        let mut entries = Vec::new();
        for item in m.items()?.iter() {
            let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
            entries.push((key(&k)?, to_value(&v, depth + 1)?));
        }
        return Ok(Value::Map(entries));
    }
    Ok(Value::Unsupported(obj.get_type().name()?.to_string()))
}

fn key(k: &Bound<'_, PyAny>) -> PyResult<String> {
    match k.cast::<PyString>() {
        Ok(s) => Ok(s.to_str()?.to_owned()),
        Err(_) => Err(PyTypeError::new_err(format!(
            "routing config keys must be strings, got {}",
            k.get_type().name()?
        ))),
    }
}

fn rule_error(py: Python<'_>, e: core::RuleError) -> PyErr {
    let err = RuleError::new_err(e.to_string());
    let value = err.value(py);
    let rule: Bound<'_, PyAny> = match &e.rule {
        Some(RuleRef::Name(n)) => PyString::new(py, n).into_any(),
        Some(RuleRef::Index(i)) => PyInt::new(py, *i as u64).into_any(),
        None => py.None().into_bound(py),
    };
    match value
        .setattr("rule", rule)
        .and_then(|_| value.setattr("field", &e.field))
    {
        Ok(()) => err,
        Err(other) => other,
    }
}

/// A routing rule set compiled once from a config mapping, evaluated per payment.
#[pyclass(frozen, module = "paymux._core")]
pub struct RuleSet {
    inner: core::RuleSet,
    rule_names: Vec<Py<PyString>>,
    connector_names: Vec<Py<PyString>>,
    default_name: Py<PyString>,
    strategies: [Py<PyString>; 3],
}

/// Which rule matched a payment and the connectors to try, in order.
#[pyclass(frozen, module = "paymux._core")]
pub struct RouteDecision {
    #[pyo3(get)]
    rule: Py<PyString>,
    #[pyo3(get)]
    strategy: Py<PyString>,
    connector_ids: Vec<Py<PyString>>,
}

#[pymethods]
impl RouteDecision {
    /// The connectors to try, in order (for a split: the chosen one, then the others by weight).
    #[getter]
    fn connectors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.connector_ids.iter().map(|c| c.bind(py)))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "RouteDecision(rule={}, strategy={}, connectors={})",
            self.rule.bind(py).repr()?,
            self.strategy.bind(py).repr()?,
            self.connectors(py)?.repr()?
        ))
    }

    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(other) = other.cast::<RouteDecision>() else {
            return Ok(false);
        };
        let o = other.get();
        let text = |x: &Py<PyString>| x.bind(py).to_str().map(str::to_owned);
        let all = |d: &RouteDecision| -> PyResult<Vec<String>> {
            let mut v = vec![text(&d.rule)?, text(&d.strategy)?];
            for c in &d.connector_ids {
                v.push(text(c)?);
            }
            Ok(v)
        };
        Ok(all(self)? == all(o)?)
    }

    #[classattr]
    const __hash__: Option<Py<PyAny>> = None;
}

#[pymethods]
impl RuleSet {
    #[new]
    fn new(py: Python<'_>, config: &Bound<'_, PyAny>) -> PyResult<Self> {
        if !(config.is_instance_of::<PyDict>() || config.cast::<PyMapping>().is_ok()) {
            return Err(PyTypeError::new_err(format!(
                "RuleSet() takes a mapping (e.g. a dict loaded from TOML or JSON), got {}",
                config.get_type().name()?
            )));
        }
        let value = to_value(config, 0)?;
        let inner = core::RuleSet::compile(&value).map_err(|e| rule_error(py, e))?;
        let s = |x: &str| PyString::intern(py, x).unbind();
        Ok(RuleSet {
            rule_names: inner.rule_names().map(s).collect(),
            connector_names: inner.connector_names().iter().map(|c| s(c)).collect(),
            default_name: s("default"),
            strategies: [s("priority"), s("split"), s("dynamic")],
            inner,
        })
    }

    /// Route one payment: the first rule (by priority, then file order) whose conditions all hold,
    /// else the default. `amount` in minor units, `now` in unix seconds (for time windows).
    #[pyo3(signature = (*, currency, amount, brand=None, card_type=None, bin=None, country=None,
                        merchant_id=None, metadata=None, now=0.0, payment_id=""))]
    #[allow(clippy::too_many_arguments)]
    fn evaluate(
        &self,
        py: Python<'_>,
        currency: &str,
        amount: i64,
        brand: Option<&str>,
        card_type: Option<&str>,
        bin: Option<&str>,
        country: Option<&str>,
        merchant_id: Option<&str>,
        metadata: Option<&Bound<'_, PyAny>>,
        now: f64,
        payment_id: &str,
    ) -> PyResult<RouteDecision> {
        if amount < 0 {
            return Err(PyValueError::new_err(format!(
                "amount must be >= 0 minor units, got {amount}"
            )));
        }
        if !(now.is_finite() && now.abs() <= crate::health::MAX_NOW) {
            return Err(PyValueError::new_err(format!(
                "now must be unix seconds (finite, |now| <= 1e12), got {now:?}"
            )));
        }
        let metadata = metadata.filter(|m| !m.is_none());
        if let Some(m) = metadata {
            if m.cast::<PyMapping>().is_err() && !m.is_instance_of::<PyDict>() {
                return Err(PyTypeError::new_err(format!(
                    "metadata must be a mapping of str to str, got {}",
                    m.get_type().name()?
                )));
            }
        }
        let payment = Payment {
            currency,
            amount,
            brand,
            card_type,
            bin,
            country,
            merchant_id,
            now,
            payment_id,
        };
        let mut failure: Option<PyErr> = None;
        let decision = self.inner.evaluate(&payment, |k, want| {
            let Some(m) = metadata else { return false };
            let got = match m.cast::<PyDict>() {
                Ok(d) => d.get_item(k),
                Err(_) => match m.get_item(k) {
                    Ok(v) => Ok(Some(v)),
                    Err(e) if e.is_instance_of::<pyo3::exceptions::PyKeyError>(py) => Ok(None),
                    Err(e) => Err(e),
                },
            };
            match got {
                Ok(Some(v)) => {
                    v.cast::<PyString>().ok().and_then(|s| s.to_str().ok()) == Some(want)
                }
                Ok(None) => false,
                Err(e) => {
                    failure.get_or_insert(e);
                    false
                }
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        let rule = match decision.rule {
            Some(i) => self.rule_names[i].clone_ref(py),
            None => self.default_name.clone_ref(py),
        };
        let strategy = match decision.strategy {
            Strategy::Priority => &self.strategies[0],
            Strategy::Split => &self.strategies[1],
            Strategy::Dynamic => &self.strategies[2],
        };
        Ok(RouteDecision {
            rule,
            strategy: strategy.clone_ref(py),
            connector_ids: decision
                .connectors
                .iter()
                .map(|&c| self.connector_names[c as usize].clone_ref(py))
                .collect(),
        })
    }

    /// The number of rules (the default not counted).
    #[getter]
    fn rule_count(&self) -> usize {
        self.inner.rule_count()
    }

    /// Rule names in evaluation order (priority, then file order).
    fn rule_names<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.rule_names.iter().map(|c| c.bind(py)))
    }

    /// Every connector named by a rule or the default, in order of first appearance.
    fn connector_names<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.connector_names.iter().map(|c| c.bind(py)))
    }

    fn __repr__(&self) -> String {
        format!(
            "<RuleSet: {} rules, {} connectors>",
            self.inner.rule_count(),
            self.connector_names.len()
        )
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let err_type = py.get_type::<RuleError>();
    // class-level defaults so the attributes exist even before an instance sets them
    err_type.setattr("rule", py.None())?;
    err_type.setattr("field", "")?;
    m.add("RuleError", err_type)?;
    m.add_class::<RuleSet>()?;
    m.add_class::<RouteDecision>()?;
    Ok(())
}
