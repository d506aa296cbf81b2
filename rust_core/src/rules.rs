//! Routing rules: a rule set compiled once from a config tree (what TOML or JSON can express) and
//! evaluated per payment to the first matching rule's strategy and connectors.
//!
//! Evaluation is pre-indexed: rules are sorted by (priority, file order) and numbered; for each
//! categorical condition (currency, brand, card type, issuer country, merchant) a map from value to
//! the bitset of rules that accept it (rules without that condition accept everything) is built at
//! compile time. A payment ANDs five bitsets and then checks only the surviving rules, in order,
//! for the residual conditions (amount, BIN, metadata, time). Metadata is read through a callback
//! and only when a surviving rule has a metadata condition.

use std::fmt;

use crate::health::FxHashMap;

/// A config tree, as parsed from TOML/JSON or converted from a Python mapping.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    /// Keys in their original order.
    Map(Vec<(String, Value)>),
    /// Anything else (the name of its type), reported as a type error by the compiler.
    Unsupported(String),
}

impl Value {
    fn kind(&self) -> String {
        match self {
            Value::Null => "null".into(),
            Value::Bool(_) => "a boolean".into(),
            Value::Int(_) => "an integer".into(),
            Value::Float(_) => "a float".into(),
            Value::Str(_) => "a string".into(),
            Value::List(_) => "a list".into(),
            Value::Map(_) => "a table".into(),
            Value::Unsupported(t) => format!("a value of type {t}"),
        }
    }
}

/// Which rule an error is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleRef {
    /// A rule with a usable name, or "default".
    Name(String),
    /// A rule whose name is missing or unusable: its position in `rules`.
    Index(usize),
}

/// A compile error: which rule, which field (dotted path inside the rule), and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleError {
    pub rule: Option<RuleRef>,
    pub field: String,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rule {
            Some(RuleRef::Name(n)) => {
                write!(f, "rule {n:?}, field {:?}: {}", self.field, self.message)
            }
            Some(RuleRef::Index(i)) => {
                write!(f, "rule #{i}, field {:?}: {}", self.field, self.message)
            }
            None => write!(f, "field {:?}: {}", self.field, self.message),
        }
    }
}

impl std::error::Error for RuleError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    Priority,
    Split,
    Dynamic,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Priority => "priority",
            Strategy::Split => "split",
            Strategy::Dynamic => "dynamic",
        }
    }
}

#[derive(Clone, Debug)]
enum BinPattern {
    Prefix(String),
    /// Inclusive range of equal-length prefixes, compared on the first `len` digits.
    Range {
        len: usize,
        lo: u64,
        hi: u64,
    },
}

#[derive(Clone, Debug)]
struct TimeCond {
    /// bit d set: day d (Monday = 0) is in the window
    days: u8,
    from: u32,
    to: u32,
}

#[derive(Clone, Debug, Default)]
struct Residual {
    amount: Option<(Option<i64>, Option<i64>)>,
    bin: Option<Vec<BinPattern>>,
    metadata: Option<Vec<(String, String)>>,
    time: Option<TimeCond>,
}

impl Residual {
    fn is_empty(&self) -> bool {
        self.amount.is_none()
            && self.bin.is_none()
            && self.metadata.is_none()
            && self.time.is_none()
    }
}

#[derive(Clone, Debug)]
struct Then {
    strategy: Strategy,
    /// Connector ids (into `RuleSet::connector_names`), in config order.
    connectors: Vec<u16>,
    /// Split only: weight per entry of `connectors`.
    weights: Vec<u64>,
    total_weight: u64,
}

#[derive(Clone, Debug)]
struct Rule {
    name: String,
    residual: Residual,
    then: Then,
}

/// Bitsets of rule positions.
type Bits = Vec<u64>;

#[derive(Clone, Copy, Debug)]
enum Case {
    Upper,
    Lower,
    Exact,
}

#[derive(Clone, Debug)]
struct CategoryIndex {
    by_value: FxHashMap<String, Bits>,
    /// rules with no condition on this attribute: what an unknown or missing value matches
    unconstrained: Bits,
    case: Case,
}

impl CategoryIndex {
    fn lookup(&self, value: Option<&str>) -> &Bits {
        let Some(v) = value else {
            return &self.unconstrained;
        };
        if let Some(b) = self.by_value.get(v) {
            return b;
        }
        let normalized = match self.case {
            Case::Upper if v.bytes().any(|c| c.is_ascii_lowercase()) => v.to_ascii_uppercase(),
            Case::Lower if v.bytes().any(|c| c.is_ascii_uppercase()) => v.to_ascii_lowercase(),
            _ => return &self.unconstrained,
        };
        self.by_value
            .get(normalized.as_str())
            .unwrap_or(&self.unconstrained)
    }
}

/// The attributes of one payment that rules can look at.
#[derive(Clone, Copy, Debug, Default)]
pub struct Payment<'a> {
    pub currency: &'a str,
    pub amount: i64,
    pub brand: Option<&'a str>,
    pub card_type: Option<&'a str>,
    pub bin: Option<&'a str>,
    pub country: Option<&'a str>,
    pub merchant_id: Option<&'a str>,
    /// unix seconds
    pub now: f64,
    pub payment_id: &'a str,
}

/// The result of evaluating a payment: which rule matched and the ordered connector ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// index into `RuleSet::rule_names()`, or None for the default
    pub rule: Option<usize>,
    pub strategy: Strategy,
    pub connectors: Vec<u16>,
}

/// A compiled, immutable rule set.
#[derive(Clone, Debug)]
pub struct RuleSet {
    utc_offset_seconds: f64,
    /// sorted by (priority, file order)
    rules: Vec<Rule>,
    default: Then,
    connector_names: Vec<String>,
    words: usize,
    currency: CategoryIndex,
    brand: CategoryIndex,
    card_type: CategoryIndex,
    country: CategoryIndex,
    merchant: CategoryIndex,
    /// rules with no residual condition: matched as soon as their bit survives
    no_residual: Bits,
}

// ---------------------------------------------------------------------------------------------
// compiling
// ---------------------------------------------------------------------------------------------

struct Ctx {
    rule: Option<RuleRef>,
}

impl Ctx {
    fn err<T>(&self, field: &str, message: impl Into<String>) -> Result<T, RuleError> {
        Err(RuleError {
            rule: self.rule.clone(),
            field: field.to_owned(),
            message: message.into(),
        })
    }

    fn table<'v>(
        &self,
        field: &str,
        v: &'v Value,
        allowed: &[&str],
    ) -> Result<&'v [(String, Value)], RuleError> {
        let Value::Map(entries) = v else {
            return self.err(field, format!("expected a table, got {}", v.kind()));
        };
        for (k, _) in entries {
            if !allowed.contains(&k.as_str()) {
                let path = if field.is_empty() {
                    k.clone()
                } else {
                    format!("{field}.{k}")
                };
                return self.err(
                    &path,
                    format!(
                        "unknown key {k:?} (expected one of: {})",
                        allowed.join(", ")
                    ),
                );
            }
        }
        Ok(entries)
    }

    fn string_list(&self, field: &str, v: &Value) -> Result<Vec<String>, RuleError> {
        let Value::List(items) = v else {
            return self.err(
                field,
                format!("expected a list of strings, got {}", v.kind()),
            );
        };
        if items.is_empty() {
            return self.err(
                field,
                "must not be empty (omit the condition to match everything)",
            );
        }
        items
            .iter()
            .map(|i| match i {
                Value::Str(s) if !s.is_empty() => Ok(s.clone()),
                Value::Str(_) => self.err(field, "contains an empty string"),
                other => self.err(
                    field,
                    format!("expected a list of strings, found {}", other.kind()),
                ),
            })
            .collect()
    }

    fn int(&self, field: &str, v: &Value) -> Result<i64, RuleError> {
        match v {
            Value::Int(i) => Ok(*i),
            other => self.err(field, format!("expected an integer, got {}", other.kind())),
        }
    }
}

fn get<'v>(entries: &'v [(String, Value)], key: &str) -> Option<&'v Value> {
    entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn parse_hhmm(s: &str, allow_24: bool) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    if m >= 60 {
        return None;
    }
    match (h, m) {
        (24, 0) if allow_24 => Some(1440),
        (h, m) if h < 24 => Some(h * 60 + m),
        _ => None,
    }
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const CARD_TYPES: [&str; 3] = ["credit", "debit", "prepaid"];

struct CompiledWhen {
    currency: Option<Vec<String>>,
    brand: Option<Vec<String>>,
    card_type: Option<Vec<String>>,
    country: Option<Vec<String>>,
    merchant: Option<Vec<String>>,
    residual: Residual,
}

fn compile_when(ctx: &Ctx, v: &Value) -> Result<CompiledWhen, RuleError> {
    let entries = ctx.table(
        "when",
        v,
        &[
            "currency",
            "amount",
            "brand",
            "card_type",
            "bin",
            "country",
            "merchant",
            "metadata",
            "time",
        ],
    )?;
    let mut w = CompiledWhen {
        currency: None,
        brand: None,
        card_type: None,
        country: None,
        merchant: None,
        residual: Residual::default(),
    };
    if let Some(v) = get(entries, "currency") {
        let list = ctx.string_list("when.currency", v)?;
        for c in &list {
            if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_alphabetic()) {
                return ctx.err(
                    "when.currency",
                    format!("{c:?} is not an ISO 4217 code (3 letters)"),
                );
            }
        }
        w.currency = Some(list.into_iter().map(|c| c.to_ascii_uppercase()).collect());
    }
    if let Some(v) = get(entries, "brand") {
        let list = ctx.string_list("when.brand", v)?;
        w.brand = Some(list.into_iter().map(|c| c.to_ascii_lowercase()).collect());
    }
    if let Some(v) = get(entries, "card_type") {
        let list = ctx.string_list("when.card_type", v)?;
        let mut out = Vec::new();
        for c in list {
            let c = c.to_ascii_lowercase();
            if !CARD_TYPES.contains(&c.as_str()) {
                return ctx.err(
                    "when.card_type",
                    format!("{c:?} is not a card type (expected credit, debit or prepaid)"),
                );
            }
            out.push(c);
        }
        w.card_type = Some(out);
    }
    if let Some(v) = get(entries, "country") {
        let list = ctx.string_list("when.country", v)?;
        for c in &list {
            if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_alphabetic()) {
                return ctx.err(
                    "when.country",
                    format!("{c:?} is not an ISO 3166 alpha-2 code"),
                );
            }
        }
        w.country = Some(list.into_iter().map(|c| c.to_ascii_uppercase()).collect());
    }
    if let Some(v) = get(entries, "merchant") {
        w.merchant = Some(ctx.string_list("when.merchant", v)?);
    }
    if let Some(v) = get(entries, "amount") {
        let t = ctx.table("when.amount", v, &["min", "max"])?;
        let min = get(t, "min")
            .map(|v| ctx.int("when.amount.min", v))
            .transpose()?;
        let max = get(t, "max")
            .map(|v| ctx.int("when.amount.max", v))
            .transpose()?;
        if min.is_none() && max.is_none() {
            return ctx.err("when.amount", "needs min, max or both");
        }
        if let (Some(a), Some(b)) = (min, max) {
            if a > b {
                return ctx.err("when.amount", format!("min {a} is greater than max {b}"));
            }
        }
        w.residual.amount = Some((min, max));
    }
    if let Some(v) = get(entries, "bin") {
        let mut patterns = Vec::new();
        for p in ctx.string_list("when.bin", v)? {
            let digits =
                |s: &str| !s.is_empty() && s.len() <= 12 && s.bytes().all(|b| b.is_ascii_digit());
            if let Some((lo, hi)) = p.split_once('-') {
                if !digits(lo) || !digits(hi) || lo.len() != hi.len() {
                    return ctx.err(
                        "when.bin",
                        format!("{p:?} is not a range of two equal-length digit prefixes (e.g. \"510000-519999\")"),
                    );
                }
                let (l, h): (u64, u64) = (lo.parse().unwrap_or(0), hi.parse().unwrap_or(0));
                if l > h {
                    return ctx.err(
                        "when.bin",
                        format!("{p:?}: the range's start is above its end"),
                    );
                }
                patterns.push(BinPattern::Range {
                    len: lo.len(),
                    lo: l,
                    hi: h,
                });
            } else if digits(&p) {
                patterns.push(BinPattern::Prefix(p));
            } else {
                return ctx.err(
                    "when.bin",
                    format!("{p:?} is not a digit prefix of 1 to 12 digits"),
                );
            }
        }
        w.residual.bin = Some(patterns);
    }
    if let Some(v) = get(entries, "metadata") {
        let Value::Map(pairs) = v else {
            return ctx.err(
                "when.metadata",
                format!("expected a table of key = \"value\", got {}", v.kind()),
            );
        };
        if pairs.is_empty() {
            return ctx.err("when.metadata", "must not be empty");
        }
        let mut out = Vec::new();
        for (k, val) in pairs {
            match val {
                Value::Str(s) => out.push((k.clone(), s.clone())),
                other => {
                    return ctx.err(
                        &format!("when.metadata.{k}"),
                        format!(
                            "expected a string, got {} (metadata values are compared as strings)",
                            other.kind()
                        ),
                    )
                }
            }
        }
        w.residual.metadata = Some(out);
    }
    if let Some(v) = get(entries, "time") {
        let t = ctx.table("when.time", v, &["days", "from", "to"])?;
        let mut days = 0x7f_u8;
        if let Some(d) = get(t, "days") {
            days = 0;
            for name in ctx.string_list("when.time.days", d)? {
                let Some(i) = DAYS.iter().position(|x| x.eq_ignore_ascii_case(&name)) else {
                    return ctx.err(
                        "when.time.days",
                        format!("{name:?} is not a day (mon, tue, ..., sun)"),
                    );
                };
                days |= 1 << i;
            }
        }
        let hhmm = |key: &str, allow_24: bool| -> Result<Option<u32>, RuleError> {
            let field = format!("when.time.{key}");
            match get(t, key) {
                None => Ok(None),
                Some(Value::Str(s)) => match parse_hhmm(s, allow_24) {
                    Some(m) => Ok(Some(m)),
                    None => ctx.err(&field, format!("{s:?} is not a time of day \"HH:MM\"")),
                },
                Some(other) => ctx.err(&field, format!("expected \"HH:MM\", got {}", other.kind())),
            }
        };
        let from = hhmm("from", false)?;
        let to = hhmm("to", true)?;
        let (from, to) = match (from, to) {
            (None, None) => (0, 1440),
            (Some(f), Some(t)) => (f, t),
            _ => return ctx.err("when.time", "from and to go together"),
        };
        if from == to {
            return ctx.err(
                "when.time",
                "from equals to: the window is empty (omit both for all day)",
            );
        }
        w.residual.time = Some(TimeCond { days, from, to });
    }
    Ok(w)
}

fn compile_then(
    ctx: &Ctx,
    field: &str,
    v: &Value,
    names: &mut Vec<String>,
    ids: &mut FxHashMap<String, u16>,
) -> Result<Then, RuleError> {
    let entries = ctx.table(field, v, &["strategy", "connectors", "weights"])?;
    let f = |k: &str| format!("{field}.{k}");
    let strategy = match get(entries, "strategy") {
        None => Strategy::Priority,
        Some(Value::Str(s)) => match s.as_str() {
            "priority" => Strategy::Priority,
            "split" => Strategy::Split,
            "dynamic" => Strategy::Dynamic,
            _ => {
                return ctx.err(
                    &f("strategy"),
                    format!("{s:?} is not a strategy (priority, split or dynamic)"),
                )
            }
        },
        Some(other) => {
            return ctx.err(
                &f("strategy"),
                format!("expected a string, got {}", other.kind()),
            )
        }
    };
    let listed = get(entries, "connectors")
        .map(|v| ctx.string_list(&f("connectors"), v))
        .transpose()?;
    let mut weights_cfg: Option<Vec<(String, u64)>> = None;
    if let Some(w) = get(entries, "weights") {
        if strategy != Strategy::Split {
            return ctx.err(&f("weights"), "weights only apply to strategy = \"split\"");
        }
        let Value::Map(pairs) = w else {
            return ctx.err(
                &f("weights"),
                format!("expected a table of connector = weight, got {}", w.kind()),
            );
        };
        let mut out = Vec::new();
        for (k, val) in pairs {
            match val {
                Value::Int(i) if *i >= 0 && *i <= 1_000_000_000 => out.push((k.clone(), *i as u64)),
                other => {
                    return ctx.err(
                        &format!("{field}.weights.{k}"),
                        format!(
                            "expected an integer weight between 0 and 1000000000, got {}",
                            match other {
                                Value::Int(i) => i.to_string(),
                                o => o.kind(),
                            }
                        ),
                    )
                }
            }
        }
        weights_cfg = Some(out);
    }
    let (connectors, weights): (Vec<String>, Vec<u64>) = match (strategy, listed, weights_cfg) {
        (Strategy::Split, _, None) => {
            return ctx.err(&f("weights"), "strategy \"split\" needs weights")
        }
        (Strategy::Split, listed, Some(w)) => {
            if w.is_empty() {
                return ctx.err(&f("weights"), "must not be empty");
            }
            match listed {
                None => w.into_iter().unzip(),
                Some(list) => {
                    let mut ws = Vec::new();
                    for c in &list {
                        match w.iter().find(|(k, _)| k == c) {
                            Some((_, x)) => ws.push(*x),
                            None => {
                                return ctx
                                    .err(&f("weights"), format!("no weight for connector {c:?}"))
                            }
                        }
                    }
                    if let Some((k, _)) = w.iter().find(|(k, _)| !list.contains(k)) {
                        return ctx.err(
                            &f("weights"),
                            format!("{k:?} has a weight but is not in connectors"),
                        );
                    }
                    (list, ws)
                }
            }
        }
        (_, None, _) => return ctx.err(&f("connectors"), "is required"),
        (_, Some(list), _) => {
            let n = list.len();
            (list, vec![0; n])
        }
    };
    for (i, c) in connectors.iter().enumerate() {
        if connectors[..i].contains(c) {
            return ctx.err(&f("connectors"), format!("{c:?} is listed twice"));
        }
    }
    let total_weight: u64 = weights.iter().sum();
    if strategy == Strategy::Split && total_weight == 0 {
        return ctx.err(&f("weights"), "the weights add up to 0");
    }
    let mut ids_out = Vec::with_capacity(connectors.len());
    for c in connectors {
        let id = match ids.get(&c) {
            Some(&id) => id,
            None => {
                if names.len() >= u16::MAX as usize {
                    return ctx.err(&f("connectors"), "too many distinct connectors");
                }
                let id = names.len() as u16;
                ids.insert(c.clone(), id);
                names.push(c);
                id
            }
        };
        ids_out.push(id);
    }
    Ok(Then {
        strategy,
        connectors: ids_out,
        weights,
        total_weight,
    })
}

fn build_index(values: &[Option<Vec<String>>], words: usize, case: Case) -> CategoryIndex {
    let mut unconstrained = vec![0u64; words];
    let mut by_value: FxHashMap<String, Bits> = FxHashMap::default();
    for (i, v) in values.iter().enumerate() {
        if v.is_none() {
            unconstrained[i / 64] |= 1 << (i % 64);
        }
    }
    for (i, v) in values.iter().enumerate() {
        if let Some(list) = v {
            for value in list {
                let bits = by_value
                    .entry(value.clone())
                    .or_insert_with(|| unconstrained.clone());
                bits[i / 64] |= 1 << (i % 64);
            }
        }
    }
    CategoryIndex {
        by_value,
        unconstrained,
        case,
    }
}

/// The splitmix64 finalizer over FNV-1a 64 of the payment id: stable across processes,
/// platforms and releases (and mirrored by the Python reference), well mixed in the low bits.
pub fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut z = h;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl RuleSet {
    pub fn compile(config: &Value) -> Result<RuleSet, RuleError> {
        let top = Ctx { rule: None };
        let entries = top.table("", config, &["utc_offset_minutes", "rules", "default"])?;
        let utc_offset_minutes = match get(entries, "utc_offset_minutes") {
            None => 0,
            Some(v) => {
                let m = top.int("utc_offset_minutes", v)?;
                if !(-1440..=1440).contains(&m) {
                    return top.err("utc_offset_minutes", format!("{m} is outside -1440..1440"));
                }
                m
            }
        };
        let mut names: Vec<String> = Vec::new();
        let mut ids: FxHashMap<String, u16> = FxHashMap::default();

        let raw_rules: &[Value] = match get(entries, "rules") {
            None => &[],
            Some(Value::List(items)) => items,
            Some(other) => {
                return top.err(
                    "rules",
                    format!("expected a list of tables, got {}", other.kind()),
                )
            }
        };
        // (priority, file order, name, conditions, action)
        let mut compiled: Vec<(i64, usize, String, CompiledWhen, Then)> = Vec::new();
        let mut seen_names: Vec<&str> = Vec::new();
        for (index, raw) in raw_rules.iter().enumerate() {
            let mut ctx = Ctx {
                rule: Some(RuleRef::Index(index)),
            };
            let fields = ctx.table("", raw, &["name", "priority", "when", "then"])?;
            let name = match get(fields, "name") {
                Some(Value::Str(s)) if !s.is_empty() => s.as_str(),
                Some(Value::Str(_)) => return ctx.err("name", "must not be empty"),
                Some(other) => {
                    return ctx.err("name", format!("expected a string, got {}", other.kind()))
                }
                None => return ctx.err("name", "is required"),
            };
            if name == "default" {
                return ctx.err("name", "\"default\" is reserved for the [default] table");
            }
            if seen_names.contains(&name) {
                return ctx.err("name", format!("{name:?} is used by an earlier rule"));
            }
            seen_names.push(name);
            ctx.rule = Some(RuleRef::Name(name.to_owned()));
            let priority = get(fields, "priority")
                .map(|v| ctx.int("priority", v))
                .transpose()?
                .unwrap_or(0);
            let when = match get(fields, "when") {
                Some(v) => compile_when(&ctx, v)?,
                None => compile_when(&ctx, &Value::Map(Vec::new()))?,
            };
            let then = match get(fields, "then") {
                Some(v) => compile_then(&ctx, "then", v, &mut names, &mut ids)?,
                None => return ctx.err("then", "is required"),
            };
            compiled.push((priority, index, name.to_owned(), when, then));
        }
        let default = match get(entries, "default") {
            Some(v) => {
                let ctx = Ctx {
                    rule: Some(RuleRef::Name("default".into())),
                };
                compile_then(&ctx, "default", v, &mut names, &mut ids)?
            }
            None => {
                return top.err(
                    "default",
                    "is required: the [default] table says where unmatched payments go",
                )
            }
        };

        compiled.sort_by_key(|(p, i, _, _, _)| (*p, *i));
        let words = compiled.len().div_ceil(64).max(1);
        let mut currency = Vec::new();
        let mut brand = Vec::new();
        let mut card_type = Vec::new();
        let mut country = Vec::new();
        let mut merchant = Vec::new();
        let mut rules = Vec::new();
        let mut no_residual = vec![0u64; words];
        for (i, (_, _, name, when, then)) in compiled.into_iter().enumerate() {
            let rule = Rule {
                name,
                residual: when.residual,
                then,
            };
            currency.push(when.currency);
            brand.push(when.brand);
            card_type.push(when.card_type);
            country.push(when.country);
            merchant.push(when.merchant);
            if rule.residual.is_empty() {
                no_residual[i / 64] |= 1 << (i % 64);
            }
            rules.push(rule);
        }
        Ok(RuleSet {
            utc_offset_seconds: utc_offset_minutes as f64 * 60.0,
            words,
            currency: build_index(&currency, words, Case::Upper),
            brand: build_index(&brand, words, Case::Lower),
            card_type: build_index(&card_type, words, Case::Lower),
            country: build_index(&country, words, Case::Upper),
            merchant: build_index(&merchant, words, Case::Exact),
            no_residual,
            rules,
            default,
            connector_names: names,
        })
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Rule names in evaluation order (priority, then file order).
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.name.as_str())
    }

    /// Every connector named by a rule or the default, in order of first appearance.
    pub fn connector_names(&self) -> &[String] {
        &self.connector_names
    }

    /// The first matching rule (or the default) and its ordered connectors. `metadata(key, want)`
    /// says whether the payment's metadata has `key` equal to `want`; it is called only for rules
    /// that survive every other condition.
    pub fn evaluate<M: FnMut(&str, &str) -> bool>(
        &self,
        p: &Payment<'_>,
        mut metadata: M,
    ) -> Decision {
        let sets = [
            self.currency.lookup(Some(p.currency)),
            self.brand.lookup(p.brand),
            self.card_type.lookup(p.card_type),
            self.country.lookup(p.country),
            self.merchant.lookup(p.merchant_id),
        ];
        let mut lazy = Lazy::default();
        #[allow(clippy::needless_range_loop)] // five bitsets indexed in lockstep
        for w in 0..self.words {
            let mut word = sets[0][w] & sets[1][w] & sets[2][w] & sets[3][w] & sets[4][w];
            while word != 0 {
                let bit = word.trailing_zeros() as usize;
                word &= word - 1;
                let i = w * 64 + bit;
                if self.no_residual[w] & (1 << bit) != 0
                    || self.residual_matches(&self.rules[i].residual, p, &mut lazy, &mut metadata)
                {
                    return self.decide(Some(i), &self.rules[i].then, p);
                }
            }
        }
        self.decide(None, &self.default, p)
    }

    fn residual_matches<M: FnMut(&str, &str) -> bool>(
        &self,
        r: &Residual,
        p: &Payment<'_>,
        lazy: &mut Lazy,
        metadata: &mut M,
    ) -> bool {
        if let Some((min, max)) = r.amount {
            if min.is_some_and(|m| p.amount < m) || max.is_some_and(|m| p.amount > m) {
                return false;
            }
        }
        if let Some(patterns) = &r.bin {
            let Some(bin) = p.bin else { return false };
            let prefixes = lazy.bin.get_or_insert_with(|| BinPrefixes::of(bin));
            if !patterns.iter().any(|pat| bin_matches(pat, bin, prefixes)) {
                return false;
            }
        }
        if let Some(t) = &r.time {
            let clock = *lazy.clock.get_or_insert_with(|| self.local_clock(p.now));
            if !time_matches(t, clock) {
                return false;
            }
        }
        if let Some(pairs) = &r.metadata {
            if !pairs.iter().all(|(k, v)| metadata(k, v)) {
                return false;
            }
        }
        true
    }

    /// (minute of the local day, day of the week with Monday = 0)
    fn local_clock(&self, now: f64) -> (u32, u32) {
        let local = now + self.utc_offset_seconds;
        let day = (local / 86400.0).floor();
        // clamped: float rounding at a day boundary must not produce minute -1 or 1440
        let minute = (((local - day * 86400.0) / 60.0).floor() as i64).clamp(0, 1439) as u32;
        // 1970-01-01 was a Thursday (Monday = 0); wrapping: no panic even for absurd times
        let dow = (day as i64).wrapping_add(3).rem_euclid(7) as u32;
        (minute, dow)
    }

    fn decide(&self, rule: Option<usize>, then: &Then, p: &Payment<'_>) -> Decision {
        let connectors = match then.strategy {
            Strategy::Split => split_order(then, p.payment_id),
            _ => then.connectors.clone(),
        };
        Decision {
            rule,
            strategy: then.strategy,
            connectors,
        }
    }
}

/// What a payment's residual checks compute at most once: BIN prefixes and the local clock.
#[derive(Default)]
struct Lazy {
    bin: Option<BinPrefixes>,
    clock: Option<(u32, u32)>,
}

/// The numeric value of the BIN's first 1..=12 digits (as far as they are digits).
struct BinPrefixes {
    digits: usize,
    values: [u64; 13],
}

impl BinPrefixes {
    fn of(bin: &str) -> BinPrefixes {
        let mut values = [0u64; 13];
        let mut digits = 0;
        for (i, b) in bin.bytes().take(12).enumerate() {
            if !b.is_ascii_digit() {
                break;
            }
            values[i + 1] = values[i] * 10 + u64::from(b - b'0');
            digits = i + 1;
        }
        BinPrefixes { digits, values }
    }
}

fn bin_matches(pat: &BinPattern, bin: &str, prefixes: &BinPrefixes) -> bool {
    match pat {
        BinPattern::Prefix(prefix) => bin.starts_with(prefix.as_str()),
        BinPattern::Range { len, lo, hi } => {
            *len <= prefixes.digits && (*lo..=*hi).contains(&prefixes.values[*len])
        }
    }
}

fn time_matches(t: &TimeCond, (minute, dow): (u32, u32)) -> bool {
    let day_in = |d: u32| t.days & (1 << d) != 0;
    if t.from < t.to {
        day_in(dow) && t.from <= minute && minute < t.to
    } else {
        // wraps midnight: the early-morning part belongs to the window that began the day before
        (minute >= t.from && day_in(dow)) || (minute < t.to && day_in((dow + 6) % 7))
    }
}

/// The connector the payment id hashes to (by cumulative weight, in config order) first, then the
/// others by weight, heaviest first (config order among equals) as fallbacks.
fn split_order(then: &Then, payment_id: &str) -> Vec<u16> {
    let pick = stable_hash(payment_id) % then.total_weight;
    let mut cumulative = 0u64;
    let mut chosen = 0;
    for (i, w) in then.weights.iter().enumerate() {
        cumulative += w;
        if pick < cumulative {
            chosen = i;
            break;
        }
    }
    let mut rest: Vec<usize> = (0..then.connectors.len())
        .filter(|&i| i != chosen)
        .collect();
    rest.sort_by(|&a, &b| then.weights[b].cmp(&then.weights[a]));
    let mut out = Vec::with_capacity(then.connectors.len());
    out.push(then.connectors[chosen]);
    out.extend(rest.into_iter().map(|i| then.connectors[i]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::Str(x.into())
    }
    fn list(xs: &[&str]) -> Value {
        Value::List(xs.iter().map(|x| s(x)).collect())
    }
    fn map(entries: Vec<(&str, Value)>) -> Value {
        Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        )
    }
    fn rule(name: &str, priority: i64, when: Value, connectors: &[&str]) -> Value {
        map(vec![
            ("name", s(name)),
            ("priority", Value::Int(priority)),
            ("when", when),
            ("then", map(vec![("connectors", list(connectors))])),
        ])
    }
    fn config(rules: Vec<Value>) -> Value {
        map(vec![
            ("rules", Value::List(rules)),
            (
                "default",
                map(vec![("connectors", list(&["stripe", "adyen"]))]),
            ),
        ])
    }
    fn pay() -> Payment<'static> {
        Payment {
            currency: "EUR",
            amount: 1000,
            brand: Some("visa"),
            card_type: Some("debit"),
            bin: Some("424242"),
            country: Some("DE"),
            merchant_id: Some("m_acme"),
            now: 0.0,
            payment_id: "pay_1",
        }
    }
    fn names(rs: &RuleSet, d: &Decision) -> (String, Vec<String>) {
        let rule = d
            .rule
            .map(|i| rs.rule_names().nth(i).unwrap().to_owned())
            .unwrap_or("default".into());
        (
            rule,
            d.connectors
                .iter()
                .map(|&c| rs.connector_names()[c as usize].clone())
                .collect(),
        )
    }
    fn eval(rs: &RuleSet, p: &Payment<'_>) -> String {
        names(rs, &rs.evaluate(p, |_, _| false)).0
    }
    fn compile_err(v: Value) -> RuleError {
        RuleSet::compile(&v).unwrap_err()
    }

    #[test]
    fn compile_errors_name_the_rule_and_the_field() {
        let e = compile_err(config(vec![rule(
            "r1",
            0,
            map(vec![("currncy", list(&["EUR"]))]),
            &["a"],
        )]));
        assert_eq!(e.rule, Some(RuleRef::Name("r1".into())));
        assert_eq!(e.field, "when.currncy");
        assert!(
            e.to_string().contains("r1") && e.to_string().contains("when.currncy"),
            "{e}"
        );

        let e = compile_err(config(vec![
            rule("ok", 0, map(vec![]), &["a"]),
            map(vec![("priority", Value::Int(1))]),
        ]));
        assert_eq!(
            (e.rule, e.field.as_str()),
            (Some(RuleRef::Index(1)), "name")
        );

        let e = compile_err(config(vec![rule(
            "r",
            0,
            map(vec![(
                "amount",
                map(vec![("min", Value::Int(9)), ("max", Value::Int(1))]),
            )]),
            &["a"],
        )]));
        assert_eq!(e.field, "when.amount");
        let e = compile_err(config(vec![rule(
            "r",
            0,
            map(vec![("bin", list(&["4242-51"]))]),
            &["a"],
        )]));
        assert_eq!(e.field, "when.bin");
        let e = compile_err(config(vec![rule(
            "r",
            0,
            map(vec![("card_type", list(&["gold"]))]),
            &["a"],
        )]));
        assert_eq!(e.field, "when.card_type");
        let e = compile_err(config(vec![rule(
            "r",
            0,
            map(vec![(
                "time",
                map(vec![("from", s("25:00")), ("to", s("02:00"))]),
            )]),
            &["a"],
        )]));
        assert_eq!(e.field, "when.time.from");
        let e = compile_err(config(vec![rule(
            "r",
            0,
            map(vec![("currency", Value::Int(3))]),
            &["a"],
        )]));
        assert_eq!(e.field, "when.currency");
        let e = compile_err(map(vec![
            ("rules", Value::List(vec![])),
            ("defualt", map(vec![])),
        ]));
        assert_eq!((e.rule, e.field.as_str()), (None, "defualt"));
        let e = compile_err(map(vec![("rules", Value::List(vec![]))]));
        assert_eq!(e.field, "default");
        let split = map(vec![
            ("name", s("sp")),
            (
                "then",
                map(vec![
                    ("strategy", s("split")),
                    ("connectors", list(&["a", "b"])),
                    ("weights", map(vec![("a", Value::Int(1))])),
                ]),
            ),
        ]);
        let e = compile_err(config(vec![split]));
        assert_eq!(
            (e.rule, e.field.as_str()),
            (Some(RuleRef::Name("sp".into())), "then.weights")
        );
        let e = compile_err(config(vec![
            rule("x", 0, map(vec![]), &["a"]),
            rule("x", 0, map(vec![]), &["b"]),
        ]));
        assert_eq!(e.field, "name");
        let e = compile_err(config(vec![rule(
            "x",
            0,
            map(vec![("metadata", map(vec![("channel", Value::Int(1))]))]),
            &["a"],
        )]));
        assert_eq!(e.field, "when.metadata.channel");
    }

    #[test]
    fn each_condition_filters() {
        let rs = RuleSet::compile(&config(vec![
            rule("cur", 0, map(vec![("currency", list(&["usd"]))]), &["a"]),
            rule(
                "amt",
                1,
                map(vec![("amount", map(vec![("min", Value::Int(5000))]))]),
                &["a"],
            ),
            rule("brand", 2, map(vec![("brand", list(&["Amex"]))]), &["a"]),
            rule(
                "type",
                3,
                map(vec![("card_type", list(&["credit"]))]),
                &["a"],
            ),
            rule("bin", 4, map(vec![("bin", list(&["5"]))]), &["a"]),
            rule(
                "range",
                5,
                map(vec![("bin", list(&["510000-519999"]))]),
                &["a"],
            ),
            rule("country", 6, map(vec![("country", list(&["fr"]))]), &["a"]),
            rule(
                "merchant",
                7,
                map(vec![("merchant", list(&["m_other"]))]),
                &["a"],
            ),
            rule(
                "meta",
                8,
                map(vec![("metadata", map(vec![("channel", s("moto"))]))]),
                &["a"],
            ),
        ]))
        .unwrap();
        let base = pay();
        assert_eq!(eval(&rs, &base), "default");
        assert_eq!(
            eval(
                &rs,
                &Payment {
                    currency: "USD",
                    ..base
                }
            ),
            "cur"
        );
        assert_eq!(
            eval(
                &rs,
                &Payment {
                    currency: "usd",
                    ..base
                }
            ),
            "cur"
        );
        assert_eq!(
            eval(
                &rs,
                &Payment {
                    amount: 5000,
                    ..base
                }
            ),
            "amt"
        );
        assert_eq!(
            eval(
                &rs,
                &Payment {
                    amount: 4999,
                    ..base
                }
            ),
            "default"
        );
        assert_eq!(
            eval(
                &rs,
                &Payment {
                    brand: Some("amex"),
                    ..base
                }
            ),
            "brand"
        );
        assert_eq!(
            eval(
                &rs,
                &Payment {
                    card_type: Some("CREDIT"),
                    ..base
                }
            ),
            "type"
        );
        assert_eq!(
            eval(
                &rs,
                &Payment {
                    bin: Some("555555"),
                    ..base
                }
            ),
            "bin"
        );
        assert_eq!(
            eval(
                &rs,
                &Payment {
                    country: Some("FR"),
                    ..base
                }
            ),
            "country"
        );
        assert_eq!(
            eval(
                &rs,
                &Payment {
                    merchant_id: Some("m_other"),
                    ..base
                }
            ),
            "merchant"
        );
        let d = rs.evaluate(&base, |k, v| k == "channel" && v == "moto");
        assert_eq!(names(&rs, &d).0, "meta");
        // a missing attribute never matches a condition on it
        assert_eq!(
            eval(
                &rs,
                &Payment {
                    card_type: None,
                    brand: None,
                    bin: None,
                    country: None,
                    ..base
                }
            ),
            "default"
        );
    }

    #[test]
    fn bin_ranges_compare_equal_length_prefixes() {
        let rs = RuleSet::compile(&config(vec![rule(
            "range",
            0,
            map(vec![("bin", list(&["510000-519999", "2221-2720"]))]),
            &["a"],
        )]))
        .unwrap();
        for (bin, hit) in [
            ("510000", true),
            ("51999912", true),
            ("520000", false),
            ("5100", false),
            ("2221", true),
            ("27209999", true),
            ("2721", false),
        ] {
            assert_eq!(
                eval(
                    &rs,
                    &Payment {
                        bin: Some(bin),
                        ..pay()
                    }
                ) == "range",
                hit,
                "{bin}"
            );
        }
    }

    #[test]
    fn priority_orders_rules_and_ties_keep_file_order() {
        let rs = RuleSet::compile(&config(vec![
            rule("late", 20, map(vec![]), &["a"]),
            rule(
                "first-10",
                10,
                map(vec![("currency", list(&["EUR"]))]),
                &["b"],
            ),
            rule("second-10", 10, map(vec![]), &["c"]),
        ]))
        .unwrap();
        assert_eq!(eval(&rs, &pay()), "first-10");
        assert_eq!(
            eval(
                &rs,
                &Payment {
                    currency: "GBP",
                    ..pay()
                }
            ),
            "second-10"
        );
        assert_eq!(
            rs.rule_names().collect::<Vec<_>>(),
            vec!["first-10", "second-10", "late"]
        );
        assert_eq!(rs.connector_names(), &["a", "b", "c", "stripe", "adyen"]);
    }

    #[test]
    fn default_applies_when_nothing_matches() {
        let rs = RuleSet::compile(&config(vec![])).unwrap();
        let d = rs.evaluate(&pay(), |_, _| false);
        assert_eq!(
            names(&rs, &d),
            (
                "default".to_owned(),
                vec!["stripe".to_owned(), "adyen".to_owned()]
            )
        );
        assert_eq!(d.strategy, Strategy::Priority);
    }

    #[test]
    fn many_rules_use_several_bitset_words() {
        let mut rules: Vec<Value> = (0..150)
            .map(|i| {
                rule(
                    &format!("r{i}"),
                    i,
                    map(vec![("merchant", list(&[&format!("m{i}")]))]),
                    &["a"],
                )
            })
            .collect();
        rules.push(rule(
            "gbp",
            200,
            map(vec![("currency", list(&["GBP"]))]),
            &["b"],
        ));
        let rs = RuleSet::compile(&config(rules)).unwrap();
        assert_eq!(
            eval(
                &rs,
                &Payment {
                    merchant_id: Some("m130"),
                    ..pay()
                }
            ),
            "r130"
        );
        assert_eq!(
            eval(
                &rs,
                &Payment {
                    merchant_id: Some("zzz"),
                    currency: "GBP",
                    ..pay()
                }
            ),
            "gbp"
        );
    }

    #[test]
    fn split_is_deterministic_per_payment_and_follows_weights() {
        let split = map(vec![
            ("name", s("sp")),
            (
                "then",
                map(vec![
                    ("strategy", s("split")),
                    (
                        "weights",
                        map(vec![
                            ("adyen", Value::Int(70)),
                            ("stripe", Value::Int(20)),
                            ("checkout", Value::Int(10)),
                        ]),
                    ),
                ]),
            ),
        ]);
        let rs = RuleSet::compile(&config(vec![split])).unwrap();
        let mut counts = [0usize; 3];
        let n = 20_000;
        for i in 0..n {
            let id = format!("pay_{i}");
            let p = Payment {
                payment_id: &id,
                ..pay()
            };
            let d1 = rs.evaluate(&p, |_, _| false);
            assert_eq!(d1, rs.evaluate(&p, |_, _| false));
            assert_eq!(d1.strategy, Strategy::Split);
            let (_, order) = names(&rs, &d1);
            assert_eq!(order.len(), 3);
            let first = order[0].as_str();
            counts[["adyen", "stripe", "checkout"]
                .iter()
                .position(|c| *c == first)
                .unwrap()] += 1;
            let rest: Vec<&str> = order[1..].iter().map(|x| x.as_str()).collect();
            let expected: Vec<&str> = ["adyen", "stripe", "checkout"]
                .into_iter()
                .filter(|c| *c != first)
                .collect();
            assert_eq!(rest, expected, "fallbacks by weight");
        }
        for (c, share) in counts.iter().zip([0.7, 0.2, 0.1]) {
            let got = *c as f64 / n as f64;
            assert!((got - share).abs() < 0.015, "{got} vs {share}");
        }
    }

    #[test]
    fn time_windows_wrap_midnight_in_local_time() {
        // Friday 22:00 to 02:00 local, local = UTC+01:00
        let cfg = map(vec![
            ("utc_offset_minutes", Value::Int(60)),
            (
                "rules",
                Value::List(vec![rule(
                    "night",
                    0,
                    map(vec![(
                        "time",
                        map(vec![
                            ("days", list(&["fri"])),
                            ("from", s("22:00")),
                            ("to", s("02:00")),
                        ]),
                    )]),
                    &["a"],
                )]),
            ),
            ("default", map(vec![("connectors", list(&["b"]))])),
        ]);
        let rs = RuleSet::compile(&cfg).unwrap();
        // 2024-01-05 is a Friday; 2024-01-05T00:00:00Z = 1704412800
        let fri = 1_704_412_800.0;
        let at = |h: f64, m: f64| fri + h * 3600.0 + m * 60.0 - 3600.0; // local time -> UTC
        let check = |t: f64| eval(&rs, &Payment { now: t, ..pay() });
        assert_eq!(check(at(21.0, 59.0)), "default");
        assert_eq!(check(at(22.0, 0.0)), "night");
        assert_eq!(check(at(23.0, 59.0)), "night");
        assert_eq!(
            check(at(24.0 + 1.0, 59.0)),
            "night",
            "Saturday 01:59 belongs to Friday's window"
        );
        assert_eq!(check(at(24.0 + 2.0, 0.0)), "default");
        assert_eq!(
            check(at(1.0, 0.0)),
            "default",
            "Friday 01:00 belongs to Thursday's window"
        );
        assert_eq!(
            check(at(24.0 + 22.0, 30.0)),
            "default",
            "not on Saturday evening"
        );
    }

    #[test]
    fn stable_hash_is_pinned() {
        // mirrored by python/paymux/reference/rules.py: changing it moves every split payment
        assert_eq!(stable_hash("pay_1"), 0xc0cb_6090_80ec_3532);
        assert_ne!(stable_hash("pay_1"), stable_hash("pay_2"));
    }
}
