//! Health windows and circuit breakers: per (connector, segment) outcome counters and latency
//! histograms over a sliding time window and a sliding count window, and one breaker per connector.
//!
//! Time is always passed in (`now`, seconds) so tests are deterministic. The time window is a ring
//! of `round(window_seconds / bucket_seconds)` buckets addressed by `floor(now / bucket_seconds)`;
//! it only moves forward (a record or a query at a later bucket expires the buckets that fell out;
//! a late record whose bucket is still inside the window lands in that bucket, an older one is
//! dropped). The count window holds the last `count_window` attempts of a (connector, segment),
//! however old: a busy connector's count window covers its last few seconds, a rarely used one's
//! keeps the evidence that exploration paid for (the selector's estimates rely on it).
//!
//! *Forgetting.* With `evidence_half_life = H > 0` the selector does not read the count window's
//! raw counts but the weighted ones: an entry weighs `0.5^(age / H)`, where age is counted in
//! attempts recorded under that segment by *any* connector since (the segment's clock). A busy
//! connector's evidence stays fresh; a connector that lost the segment sees its old evidence fade
//! while the segment's payments go elsewhere, so its posterior widens, exploration re-tests it and
//! a recovered PSP wins the segment back. Measured in the segment's own attempts, not seconds, the
//! forgetting is the same at 1 or 100 payments per second. The weighted sums are kept
//! incrementally (decay on every push, the evicted entry's weight subtracted) and rebuilt exactly
//! every `count_window` pushes, so float drift stays bounded.
//!
//! The breaker is driven only by technical outcomes (`technical`, `timeout`); issuer declines are
//! a real answer from the PSP and count as successes for it (see decline-classes.md). When a
//! breaker closes after successful probes, the technical failures are dropped from that
//! connector's count windows: they described an outage that is over, and keeping them would keep
//! traffic away from a recovered PSP for minutes. (The time windows keep them, for monitoring.)

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

/// A small, fast, non-cryptographic hasher (FxHash) for the string-keyed maps of the hot path.
/// Keys are connector and segment names chosen by the operator, not attacker-controlled input.
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let v = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            self.hash = (self.hash.rotate_left(5) ^ v).wrapping_mul(FX_SEED);
        }
        for &b in chunks.remainder() {
            self.hash = (self.hash.rotate_left(5) ^ u64::from(b)).wrapping_mul(FX_SEED);
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.hash = (self.hash.rotate_left(5) ^ u64::from(i)).wrapping_mul(FX_SEED);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.hash = (self.hash.rotate_left(5) ^ i as u64).wrapping_mul(FX_SEED);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

pub type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// The normalized outcome of one attempt, as the health windows count it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Approved = 0,
    Hard = 1,
    FixData = 2,
    IssuerNotNow = 3,
    SoftRoute = 4,
    Technical = 5,
    Timeout = 6,
}

pub const OUTCOME_COUNT: usize = 7;
pub const OUTCOME_NAMES: [&str; OUTCOME_COUNT] = [
    "approved",
    "hard",
    "fix_data",
    "issuer_not_now",
    "soft_route",
    "technical",
    "timeout",
];

impl Outcome {
    pub fn parse(name: &str) -> Option<Outcome> {
        Some(match name {
            "approved" => Outcome::Approved,
            "hard" => Outcome::Hard,
            "fix_data" => Outcome::FixData,
            "issuer_not_now" => Outcome::IssuerNotNow,
            "soft_route" => Outcome::SoftRoute,
            "technical" => Outcome::Technical,
            "timeout" => Outcome::Timeout,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        OUTCOME_NAMES[self as usize]
    }
    /// No real answer from the PSP: the only breaker input.
    pub fn is_technical(self) -> bool {
        matches!(self, Outcome::Technical | Outcome::Timeout)
    }
}

// ---- latency histogram: log-spaced buckets, 4 per doubling (~19% wide) from 0.1 ms to ~62 s ----

pub const LATENCY_MIN_MS: f64 = 0.1;
pub const LATENCY_STEPS_PER_DOUBLING: f64 = 4.0;
/// Bucket 0 holds < 0.1 ms, bucket i in 1..=77 holds [0.1·2^((i-1)/4), 0.1·2^(i/4)) ms (bucket 77
/// ends at ~62.3 s), bucket 78 holds everything slower.
pub const LATENCY_BUCKETS: usize = 79;

pub fn latency_bucket(ms: f64) -> usize {
    if ms < LATENCY_MIN_MS {
        return 0;
    }
    let i = ((ms / LATENCY_MIN_MS).log2() * LATENCY_STEPS_PER_DOUBLING).floor() as i64 + 1;
    i.clamp(1, LATENCY_BUCKETS as i64 - 1) as usize
}

/// The upper edge of a latency bucket: what a percentile reports (conservative by < one bucket).
pub fn latency_bucket_upper_ms(i: usize) -> f64 {
    LATENCY_MIN_MS * 2f64.powf(i as f64 / LATENCY_STEPS_PER_DOUBLING)
}

fn percentile(hist: &[u32], total: u64, q: f64) -> Option<f64> {
    if total == 0 {
        return None;
    }
    let target = ((q * total as f64).ceil() as u64).max(1);
    let mut cumulative = 0u64;
    for (i, &c) in hist.iter().enumerate() {
        cumulative += u64::from(c);
        if cumulative >= target {
            return Some(latency_bucket_upper_ms(i));
        }
    }
    Some(latency_bucket_upper_ms(hist.len() - 1))
}

// ---- a ring of time buckets, each an array of K counters ----

#[derive(Clone, Debug)]
struct TimeRing<const K: usize> {
    head: i64,
    slots: Vec<[u32; K]>,
    total: [u32; K],
}

impl<const K: usize> TimeRing<K> {
    fn new(n: usize) -> Self {
        TimeRing {
            head: i64::MIN,
            slots: vec![[0; K]; n],
            total: [0; K],
        }
    }

    fn n(&self) -> i64 {
        self.slots.len() as i64
    }

    fn slot(&self, epoch: i64) -> usize {
        epoch.rem_euclid(self.n()) as usize
    }

    /// Move the newest bucket forward to `epoch`, expiring the buckets that leave the window.
    fn advance(&mut self, epoch: i64) {
        if self.head == i64::MIN {
            self.head = epoch;
            return;
        }
        if epoch <= self.head {
            return;
        }
        if epoch - self.head >= self.n() {
            self.clear();
        } else {
            for e in (self.head + 1)..=epoch {
                let s = self.slot(e);
                let old = std::mem::replace(&mut self.slots[s], [0; K]);
                for (t, o) in self.total.iter_mut().zip(old) {
                    *t -= o;
                }
            }
        }
        self.head = epoch;
    }

    /// Whether a bucket is inside the window that ends at the current head.
    fn live(&self, epoch: i64) -> bool {
        self.head == i64::MIN || epoch > self.head - self.n()
    }

    /// Count one event in the bucket of `epoch`; false when that bucket is already out of the window.
    fn add(&mut self, epoch: i64, counters: &[usize]) -> bool {
        self.advance(epoch);
        if !self.live(epoch) {
            return false;
        }
        let s = self.slot(epoch);
        for &k in counters {
            self.slots[s][k] += 1;
            self.total[k] += 1;
        }
        true
    }

    fn clear(&mut self) {
        for s in &mut self.slots {
            *s = [0; K];
        }
        self.total = [0; K];
    }
}

const WINDOW_COUNTERS: usize = OUTCOME_COUNT + LATENCY_BUCKETS;

/// The windows of one (connector, segment).
#[derive(Clone, Debug)]
struct SegmentWindow {
    time: TimeRing<WINDOW_COUNTERS>,
    /// the last `count_window` outcomes, each with the segment's clock when it was recorded
    recent: VecDeque<(Outcome, u64)>,
    recent_counts: [u32; OUTCOME_COUNT],
    /// weighted PSP evidence (successes, failures) as of the segment clock `decay_at`
    ws: f64,
    wf: f64,
    decay_at: u64,
    pushes: usize,
}

/// Whether an outcome says something about the PSP: Some(true) success, Some(false) failure.
fn psp_side(o: Outcome) -> Option<bool> {
    match o {
        Outcome::Approved => Some(true),
        Outcome::SoftRoute | Outcome::Technical | Outcome::Timeout => Some(false),
        _ => None,
    }
}

/// The weight of evidence `age` segment attempts old.
pub fn decay_weight(age: u64, half_life: f64) -> f64 {
    if half_life <= 0.0 || age == 0 {
        1.0
    } else {
        0.5f64.powf(age as f64 / half_life)
    }
}

impl SegmentWindow {
    fn new(n_buckets: usize, count_window: usize) -> Self {
        SegmentWindow {
            time: TimeRing::new(n_buckets),
            recent: VecDeque::with_capacity(count_window),
            recent_counts: [0; OUTCOME_COUNT],
            ws: 0.0,
            wf: 0.0,
            decay_at: 0,
            pushes: 0,
        }
    }

    fn record(
        &mut self,
        epoch: i64,
        outcome: Outcome,
        latency: usize,
        count_window: usize,
        clock: u64,
        half_life: f64,
    ) {
        if !self
            .time
            .add(epoch, &[outcome as usize, OUTCOME_COUNT + latency])
        {
            return;
        }
        let factor = decay_weight(clock.saturating_sub(self.decay_at), half_life);
        self.ws *= factor;
        self.wf *= factor;
        self.decay_at = clock;
        if self.recent.len() == count_window {
            if let Some((old, at)) = self.recent.pop_front() {
                self.recent_counts[old as usize] -= 1;
                let w = decay_weight(clock.saturating_sub(at), half_life);
                match psp_side(old) {
                    Some(true) => self.ws = (self.ws - w).max(0.0),
                    Some(false) => self.wf = (self.wf - w).max(0.0),
                    None => {}
                }
            }
        }
        self.recent.push_back((outcome, clock));
        self.recent_counts[outcome as usize] += 1;
        match psp_side(outcome) {
            Some(true) => self.ws += 1.0,
            Some(false) => self.wf += 1.0,
            None => {}
        }
        self.pushes += 1;
        if self.pushes >= count_window {
            self.rebuild(half_life);
        }
    }

    /// Recompute the weighted sums exactly from the count window (as of `decay_at`).
    fn rebuild(&mut self, half_life: f64) {
        self.pushes = 0;
        let (mut ws, mut wf) = (0.0, 0.0);
        for &(o, at) in &self.recent {
            let w = decay_weight(self.decay_at.saturating_sub(at), half_life);
            match psp_side(o) {
                Some(true) => ws += w,
                Some(false) => wf += w,
                None => {}
            }
        }
        self.ws = ws;
        self.wf = wf;
    }

    /// Weighted (successes, failures) as of the segment clock `clock`.
    fn evidence(&self, clock: u64, half_life: f64) -> (f64, f64) {
        let d = decay_weight(clock.saturating_sub(self.decay_at), half_life);
        (self.ws * d, self.wf * d)
    }

    fn advance(&mut self, epoch: i64) {
        self.time.advance(epoch);
    }

    /// Forget the technical failures in the count window (the breaker just closed).
    fn forgive_technical(&mut self, half_life: f64) {
        self.recent.retain(|(o, _)| !o.is_technical());
        self.recent_counts[Outcome::Technical as usize] = 0;
        self.recent_counts[Outcome::Timeout as usize] = 0;
        self.rebuild(half_life);
    }

    fn stats(&self) -> Stats {
        let mut counts = [0u64; OUTCOME_COUNT];
        let mut recent = [0u64; OUTCOME_COUNT];
        for k in 0..OUTCOME_COUNT {
            counts[k] = u64::from(self.time.total[k]);
            recent[k] = u64::from(self.recent_counts[k]);
        }
        let total: u64 = counts.iter().sum();
        let hist = &self.time.total[OUTCOME_COUNT..];
        Stats {
            window: WindowCounts::new(counts),
            count_window: WindowCounts::new(recent),
            latency_p50: percentile(hist, total, 0.50),
            latency_p95: percentile(hist, total, 0.95),
            latency_p99: percentile(hist, total, 0.99),
        }
    }
}

/// Outcome counts over one window and the rates derived from them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WindowCounts {
    pub counts: [u64; OUTCOME_COUNT],
}

impl WindowCounts {
    fn new(counts: [u64; OUTCOME_COUNT]) -> Self {
        WindowCounts { counts }
    }
    pub fn get(&self, o: Outcome) -> u64 {
        self.counts[o as usize]
    }
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
    /// approved / all attempts.
    pub fn approval_rate(&self) -> Option<f64> {
        let t = self.total();
        (t > 0).then(|| self.get(Outcome::Approved) as f64 / t as f64)
    }
    /// (technical + timeout) / all attempts.
    pub fn technical_rate(&self) -> Option<f64> {
        let t = self.total();
        (t > 0)
            .then(|| (self.get(Outcome::Technical) + self.get(Outcome::Timeout)) as f64 / t as f64)
    }
    /// The attempts that say something about the PSP: approved, soft_route, technical, timeout.
    /// `hard`, `fix_data` and `issuer_not_now` are the card's doing and would happen anywhere.
    pub fn psp_successes_failures(&self) -> (u64, u64) {
        let s = self.get(Outcome::Approved);
        let f = self.get(Outcome::SoftRoute)
            + self.get(Outcome::Technical)
            + self.get(Outcome::Timeout);
        (s, f)
    }
}

/// Statistics of one (connector, segment) at a point in time.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stats {
    pub window: WindowCounts,
    pub count_window: WindowCounts,
    pub latency_p50: Option<f64>,
    pub latency_p95: Option<f64>,
    pub latency_p99: Option<f64>,
}

// ---- circuit breaker ----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

#[derive(Clone, Debug)]
struct Breaker {
    state: BreakerState,
    consecutive: u32,
    /// [technical, total] per time bucket, over the same window as the outcome windows.
    ring: TimeRing<2>,
    opens: u32,
    open_until: f64,
    probes_granted: u32,
    probe_successes: u32,
    last_grant: f64,
}

impl Breaker {
    fn new(n_buckets: usize) -> Self {
        Breaker {
            state: BreakerState::Closed,
            consecutive: 0,
            ring: TimeRing::new(n_buckets),
            opens: 0,
            open_until: 0.0,
            probes_granted: 0,
            probe_successes: 0,
            last_grant: 0.0,
        }
    }

    /// Open → half-open once the open period has passed.
    fn refresh(&mut self, now: f64) {
        if self.state == BreakerState::Open && now >= self.open_until {
            self.state = BreakerState::HalfOpen;
            self.probes_granted = 0;
            self.probe_successes = 0;
            self.last_grant = now;
        }
    }

    fn allow(&mut self, now: f64, cfg: &HealthConfig) -> bool {
        self.refresh(now);
        match self.state {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen => {
                // A probe whose outcome never came back must not wedge the breaker half-open:
                // after one base open period without news, the missing slots are handed out again.
                if self.probes_granted >= cfg.breaker_half_open_probes
                    && now - self.last_grant >= cfg.breaker_open_seconds
                {
                    self.probes_granted = self.probe_successes;
                }
                if self.probes_granted < cfg.breaker_half_open_probes {
                    self.probes_granted += 1;
                    self.last_grant = now;
                    true
                } else {
                    false
                }
            }
        }
    }

    /// Feed one attempt; true when it closed the breaker.
    fn on_outcome(&mut self, epoch: i64, now: f64, technical: bool, cfg: &HealthConfig) -> bool {
        self.refresh(now);
        match self.state {
            BreakerState::Closed => {
                let counted = if technical {
                    self.ring.add(epoch, &[0, 1])
                } else {
                    self.ring.add(epoch, &[1])
                };
                if !technical {
                    self.consecutive = 0;
                    return false;
                }
                self.consecutive += 1;
                let [failures, total] = self.ring.total;
                let rate_trips = counted
                    && total >= cfg.breaker_min_volume
                    && f64::from(failures) / f64::from(total) >= cfg.breaker_failure_rate;
                if self.consecutive >= cfg.breaker_consecutive_failures || rate_trips {
                    self.trip(now, cfg);
                }
                false
            }
            // Attempts made while open (the all-open fallback) say nothing new: the open period runs.
            BreakerState::Open => false,
            BreakerState::HalfOpen => {
                if technical {
                    self.trip(now, cfg);
                    false
                } else {
                    self.probe_successes += 1;
                    if self.probe_successes >= cfg.breaker_half_open_probes {
                        self.close();
                        return true;
                    }
                    false
                }
            }
        }
    }

    fn trip(&mut self, now: f64, cfg: &HealthConfig) {
        self.opens = self.opens.saturating_add(1);
        let exponent = (self.opens - 1).min(62) as i32;
        let period =
            (cfg.breaker_open_seconds * 2f64.powi(exponent)).min(cfg.breaker_max_open_seconds);
        self.state = BreakerState::Open;
        self.open_until = now + period;
        self.consecutive = 0;
    }

    fn close(&mut self) {
        self.state = BreakerState::Closed;
        self.opens = 0;
        self.consecutive = 0;
        // The failures that opened it are history: judge the recovered PSP on what comes next.
        self.ring.clear();
    }
}

/// What the selector needs to know about a connector's breaker.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BreakerView {
    pub state: BreakerState,
    /// Seconds until an open breaker goes half-open (0 when not open).
    pub retry_in: f64,
}

// ---- the book ----

#[derive(Clone, Debug, PartialEq)]
pub struct HealthConfig {
    pub window_seconds: f64,
    pub bucket_seconds: f64,
    pub count_window: usize,
    pub breaker_consecutive_failures: u32,
    pub breaker_failure_rate: f64,
    pub breaker_min_volume: u32,
    pub breaker_open_seconds: f64,
    pub breaker_max_open_seconds: f64,
    pub breaker_half_open_probes: u32,
    /// Count-window evidence halves every this many attempts recorded under its segment (by any
    /// connector); 0: no forgetting beyond the count window.
    pub evidence_half_life: f64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            window_seconds: 60.0,
            bucket_seconds: 1.0,
            count_window: 200,
            breaker_consecutive_failures: 5,
            breaker_failure_rate: 0.5,
            breaker_min_volume: 20,
            breaker_open_seconds: 5.0,
            breaker_max_open_seconds: 60.0,
            breaker_half_open_probes: 3,
            evidence_half_life: 0.0,
        }
    }
}

/// A bad argument: the message says which and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthError(pub String);

impl fmt::Display for HealthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HealthError {}

fn err<T>(msg: impl Into<String>) -> Result<T, HealthError> {
    Err(HealthError(msg.into()))
}

impl HealthConfig {
    /// The number of time buckets: round(window_seconds / bucket_seconds), at least 1.
    pub fn n_buckets(&self) -> usize {
        ((self.window_seconds / self.bucket_seconds + 0.5).floor() as usize).max(1)
    }

    pub fn validate(&self) -> Result<(), HealthError> {
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                err(format!("{name} must be a positive finite number, got {v}"))
            }
        };
        positive("window_seconds", self.window_seconds)?;
        positive("bucket_seconds", self.bucket_seconds)?;
        positive("breaker_open_seconds", self.breaker_open_seconds)?;
        positive("breaker_max_open_seconds", self.breaker_max_open_seconds)?;
        if self.bucket_seconds < 0.001 {
            return err("bucket_seconds must be at least 0.001");
        }
        if self.bucket_seconds > self.window_seconds {
            return err("bucket_seconds must not exceed window_seconds");
        }
        if self.window_seconds / self.bucket_seconds > 100_000.0 {
            return err("window_seconds / bucket_seconds must be at most 100000 buckets");
        }
        if self.count_window == 0 || self.count_window > 1_000_000 {
            return err("count_window must be between 1 and 1000000");
        }
        if self.breaker_consecutive_failures == 0 {
            return err("breaker_consecutive_failures must be at least 1");
        }
        if !(self.breaker_failure_rate > 0.0 && self.breaker_failure_rate <= 1.0) {
            return err("breaker_failure_rate must be in (0, 1]");
        }
        if self.breaker_half_open_probes == 0 {
            return err("breaker_half_open_probes must be at least 1");
        }
        if self.breaker_max_open_seconds < self.breaker_open_seconds {
            return err("breaker_max_open_seconds must be at least breaker_open_seconds");
        }
        if !(self.evidence_half_life.is_finite() && self.evidence_half_life >= 0.0) {
            return err(format!(
                "evidence_half_life must be a finite number >= 0, got {}",
                self.evidence_half_life
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
struct ConnectorHealth {
    breaker: Breaker,
    segments: FxHashMap<String, SegmentWindow>,
}

/// One row of `HealthBook::snapshot`.
#[derive(Clone, Debug, PartialEq)]
pub struct SnapshotRow {
    pub connector: String,
    pub segment: String,
    pub breaker: BreakerState,
    pub stats: Stats,
}

/// All health windows and breakers. Not synchronized itself: the Python binding wraps it in a Mutex.
#[derive(Clone, Debug)]
pub struct HealthBook {
    cfg: HealthConfig,
    n_buckets: usize,
    connectors: FxHashMap<String, ConnectorHealth>,
    /// per segment: attempts recorded under it by any connector (the clock evidence ages by)
    clocks: FxHashMap<String, u64>,
}

/// The largest |now| accepted (year ~33,700): keeps bucket indices far from integer overflow.
pub const MAX_NOW: f64 = 1e12;

pub(crate) fn check_now(now: f64) -> Result<(), HealthError> {
    if now.is_finite() && now.abs() <= MAX_NOW {
        Ok(())
    } else {
        err(format!(
            "now must be unix seconds (finite, |now| <= 1e12), got {now:?}"
        ))
    }
}

impl HealthBook {
    pub fn new(cfg: HealthConfig) -> Result<Self, HealthError> {
        cfg.validate()?;
        Ok(HealthBook {
            n_buckets: cfg.n_buckets(),
            cfg,
            connectors: FxHashMap::default(),
            clocks: FxHashMap::default(),
        })
    }

    pub fn config(&self) -> &HealthConfig {
        &self.cfg
    }

    fn epoch(&self, now: f64) -> i64 {
        (now / self.cfg.bucket_seconds).floor() as i64
    }

    /// Record one attempt under each of `segments` (e.g. all levels "visa|DE|EUR", "visa|DE",
    /// "visa", "*"); the connector's breaker sees the attempt once.
    pub fn record(
        &mut self,
        connector: &str,
        segments: &[&str],
        outcome: Outcome,
        latency_ms: f64,
        now: f64,
    ) -> Result<(), HealthError> {
        check_now(now)?;
        if !(latency_ms.is_finite() && latency_ms >= 0.0) {
            return err(format!(
                "latency_ms must be a finite number >= 0, got {latency_ms}"
            ));
        }
        let epoch = self.epoch(now);
        let latency = latency_bucket(latency_ms);
        let n = self.n_buckets;
        let count_window = self.cfg.count_window;
        let half_life = self.cfg.evidence_half_life;
        let clocks = &mut self.clocks;
        let entry = match self.connectors.get_mut(connector) {
            Some(e) => e,
            None => self
                .connectors
                .entry(connector.to_owned())
                .or_insert_with(|| ConnectorHealth {
                    breaker: Breaker::new(n),
                    segments: FxHashMap::default(),
                }),
        };
        for &segment in segments {
            let clock = match clocks.get_mut(segment) {
                Some(c) => {
                    *c += 1;
                    *c
                }
                None => {
                    clocks.insert(segment.to_owned(), 1);
                    1
                }
            };
            let window = match entry.segments.get_mut(segment) {
                Some(w) => w,
                None => entry
                    .segments
                    .entry(segment.to_owned())
                    .or_insert_with(|| SegmentWindow::new(n, count_window)),
            };
            window.record(epoch, outcome, latency, count_window, clock, half_life);
        }
        let closed = entry
            .breaker
            .on_outcome(epoch, now, outcome.is_technical(), &self.cfg);
        if closed {
            for window in entry.segments.values_mut() {
                window.forgive_technical(half_life);
            }
        }
        Ok(())
    }

    pub fn stats(
        &mut self,
        connector: &str,
        segment: &str,
        now: f64,
    ) -> Result<Stats, HealthError> {
        check_now(now)?;
        let epoch = self.epoch(now);
        Ok(self
            .connectors
            .get_mut(connector)
            .and_then(|c| c.segments.get_mut(segment))
            .map(|w| {
                w.advance(epoch);
                w.stats()
            })
            .unwrap_or_default())
    }

    /// Count-window (successes, failures) that say something about the PSP, for the selector,
    /// each entry weighted by its age in the segment's attempts (`evidence_half_life`).
    pub fn psp_evidence(&mut self, connector: &str, segment: &str, _now: f64) -> (f64, f64) {
        match self
            .connectors
            .get(connector)
            .and_then(|c| c.segments.get(segment))
        {
            Some(w) => {
                let clock = self.clocks.get(segment).copied().unwrap_or(0);
                w.evidence(clock, self.cfg.evidence_half_life)
            }
            None => (0.0, 0.0),
        }
    }

    /// The segment's clock: attempts recorded under it by any connector.
    pub fn segment_clock(&self, segment: &str) -> u64 {
        self.clocks.get(segment).copied().unwrap_or(0)
    }

    /// Median latency of a (connector, segment) over the time window, for the selector.
    pub fn latency_p50(&mut self, connector: &str, segment: &str, now: f64) -> Option<f64> {
        let epoch = self.epoch(now);
        let w = self
            .connectors
            .get_mut(connector)
            .and_then(|c| c.segments.get_mut(segment))?;
        w.advance(epoch);
        let hist = &w.time.total[OUTCOME_COUNT..];
        let total: u64 = w.time.total[..OUTCOME_COUNT]
            .iter()
            .map(|&c| u64::from(c))
            .sum();
        percentile(hist, total, 0.5)
    }

    pub fn breaker_state(
        &mut self,
        connector: &str,
        now: f64,
    ) -> Result<BreakerState, HealthError> {
        check_now(now)?;
        Ok(self.breaker_view(connector, now).state)
    }

    pub fn breaker_view(&mut self, connector: &str, now: f64) -> BreakerView {
        match self.connectors.get_mut(connector) {
            Some(c) => {
                c.breaker.refresh(now);
                let retry_in = if c.breaker.state == BreakerState::Open {
                    (c.breaker.open_until - now).max(0.0)
                } else {
                    0.0
                };
                BreakerView {
                    state: c.breaker.state,
                    retry_in,
                }
            }
            None => BreakerView {
                state: BreakerState::Closed,
                retry_in: 0.0,
            },
        }
    }

    /// Whether a request may go to `connector` now. Half-open: hands out up to
    /// `breaker_half_open_probes` probe slots; the probes' outcomes decide close or reopen.
    pub fn allow_request(&mut self, connector: &str, now: f64) -> Result<bool, HealthError> {
        check_now(now)?;
        Ok(match self.connectors.get_mut(connector) {
            Some(c) => c.breaker.allow(now, &self.cfg),
            None => true,
        })
    }

    /// Every (connector, segment) with its breaker state and statistics, sorted by name.
    pub fn snapshot(&mut self, now: f64) -> Result<Vec<SnapshotRow>, HealthError> {
        check_now(now)?;
        let epoch = self.epoch(now);
        let mut rows = Vec::new();
        for (name, c) in self.connectors.iter_mut() {
            c.breaker.refresh(now);
            for (segment, w) in c.segments.iter_mut() {
                w.advance(epoch);
                rows.push(SnapshotRow {
                    connector: name.clone(),
                    segment: segment.clone(),
                    breaker: c.breaker.state,
                    stats: w.stats(),
                });
            }
        }
        rows.sort_by(|a, b| (&a.connector, &a.segment).cmp(&(&b.connector, &b.segment)));
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book() -> HealthBook {
        HealthBook::new(HealthConfig::default()).unwrap()
    }

    fn rec(b: &mut HealthBook, c: &str, o: Outcome, now: f64) {
        b.record(c, &["seg"], o, 10.0, now).unwrap();
    }

    #[test]
    fn counts_and_rates_over_the_time_window() {
        let mut b = book();
        for i in 0..6 {
            rec(&mut b, "a", Outcome::Approved, i as f64);
        }
        rec(&mut b, "a", Outcome::Technical, 6.0);
        rec(&mut b, "a", Outcome::IssuerNotNow, 7.0);
        let s = b.stats("a", "seg", 8.0).unwrap();
        assert_eq!(s.window.total(), 8);
        assert_eq!(s.window.get(Outcome::Approved), 6);
        assert_eq!(s.window.approval_rate(), Some(0.75));
        assert_eq!(s.window.technical_rate(), Some(0.125));
        assert_eq!(s.count_window.total(), 8);
    }

    #[test]
    fn window_slides_and_expires_old_buckets() {
        let mut b = book();
        rec(&mut b, "a", Outcome::Approved, 0.5);
        rec(&mut b, "a", Outcome::Hard, 30.2);
        assert_eq!(b.stats("a", "seg", 59.9).unwrap().window.total(), 2);
        // bucket 0 leaves the 60-bucket window when bucket 60 becomes the newest
        let s = b.stats("a", "seg", 60.0).unwrap();
        assert_eq!(s.window.total(), 1);
        assert_eq!(s.window.get(Outcome::Hard), 1);
        assert_eq!(
            s.count_window.total(),
            2,
            "the count window keeps the last N, however old"
        );
        assert_eq!(b.stats("a", "seg", 500.0).unwrap().window.total(), 0);
        assert_eq!(b.stats("a", "seg", 500.0).unwrap().count_window.total(), 2);
        assert_eq!(b.stats("a", "seg", 500.0).unwrap().latency_p50, None);
    }

    #[test]
    fn late_records_land_in_their_bucket_or_are_dropped() {
        let mut b = book();
        rec(&mut b, "a", Outcome::Approved, 100.0);
        rec(&mut b, "a", Outcome::Approved, 50.0); // inside (40, 100]
        rec(&mut b, "a", Outcome::Approved, 20.0); // too old: dropped
        assert_eq!(b.stats("a", "seg", 100.0).unwrap().window.total(), 2);
        assert_eq!(b.stats("a", "seg", 109.5).unwrap().window.total(), 2);
        assert_eq!(b.stats("a", "seg", 110.0).unwrap().window.total(), 1);
    }

    #[test]
    fn count_window_keeps_the_last_n_attempts() {
        let cfg = HealthConfig {
            count_window: 10,
            ..HealthConfig::default()
        };
        let mut b = HealthBook::new(cfg).unwrap();
        for i in 0..10 {
            b.record("a", &["s"], Outcome::SoftRoute, 5.0, i as f64 * 0.1)
                .unwrap();
        }
        for i in 0..4 {
            b.record("a", &["s"], Outcome::Approved, 5.0, 1.0 + i as f64 * 0.1)
                .unwrap();
        }
        let s = b.stats("a", "s", 2.0).unwrap();
        assert_eq!(s.window.total(), 14);
        assert_eq!(s.count_window.total(), 10);
        assert_eq!(s.count_window.get(Outcome::Approved), 4);
        assert_eq!(s.count_window.approval_rate(), Some(0.4));
    }

    #[test]
    fn percentiles_fall_within_one_bucket() {
        let mut b = book();
        for i in 1..=100 {
            b.record("a", &["s"], Outcome::Approved, i as f64, 1.0)
                .unwrap();
        }
        let s = b.stats("a", "s", 1.0).unwrap();
        let p50 = s.latency_p50.unwrap();
        let p95 = s.latency_p95.unwrap();
        let p99 = s.latency_p99.unwrap();
        assert!((50.0..=50.0 * 1.19 + 1e-9).contains(&p50), "{p50}");
        assert!((95.0..=95.0 * 1.19 + 1e-9).contains(&p95), "{p95}");
        assert!((99.0..=99.0 * 1.19 + 1e-9).contains(&p99), "{p99}");
        assert!(p50 <= p95 && p95 <= p99);
    }

    #[test]
    fn latency_buckets_cover_the_range() {
        assert_eq!(latency_bucket(0.0), 0);
        assert_eq!(latency_bucket(0.1), 1);
        assert_eq!(latency_bucket(60_000.0), 77);
        assert_eq!(latency_bucket(1e9), LATENCY_BUCKETS - 1);
        for i in 1..LATENCY_BUCKETS - 1 {
            let lo = latency_bucket_upper_ms(i - 1);
            assert!(latency_bucket(lo * 1.0001) == i, "bucket {i}");
        }
    }

    #[test]
    fn breaker_opens_on_consecutive_technical_failures_only() {
        let mut b = book();
        for i in 0..4 {
            rec(&mut b, "a", Outcome::Technical, i as f64 * 0.01);
        }
        // an issuer decline is a real answer: it resets the run
        rec(&mut b, "a", Outcome::Hard, 0.05);
        for i in 0..4 {
            rec(&mut b, "a", Outcome::Timeout, 0.1 + i as f64 * 0.01);
        }
        assert_eq!(b.breaker_state("a", 0.2).unwrap(), BreakerState::Closed);
        rec(&mut b, "a", Outcome::Technical, 0.2);
        assert_eq!(b.breaker_state("a", 0.2).unwrap(), BreakerState::Open);
        assert!(!b.allow_request("a", 1.0).unwrap());
        // issuer declines never open it
        let mut b = book();
        for i in 0..100 {
            rec(&mut b, "x", Outcome::IssuerNotNow, i as f64 * 0.01);
        }
        assert_eq!(b.breaker_state("x", 1.0).unwrap(), BreakerState::Closed);
    }

    #[test]
    fn breaker_opens_on_failure_rate_over_min_volume() {
        let mut b = book();
        // alternate: never 5 in a row, but 50% technical once 20 attempts are in the window
        for i in 0..19 {
            let o = if i % 2 == 0 {
                Outcome::Approved
            } else {
                Outcome::Technical
            };
            rec(&mut b, "a", o, i as f64 * 0.1);
        }
        assert_eq!(b.breaker_state("a", 2.0).unwrap(), BreakerState::Closed);
        rec(&mut b, "a", Outcome::Technical, 2.0); // 10 of 20
        assert_eq!(b.breaker_state("a", 2.0).unwrap(), BreakerState::Open);
    }

    #[test]
    fn half_open_hands_out_limited_probes_and_closes_after_successes() {
        let mut b = book();
        for _ in 0..5 {
            rec(&mut b, "a", Outcome::Technical, 10.0);
        }
        assert_eq!(b.breaker_state("a", 14.9).unwrap(), BreakerState::Open);
        assert_eq!(b.breaker_state("a", 15.0).unwrap(), BreakerState::HalfOpen);
        assert!(b.allow_request("a", 15.0).unwrap());
        assert!(b.allow_request("a", 15.0).unwrap());
        assert!(b.allow_request("a", 15.0).unwrap());
        assert!(!b.allow_request("a", 15.0).unwrap(), "only 3 probes");
        rec(&mut b, "a", Outcome::Approved, 15.1);
        rec(&mut b, "a", Outcome::SoftRoute, 15.1);
        assert_eq!(b.breaker_state("a", 15.2).unwrap(), BreakerState::HalfOpen);
        rec(&mut b, "a", Outcome::Approved, 15.2);
        assert_eq!(b.breaker_state("a", 15.2).unwrap(), BreakerState::Closed);
        assert!(b.allow_request("a", 15.3).unwrap());
    }

    #[test]
    fn closing_after_probes_forgives_the_outage_in_the_count_windows() {
        let mut b = book();
        for _ in 0..50 {
            rec(&mut b, "a", Outcome::Approved, 0.0);
        }
        rec(&mut b, "a", Outcome::SoftRoute, 0.0);
        for _ in 0..5 {
            rec(&mut b, "a", Outcome::Timeout, 1.0);
        }
        assert_eq!(b.stats("a", "seg", 1.0).unwrap().count_window.total(), 56);
        for _ in 0..3 {
            assert!(b.allow_request("a", 6.0).unwrap());
            rec(&mut b, "a", Outcome::Approved, 6.0);
        }
        assert_eq!(b.breaker_state("a", 6.0).unwrap(), BreakerState::Closed);
        let s = b.stats("a", "seg", 6.0).unwrap();
        assert_eq!(s.count_window.total(), 54);
        assert_eq!(s.count_window.get(Outcome::SoftRoute), 1);
        assert_eq!(
            s.window.get(Outcome::Timeout),
            5,
            "the time window still shows the outage"
        );
    }

    #[test]
    fn lost_probes_are_reissued_after_an_open_period() {
        let mut b = book();
        for _ in 0..5 {
            rec(&mut b, "a", Outcome::Technical, 0.0);
        }
        for _ in 0..3 {
            assert!(b.allow_request("a", 5.0).unwrap());
        }
        assert!(!b.allow_request("a", 9.9).unwrap());
        assert!(b.allow_request("a", 10.0).unwrap());
    }

    #[test]
    fn repeated_opens_back_off_exponentially_up_to_the_cap() {
        let mut b = book();
        for _ in 0..5 {
            rec(&mut b, "a", Outcome::Technical, 0.0);
        }
        let mut t = 0.0;
        for expected in [5.0, 10.0, 20.0, 40.0, 60.0, 60.0] {
            let v = b.breaker_view("a", t);
            assert_eq!(v.state, BreakerState::Open);
            assert!(
                (v.retry_in - expected).abs() < 1e-9,
                "{} vs {expected}",
                v.retry_in
            );
            t += expected;
            assert_eq!(b.breaker_state("a", t).unwrap(), BreakerState::HalfOpen);
            assert!(b.allow_request("a", t).unwrap());
            rec(&mut b, "a", Outcome::Timeout, t); // the probe fails: reopen, longer
        }
        // a successful half-open resets the back-off
        t += 60.0;
        for _ in 0..3 {
            assert!(b.allow_request("a", t).unwrap());
            rec(&mut b, "a", Outcome::Approved, t);
        }
        assert_eq!(b.breaker_state("a", t).unwrap(), BreakerState::Closed);
        for _ in 0..5 {
            rec(&mut b, "a", Outcome::Technical, t);
        }
        assert!((b.breaker_view("a", t).retry_in - 5.0).abs() < 1e-9);
    }

    #[test]
    fn one_record_feeds_every_segment_and_the_breaker_once() {
        let mut b = book();
        for _ in 0..4 {
            b.record("a", &["visa|DE", "visa", "*"], Outcome::Technical, 1.0, 0.0)
                .unwrap();
        }
        assert_eq!(b.stats("a", "visa", 0.0).unwrap().window.total(), 4);
        assert_eq!(b.stats("a", "*", 0.0).unwrap().window.total(), 4);
        assert_eq!(b.breaker_state("a", 0.0).unwrap(), BreakerState::Closed);
        assert_eq!(b.snapshot(0.0).unwrap().len(), 3);
    }

    #[test]
    fn bad_arguments_are_errors_not_panics() {
        assert!(HealthBook::new(HealthConfig {
            bucket_seconds: 0.0,
            ..HealthConfig::default()
        })
        .is_err());
        assert!(HealthBook::new(HealthConfig {
            breaker_failure_rate: 1.5,
            ..HealthConfig::default()
        })
        .is_err());
        let mut b = book();
        assert!(b.record("a", &["s"], Outcome::Approved, -1.0, 0.0).is_err());
        assert!(b
            .record("a", &["s"], Outcome::Approved, f64::NAN, 0.0)
            .is_err());
        assert!(b
            .record("a", &["s"], Outcome::Approved, 1.0, f64::INFINITY)
            .is_err());
        assert_eq!(Outcome::parse("approved"), Some(Outcome::Approved));
        assert_eq!(Outcome::parse("nope"), None);
    }
}
