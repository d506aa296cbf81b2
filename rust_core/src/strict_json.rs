//! Strict JSON pre-check for request bodies: invalid UTF-8 and duplicate object keys.
//!
//! A JSON decoder that keeps the last of two equal keys (msgspec, orjson, Python's json) lets
//! `{"amount": 1, "amount": 100000}` mean whatever the last parser in a chain decides. The gateway
//! refuses such bodies. This scanner walks the document once, without building it, and reports the
//! first duplicate key (with its dotted path), invalid UTF-8, or nesting deeper than
//! [`MAX_DEPTH`]. Keys are compared after unescaping, so `"\u0061mount"` duplicates `"amount"`.
//!
//! It is not the validating parser: a syntax error is reported as [`Issue::Syntax`] and the caller
//! lets its decoder produce the precise message. It never panics and never recurses deeper than
//! [`MAX_DEPTH`], whatever the input.

/// Deeper documents are refused: no request body of the API nests this far.
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issue {
    InvalidUtf8,
    /// The dotted path of the repeated key (`payment_method.card.number`; array items by index).
    DuplicateKey(String),
    TooDeep,
    Syntax,
}

impl Issue {
    pub fn code(&self) -> &'static str {
        match self {
            Issue::InvalidUtf8 => "invalid_utf8",
            Issue::DuplicateKey(_) => "duplicate_key",
            Issue::TooDeep => "too_deep",
            Issue::Syntax => "invalid_json",
        }
    }
}

/// Check a body; `Ok(())` when it is valid UTF-8 and no object repeats a key.
pub fn check(body: &[u8]) -> Result<(), Issue> {
    if std::str::from_utf8(body).is_err() {
        return Err(Issue::InvalidUtf8);
    }
    let mut s = Scanner {
        b: body,
        i: 0,
        path: Vec::new(),
    };
    s.ws();
    s.value(0)?;
    s.ws();
    if s.i != s.b.len() {
        return Err(Issue::Syntax);
    }
    Ok(())
}

enum Seg {
    Key(String),
    Index(usize),
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    path: Vec<Seg>,
}

/// An object's keys so far: a linear scan while small (request bodies have a handful per level).
enum Keys<'a> {
    Few(Vec<std::borrow::Cow<'a, [u8]>>),
    Many(std::collections::HashSet<std::borrow::Cow<'a, [u8]>>),
}

impl<'a> Keys<'a> {
    /// False if `k` was there already.
    fn insert(&mut self, k: std::borrow::Cow<'a, [u8]>) -> bool {
        match self {
            Keys::Few(v) => {
                if v.iter().any(|x| *x == k) {
                    return false;
                }
                if v.len() < 16 {
                    v.push(k);
                } else {
                    let mut set: std::collections::HashSet<_> = v.drain(..).collect();
                    set.insert(k);
                    *self = Keys::Many(set);
                }
                true
            }
            Keys::Many(set) => set.insert(k),
        }
    }
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(c) = self.peek() {
            if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<(), Issue> {
        if depth >= MAX_DEPTH {
            return Err(Issue::TooDeep);
        }
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(|_| ()),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.i;
                while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = self.peek() {
                    self.i += 1;
                }
                if self.i == start {
                    return Err(Issue::Syntax);
                }
                Ok(())
            }
            _ => Err(Issue::Syntax),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Issue> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(Issue::Syntax)
        }
    }

    fn object(&mut self, depth: usize) -> Result<(), Issue> {
        self.i += 1; // '{'
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        let mut keys = Keys::Few(Vec::new());
        loop {
            if self.peek() != Some(b'"') {
                return Err(Issue::Syntax);
            }
            let key = self.string()?;
            if !keys.insert(key.clone()) {
                return Err(Issue::DuplicateKey(self.dotted(&key)));
            }
            self.ws();
            if self.peek() != Some(b':') {
                return Err(Issue::Syntax);
            }
            self.i += 1;
            self.ws();
            self.path
                .push(Seg::Key(String::from_utf8_lossy(&key).into_owned()));
            let r = self.value(depth + 1);
            self.path.pop();
            r?;
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    self.ws();
                }
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(Issue::Syntax),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<(), Issue> {
        self.i += 1; // '['
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        let mut index = 0usize;
        loop {
            self.path.push(Seg::Index(index));
            let r = self.value(depth + 1);
            self.path.pop();
            r?;
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    self.ws();
                    index += 1;
                }
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(Issue::Syntax),
            }
        }
    }

    /// A string's content, unescaped only when it holds an escape (keys are compared unescaped).
    fn string(&mut self) -> Result<std::borrow::Cow<'a, [u8]>, Issue> {
        self.i += 1; // opening quote
        let start = self.i;
        let b = self.b;
        let mut escaped = false;
        loop {
            match b.get(self.i) {
                None => return Err(Issue::Syntax),
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    self.i += 2;
                }
                Some(c) if *c < 0x20 => return Err(Issue::Syntax),
                Some(_) => self.i += 1,
            }
        }
        if self.i > b.len() {
            return Err(Issue::Syntax);
        }
        let raw = &b[start..self.i];
        self.i += 1; // closing quote
        if !escaped {
            return Ok(std::borrow::Cow::Borrowed(raw));
        }
        unescape(raw).map(std::borrow::Cow::Owned)
    }

    fn dotted(&self, key: &[u8]) -> String {
        let mut out = String::new();
        for seg in &self.path {
            match seg {
                Seg::Key(k) => out.push_str(k),
                Seg::Index(i) => out.push_str(&i.to_string()),
            }
            out.push('.');
        }
        out.push_str(&String::from_utf8_lossy(key));
        out
    }
}

fn hex4(raw: &[u8], at: usize) -> Result<u32, Issue> {
    let digits = raw.get(at..at + 4).ok_or(Issue::Syntax)?;
    let text = std::str::from_utf8(digits).map_err(|_| Issue::Syntax)?;
    u32::from_str_radix(text, 16).map_err(|_| Issue::Syntax)
}

/// JSON string escapes to UTF-8 bytes. Lone surrogates become U+FFFD (they still compare equal
/// to themselves, which is all key comparison needs).
fn unescape(raw: &[u8]) -> Result<Vec<u8>, Issue> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let e = *raw.get(i + 1).ok_or(Issue::Syntax)?;
        i += 2;
        let ch = match e {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex4(raw, i)?;
                i += 4;
                let code = if (0xD800..0xDC00).contains(&hi)
                    && raw.get(i) == Some(&b'\\')
                    && raw.get(i + 1) == Some(&b'u')
                {
                    let lo = hex4(raw, i + 2)?;
                    if (0xDC00..0xE000).contains(&lo) {
                        i += 6;
                        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                    } else {
                        0xFFFD
                    }
                } else {
                    hi
                };
                char::from_u32(code).unwrap_or('\u{FFFD}')
            }
            _ => return Err(Issue::Syntax),
        };
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dup(s: &str) -> Option<String> {
        match check(s.as_bytes()) {
            Err(Issue::DuplicateKey(p)) => Some(p),
            _ => None,
        }
    }

    #[test]
    fn finds_duplicates_at_any_depth_with_their_path() {
        assert_eq!(check(br#"{"amount": 1, "currency": "EUR"}"#), Ok(()));
        assert_eq!(
            dup(r#"{"amount": 1, "amount": 100000}"#).as_deref(),
            Some("amount")
        );
        assert_eq!(
            dup(r#"{"payment_method": {"card": {"number": "1", "number": "2"}}}"#).as_deref(),
            Some("payment_method.card.number")
        );
        assert_eq!(
            dup(r#"[{"a": 1}, {"b": 1, "b": 2}]"#).as_deref(),
            Some("1.b")
        );
        assert_eq!(
            dup(r#"{"\u0061mount": 1, "amount": 2}"#).as_deref(),
            Some("amount")
        );
        assert_eq!(dup(r#"{"a": {"x": 1}, "b": {"x": 1}}"#), None);
        let many: Vec<String> = (0..40).map(|i| format!("\"k{i}\": {i}")).collect();
        let body = format!("{{{}, \"k7\": 0}}", many.join(", "));
        assert_eq!(dup(&body).as_deref(), Some("k7"));
    }

    #[test]
    fn refuses_bad_utf8_depth_and_syntax() {
        assert_eq!(check(b"{\"a\": \"\xff\"}"), Err(Issue::InvalidUtf8));
        assert_eq!(check(&[b'['; 10_000]), Err(Issue::TooDeep));
        for bad in ["", "{", "{\"a\" 1}", "[1,]x", "\"abc", "{\"a\":1}}", "tru"] {
            assert!(check(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000)
        ))]

        /// Arbitrary bytes: never a panic, whatever the input.
        #[test]
        fn never_panics(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = check(&body);
        }

        /// JSON-ish text built from the grammar's pieces: never a panic either.
        #[test]
        fn never_panics_on_jsonish(parts in proptest::collection::vec(
            prop_oneof![
                Just("{"), Just("}"), Just("["), Just("]"), Just(","), Just(":"),
                Just("\"a\""), Just("\"\\u00"), Just("\\"), Just("1"), Just("null"), Just(" ")
            ], 0..64)) {
            let _ = check(parts.concat().as_bytes());
        }

        /// An object with distinct keys passes; repeating any one of them is found.
        #[test]
        fn a_repeated_key_is_always_found(
            keys in proptest::collection::btree_set("[a-z]{1,6}", 1..30),
            pick in any::<prop::sample::Index>(),
        ) {
            let keys: Vec<String> = keys.into_iter().collect();
            let body: Vec<String> = keys.iter().map(|k| format!("\"{k}\": [1, {{\"x\": null}}]")).collect();
            let ok = format!("{{{}}}", body.join(","));
            prop_assert_eq!(check(ok.as_bytes()), Ok(()));
            let again = &keys[pick.index(keys.len())];
            let bad = format!("{{{}, \"{again}\": 0}}", body.join(","));
            prop_assert_eq!(check(bad.as_bytes()), Err(Issue::DuplicateKey(again.clone())));
        }
    }
}
