//! Card data: PAN normalization, Luhn, brand from IIN ranges, length rules, BIN, masking, expiry.
//!
//! Semantics (mirrored exactly by `python/paymux/reference/card.py`):
//!
//! - **Input**: ASCII spaces and dashes are stripped (`"4242 4242-4242 4242"`); any other non-digit
//!   character makes the number invalid. A PAN has 12 to 19 digits.
//! - **Order of checks** in [`validate`]: `invalid_number` (non-digit, length outside 12..=19), then
//!   `luhn_failed`, then `unsupported_brand` (no IIN range matches), then
//!   `invalid_length_for_brand`.
//! - **Brand**: the [`IIN_TABLE`] rows are `(range_start, range_end, prefix_len, brand)`; a row matches
//!   when the first `prefix_len` digits, read as a number, fall in `range_start..=range_end`. The
//!   matching row with the **longest prefix wins**, whatever its position in the table.
//! - **622126–622925** (UnionPay cards that the Discover network also accepts under the
//!   UnionPay/Discover reciprocity agreement) are reported as `unionpay`: the card is issued under a
//!   UnionPay BIN and PSPs (Stripe, Braintree's `credit-card-type`) label it so; Discover
//!   acceptance is a network-routing fact, not the card's brand. The range has its own row so the
//!   decision is visible and pinned by tests.
//! - **BIN**: 8 digits when the PAN has 16 or more digits (the networks moved to 8-digit BINs in
//!   2022 for 16+ digit PANs), else 6.
//! - **Mask**: the first 6 and the last 4 digits, `*` in between, the length kept
//!   (`424242******4242`). Never more than BIN(6) + last 4, even where the BIN is 8 digits.
//! - **Expiry**: month 1..=12; a year below 100 is two-digit and means 2000 + year, a year in
//!   1000..=9999 is taken as is, anything else is `invalid_expiry`. A card is valid through the
//!   last day of its expiry month, so it is expired only if (year, month) is before the caller's
//!   current (year, month). There is no clock in here: the caller passes "now".
//!
//! Neither the PAN nor any part of it beyond the mask ever appears in an error or `Debug` output.

use core::fmt;

use zeroize::Zeroize;

/// Shortest and longest PAN accepted at all (maestro 12, most brands up to 19).
pub const MIN_PAN_LEN: usize = 12;
pub const MAX_PAN_LEN: usize = 19;

/// Card brands paymux recognizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Brand {
    Visa,
    Mastercard,
    Amex,
    Discover,
    Jcb,
    Diners,
    UnionPay,
    Maestro,
}

impl Brand {
    pub const ALL: [Brand; 8] = [
        Brand::Visa,
        Brand::Mastercard,
        Brand::Amex,
        Brand::Discover,
        Brand::Jcb,
        Brand::Diners,
        Brand::UnionPay,
        Brand::Maestro,
    ];

    /// The lowercase name used on the API and in routing rules.
    pub fn as_str(self) -> &'static str {
        match self {
            Brand::Visa => "visa",
            Brand::Mastercard => "mastercard",
            Brand::Amex => "amex",
            Brand::Discover => "discover",
            Brand::Jcb => "jcb",
            Brand::Diners => "diners",
            Brand::UnionPay => "unionpay",
            Brand::Maestro => "maestro",
        }
    }

    /// PAN lengths the brand issues.
    pub fn valid_lengths(self) -> &'static [usize] {
        match self {
            Brand::Visa => &[13, 16, 19],
            Brand::Mastercard => &[16],
            Brand::Amex => &[15],
            Brand::Discover | Brand::Jcb | Brand::UnionPay => &[16, 17, 18, 19],
            Brand::Diners => &[14, 15, 16, 17, 18, 19],
            Brand::Maestro => &[12, 13, 14, 15, 16, 17, 18, 19],
        }
    }

    pub fn accepts_length(self, len: usize) -> bool {
        self.valid_lengths().contains(&len)
    }
}

impl fmt::Display for Brand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One IIN range: the first `prefix_len` digits, read as a number, in `start..=end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IinRange {
    pub start: u32,
    pub end: u32,
    pub prefix_len: u8,
    pub brand: Brand,
}

const fn iin(start: u32, end: u32, prefix_len: u8, brand: Brand) -> IinRange {
    IinRange {
        start,
        end,
        prefix_len,
        brand,
    }
}

/// The IIN table. Order does not matter: the longest matching prefix wins.
pub const IIN_TABLE: &[IinRange] = &[
    iin(4, 4, 1, Brand::Visa),
    iin(51, 55, 2, Brand::Mastercard),
    iin(2221, 2720, 4, Brand::Mastercard),
    iin(34, 34, 2, Brand::Amex),
    iin(37, 37, 2, Brand::Amex),
    iin(6011, 6011, 4, Brand::Discover),
    iin(644, 649, 3, Brand::Discover),
    iin(65, 65, 2, Brand::Discover),
    iin(3528, 3589, 4, Brand::Jcb),
    iin(300, 305, 3, Brand::Diners),
    iin(3095, 3095, 4, Brand::Diners),
    iin(36, 36, 2, Brand::Diners),
    iin(38, 39, 2, Brand::Diners),
    iin(62, 62, 2, Brand::UnionPay),
    // UnionPay/Discover co-branded: reported as unionpay (see the module docs).
    iin(622126, 622925, 6, Brand::UnionPay),
    iin(50, 50, 2, Brand::Maestro),
    iin(56, 58, 2, Brand::Maestro),
    iin(6304, 6304, 4, Brand::Maestro),
    iin(6759, 6759, 4, Brand::Maestro),
    iin(6761, 6763, 4, Brand::Maestro),
    iin(676770, 676770, 6, Brand::Maestro),
    iin(676774, 676774, 6, Brand::Maestro),
];

/// Machine-readable reasons a card is refused. The messages never contain card data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CardError {
    InvalidNumber,
    LuhnFailed,
    UnsupportedBrand,
    InvalidLengthForBrand,
    InvalidExpiry,
    ExpiredCard,
}

impl CardError {
    pub fn code(self) -> &'static str {
        match self {
            CardError::InvalidNumber => "invalid_number",
            CardError::LuhnFailed => "luhn_failed",
            CardError::UnsupportedBrand => "unsupported_brand",
            CardError::InvalidLengthForBrand => "invalid_length_for_brand",
            CardError::InvalidExpiry => "invalid_expiry",
            CardError::ExpiredCard => "expired_card",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            CardError::InvalidNumber => {
                "card number must be 12 to 19 digits (spaces and dashes allowed)"
            }
            CardError::LuhnFailed => "card number failed the Luhn check",
            CardError::UnsupportedBrand => "card number does not belong to a supported brand",
            CardError::InvalidLengthForBrand => "card number length is not valid for its brand",
            CardError::InvalidExpiry => "expiry month must be 1-12 and year two or four digits",
            CardError::ExpiredCard => "card has expired",
        }
    }
}

impl fmt::Display for CardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message())
    }
}

impl std::error::Error for CardError {}

/// A normalized PAN: 12..=19 ASCII digits held inline, wiped on drop, masked in `Debug`.
#[derive(Clone)]
pub struct Pan {
    digits: [u8; MAX_PAN_LEN],
    len: u8,
}

impl Pan {
    /// Strip spaces and dashes; require 12..=19 digits and nothing else.
    pub fn parse(number: &str) -> Result<Pan, CardError> {
        let mut digits = [0u8; MAX_PAN_LEN];
        let mut len = 0usize;
        for &b in number.as_bytes() {
            match b {
                b'0'..=b'9' => {
                    if len == MAX_PAN_LEN {
                        digits.zeroize();
                        return Err(CardError::InvalidNumber);
                    }
                    digits[len] = b;
                    len += 1;
                }
                b' ' | b'-' => {}
                _ => {
                    digits.zeroize();
                    return Err(CardError::InvalidNumber);
                }
            }
        }
        if len < MIN_PAN_LEN {
            digits.zeroize();
            return Err(CardError::InvalidNumber);
        }
        Ok(Pan {
            digits,
            len: len as u8,
        })
    }

    /// The digits, as ASCII bytes.
    pub fn digits(&self) -> &[u8] {
        &self.digits[..self.len as usize]
    }

    /// The digits as a `&str`. Handle with care: this is the full PAN.
    pub fn expose(&self) -> &str {
        // Only ASCII digits are ever stored.
        core::str::from_utf8(self.digits()).unwrap_or_default()
    }

    #[allow(clippy::len_without_is_empty)] // never empty: at least MIN_PAN_LEN digits
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn luhn_valid(&self) -> bool {
        luhn_digits(self.digits())
    }

    pub fn brand(&self) -> Option<Brand> {
        brand_of_digits(self.digits())
    }

    /// 8 digits for a PAN of 16 or more digits, else 6.
    pub fn bin(&self) -> &str {
        let n = bin_len(self.len());
        &self.expose()[..n]
    }

    pub fn last4(&self) -> &str {
        &self.expose()[self.len() - 4..]
    }

    /// First 6, `*` for the middle, last 4; the length kept.
    pub fn masked(&self) -> String {
        let d = self.expose();
        let n = self.len();
        let mut out = String::with_capacity(n);
        out.push_str(&d[..6]);
        out.extend(core::iter::repeat_n('*', n - 10));
        out.push_str(&d[n - 4..]);
        out
    }
}

impl Drop for Pan {
    fn drop(&mut self) {
        self.digits.zeroize();
    }
}

impl fmt::Debug for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pan({})", self.masked())
    }
}

/// BIN length for a PAN of `pan_len` digits.
pub fn bin_len(pan_len: usize) -> usize {
    if pan_len >= 16 {
        8
    } else {
        6
    }
}

fn luhn_digits(digits: &[u8]) -> bool {
    if digits.is_empty() {
        return false;
    }
    let mut sum = 0u32;
    for (i, &b) in digits.iter().rev().enumerate() {
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum.is_multiple_of(10)
}

/// Luhn check on a number, spaces and dashes stripped. False for empty or non-digit input.
pub fn luhn_valid(number: &str) -> bool {
    let mut sum = 0u32;
    let mut count = 0usize;
    for &b in number.as_bytes().iter().rev() {
        match b {
            b'0'..=b'9' => {
                let mut d = u32::from(b - b'0');
                if count % 2 == 1 {
                    d *= 2;
                    if d > 9 {
                        d -= 9;
                    }
                }
                // Reduce as we go so arbitrarily long input cannot overflow.
                sum = (sum + d) % 10;
                count += 1;
            }
            b' ' | b'-' => {}
            _ => return false,
        }
    }
    count > 0 && sum == 0
}

/// Brand by longest-prefix match over `table`; `digits` are ASCII digits.
pub fn brand_in_table(table: &[IinRange], digits: &[u8]) -> Option<Brand> {
    let mut best: Option<&IinRange> = None;
    for row in table {
        let n = row.prefix_len as usize;
        if digits.len() < n {
            continue;
        }
        let prefix = digits[..n]
            .iter()
            .fold(0u32, |acc, &b| acc * 10 + u32::from(b - b'0'));
        if prefix >= row.start
            && prefix <= row.end
            && best.is_none_or(|b| row.prefix_len > b.prefix_len)
        {
            best = Some(row);
        }
    }
    best.map(|r| r.brand)
}

fn brand_of_digits(digits: &[u8]) -> Option<Brand> {
    brand_in_table(IIN_TABLE, digits)
}

/// Brand of a number (spaces and dashes stripped) from its IIN, whatever its length or Luhn
/// status; `None` if no range matches or the input has other non-digit characters.
pub fn card_brand(number: &str) -> Option<Brand> {
    // Only the first 6 digits matter to the table.
    let mut prefix = [0u8; 6];
    let mut len = 0usize;
    for &b in number.as_bytes() {
        match b {
            b'0'..=b'9' => {
                if len < prefix.len() {
                    prefix[len] = b;
                }
                len += 1;
            }
            b' ' | b'-' => {}
            _ => return None,
        }
    }
    let brand = brand_of_digits(&prefix[..len.min(prefix.len())]);
    prefix.zeroize();
    brand
}

/// What may be known about a card outside the vault.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CardInfo {
    pub brand: Brand,
    pub length: u8,
    bin: [u8; 8],
    bin_len: u8,
    last4: [u8; 4],
}

impl CardInfo {
    pub fn bin(&self) -> &str {
        core::str::from_utf8(&self.bin[..self.bin_len as usize]).unwrap_or_default()
    }

    pub fn last4(&self) -> &str {
        core::str::from_utf8(&self.last4).unwrap_or_default()
    }
}

impl fmt::Debug for CardInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardInfo")
            .field("brand", &self.brand)
            .field("bin", &self.bin())
            .field("last4", &self.last4())
            .field("length", &self.length)
            .finish()
    }
}

/// Full validation of a parsed PAN: Luhn, brand, brand length.
pub fn validate_pan(pan: &Pan) -> Result<CardInfo, CardError> {
    if !pan.luhn_valid() {
        return Err(CardError::LuhnFailed);
    }
    let brand = pan.brand().ok_or(CardError::UnsupportedBrand)?;
    if !brand.accepts_length(pan.len()) {
        return Err(CardError::InvalidLengthForBrand);
    }
    let d = pan.digits();
    let n = bin_len(pan.len());
    let mut bin = [0u8; 8];
    bin[..n].copy_from_slice(&d[..n]);
    let mut last4 = [0u8; 4];
    last4.copy_from_slice(&d[d.len() - 4..]);
    Ok(CardInfo {
        brand,
        length: pan.len() as u8,
        bin,
        bin_len: n as u8,
        last4,
    })
}

/// Parse and validate a card number.
pub fn validate(number: &str) -> Result<CardInfo, CardError> {
    validate_pan(&Pan::parse(number)?)
}

/// Masked form of a number (see the module docs); `invalid_number` unless 12..=19 digits.
pub fn mask_pan(number: &str) -> Result<String, CardError> {
    Ok(Pan::parse(number)?.masked())
}

/// BIN of a number (6 or 8 digits); `invalid_number` unless 12..=19 digits.
pub fn card_bin(number: &str) -> Result<String, CardError> {
    Ok(Pan::parse(number)?.bin().to_owned())
}

/// The caller's current year and month, so expiry checks need no clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct YearMonth {
    year: i64,
    month: i64,
}

impl YearMonth {
    /// `None` unless year is four digits and month 1..=12.
    pub fn new(year: i64, month: i64) -> Option<YearMonth> {
        if (1000..=9999).contains(&year) && (1..=12).contains(&month) {
            Some(YearMonth { year, month })
        } else {
            None
        }
    }

    pub fn year(self) -> i64 {
        self.year
    }

    pub fn month(self) -> i64 {
        self.month
    }
}

/// A normalized expiry: month 1..=12, four-digit year.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expiry {
    pub month: u8,
    pub year: u16,
}

/// Normalize and check an expiry against the caller's current month.
pub fn check_expiry(exp_month: i64, exp_year: i64, now: YearMonth) -> Result<Expiry, CardError> {
    if !(1..=12).contains(&exp_month) {
        return Err(CardError::InvalidExpiry);
    }
    let year = match exp_year {
        0..=99 => 2000 + exp_year,
        1000..=9999 => exp_year,
        _ => return Err(CardError::InvalidExpiry),
    };
    if (year, exp_month) < (now.year, now.month) {
        return Err(CardError::ExpiredCard);
    }
    Ok(Expiry {
        month: exp_month as u8,
        year: year as u16,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Published test numbers (Stripe, Adyen, Braintree docs) and the brand each must resolve to.
    pub(crate) const GOLDEN: &[(&str, Brand)] = &[
        ("4242424242424242", Brand::Visa),
        ("4000056655665556", Brand::Visa),
        ("4111111111111111", Brand::Visa),
        ("4000000000000002", Brand::Visa),
        ("4000000000009995", Brand::Visa),
        ("5555555555554444", Brand::Mastercard),
        ("2223003122003222", Brand::Mastercard),
        ("5200828282828210", Brand::Mastercard),
        ("5105105105105100", Brand::Mastercard),
        ("378282246310005", Brand::Amex),
        ("371449635398431", Brand::Amex),
        ("6011111111111117", Brand::Discover),
        ("3056930009020004", Brand::Diners),
        ("36227206271667", Brand::Diners),
        ("3566002020360505", Brand::Jcb),
        ("6200000000000005", Brand::UnionPay),
    ];

    /// Complete `prefix` to `len` digits with zeros and a Luhn check digit (synthetic, never real).
    pub(crate) fn luhn_complete(prefix: &str, len: usize) -> String {
        let mut s = String::from(prefix);
        while s.len() < len - 1 {
            s.push('0');
        }
        for check in 0..10u8 {
            let candidate = format!("{s}{check}");
            if luhn_valid(&candidate) {
                return candidate;
            }
        }
        unreachable!("one check digit always satisfies Luhn")
    }

    fn brand(number: &str) -> Option<Brand> {
        card_brand(number)
    }

    #[test]
    fn golden_numbers_validate_to_their_brand() {
        for &(number, expected) in GOLDEN {
            let info = validate(number).unwrap_or_else(|e| panic!("{expected}: {e}"));
            assert_eq!(info.brand, expected, "brand of a {expected} test number");
            assert_eq!(usize::from(info.length), number.len());
            assert_eq!(info.last4(), &number[number.len() - 4..]);
        }
    }

    #[test]
    fn mastercard_2_series_range_edges() {
        assert_eq!(brand("2220990000000000"), None);
        assert_eq!(brand("2221000000000000"), Some(Brand::Mastercard));
        assert_eq!(brand("2720990000000000"), Some(Brand::Mastercard));
        assert_eq!(brand("2721000000000000"), None);
        assert_eq!(brand("5099999999999999"), Some(Brand::Maestro));
        assert_eq!(brand("5100000000000000"), Some(Brand::Mastercard));
        assert_eq!(brand("5599999999999999"), Some(Brand::Mastercard));
        assert_eq!(brand("5600000000000000"), Some(Brand::Maestro));
    }

    #[test]
    fn co_branded_unionpay_discover_range_is_unionpay() {
        assert_eq!(brand("6221250000000000"), Some(Brand::UnionPay));
        assert_eq!(brand("6221260000000000"), Some(Brand::UnionPay));
        assert_eq!(brand("6229250000000000"), Some(Brand::UnionPay));
        assert_eq!(brand("6229260000000000"), Some(Brand::UnionPay));
    }

    #[test]
    fn discover_ranges() {
        assert_eq!(brand("6011000000000000"), Some(Brand::Discover));
        assert_eq!(brand("6010000000000000"), None);
        assert_eq!(brand("6012000000000000"), None);
        assert_eq!(brand("6439999999999999"), None);
        assert_eq!(brand("6440000000000000"), Some(Brand::Discover));
        assert_eq!(brand("6499999999999999"), Some(Brand::Discover));
        assert_eq!(brand("6500000000000000"), Some(Brand::Discover));
    }

    #[test]
    fn amex_jcb_diners_maestro_ranges() {
        assert_eq!(brand("340000000000000"), Some(Brand::Amex));
        assert_eq!(brand("370000000000000"), Some(Brand::Amex));
        assert_eq!(brand("350000000000000"), None);
        assert_eq!(brand("3527000000000000"), None);
        assert_eq!(brand("3528000000000000"), Some(Brand::Jcb));
        assert_eq!(brand("3589000000000000"), Some(Brand::Jcb));
        assert_eq!(brand("3590000000000000"), None);
        assert_eq!(brand("30000000000000"), Some(Brand::Diners));
        assert_eq!(brand("30500000000000"), Some(Brand::Diners));
        assert_eq!(brand("30600000000000"), None);
        assert_eq!(brand("30950000000000"), Some(Brand::Diners));
        assert_eq!(brand("30960000000000"), None);
        assert_eq!(brand("38000000000000"), Some(Brand::Diners));
        assert_eq!(brand("6304000000000000"), Some(Brand::Maestro));
        assert_eq!(brand("6759000000000000"), Some(Brand::Maestro));
        assert_eq!(brand("6762000000000000"), Some(Brand::Maestro));
        assert_eq!(brand("6767700000000000"), Some(Brand::Maestro));
        assert_eq!(brand("6767740000000000"), Some(Brand::Maestro));
        assert_eq!(brand("6767710000000000"), None);
    }

    #[test]
    fn longest_prefix_wins_regardless_of_table_order() {
        let short_first = [
            iin(62, 62, 2, Brand::UnionPay),
            iin(622126, 622925, 6, Brand::Discover),
        ];
        let long_first = [
            iin(622126, 622925, 6, Brand::Discover),
            iin(62, 62, 2, Brand::UnionPay),
        ];
        for table in [&short_first[..], &long_first[..]] {
            assert_eq!(
                brand_in_table(table, b"6221260000000000"),
                Some(Brand::Discover)
            );
            assert_eq!(
                brand_in_table(table, b"6200000000000000"),
                Some(Brand::UnionPay)
            );
        }
    }

    #[test]
    fn iin_table_has_no_ambiguous_rows() {
        // Two rows with the same prefix length must not overlap, or the winner would depend on
        // table order.
        for (i, a) in IIN_TABLE.iter().enumerate() {
            assert!(a.start <= a.end);
            assert_eq!(a.start.to_string().len(), a.prefix_len as usize);
            assert_eq!(a.end.to_string().len(), a.prefix_len as usize);
            for b in &IIN_TABLE[i + 1..] {
                if a.prefix_len == b.prefix_len {
                    assert!(a.end < b.start || b.end < a.start, "{a:?} overlaps {b:?}");
                }
            }
        }
    }

    #[test]
    fn luhn_rejects_a_single_changed_digit() {
        assert!(luhn_valid("4242424242424242"));
        assert!(!luhn_valid("4242424242424243"));
        assert!(luhn_valid("4242 4242-4242 4242"));
        assert!(!luhn_valid(""));
        assert!(!luhn_valid(" - "));
        assert!(!luhn_valid("4242x24242424242"));
        assert!(luhn_valid("0"));
    }

    #[test]
    fn validation_error_order_and_codes() {
        assert_eq!(validate("4242").unwrap_err(), CardError::InvalidNumber);
        assert_eq!(
            validate("42424242424242424242").unwrap_err(),
            CardError::InvalidNumber
        );
        assert_eq!(
            validate("4242.4242.4242.4242").unwrap_err(),
            CardError::InvalidNumber
        );
        assert_eq!(
            validate("４２４２424242424242").unwrap_err(),
            CardError::InvalidNumber
        );
        assert_eq!(
            validate("4242424242424241").unwrap_err(),
            CardError::LuhnFailed
        );
        assert_eq!(
            validate(&luhn_complete("9", 16)).unwrap_err(),
            CardError::UnsupportedBrand
        );
        assert_eq!(
            validate(&luhn_complete("37", 16)).unwrap_err(),
            CardError::InvalidLengthForBrand
        );
        assert_eq!(
            validate(&luhn_complete("4", 14)).unwrap_err(),
            CardError::InvalidLengthForBrand
        );
        assert!(validate(&luhn_complete("4", 13)).is_ok());
        assert!(validate(&luhn_complete("4", 19)).is_ok());
        assert!(validate(&luhn_complete("50", 12)).is_ok());
        assert!(validate("4242 4242 4242 4242").is_ok());
        assert!(validate("4242-4242-4242-4242").is_ok());
    }

    #[test]
    fn brand_length_rules() {
        for brand in Brand::ALL {
            for &len in brand.valid_lengths() {
                assert!((MIN_PAN_LEN..=MAX_PAN_LEN).contains(&len));
            }
        }
        assert_eq!(Brand::Amex.valid_lengths(), &[15]);
        assert!(!Brand::Mastercard.accepts_length(19));
    }

    #[test]
    fn bin_is_eight_digits_from_sixteen_digits_on() {
        assert_eq!(card_bin("4242424242424242").unwrap(), "42424242");
        assert_eq!(card_bin("378282246310005").unwrap(), "378282");
        assert_eq!(card_bin("36227206271667").unwrap(), "362272");
        let info = validate("5555555555554444").unwrap();
        assert_eq!(info.bin(), "55555555");
        assert_eq!(info.last4(), "4444");
    }

    #[test]
    fn masking_shows_at_most_six_and_four() {
        assert_eq!(mask_pan("4242424242424242").unwrap(), "424242******4242");
        assert_eq!(mask_pan("378282246310005").unwrap(), "378282*****0005");
        assert_eq!(mask_pan("4242 4242 4242 4242").unwrap(), "424242******4242");
        assert_eq!(mask_pan("500000000000").unwrap(), "500000**0000");
        assert_eq!(mask_pan("12345").unwrap_err(), CardError::InvalidNumber);
        let long = luhn_complete("6", 19);
        let masked = mask_pan(&long).unwrap();
        assert_eq!(masked.len(), 19);
        assert_eq!(masked.matches('*').count(), 9);
    }

    #[test]
    fn expiry_normalizes_two_digit_years_and_rejects_past_months() {
        let now = YearMonth::new(2026, 5).unwrap();
        assert_eq!(
            check_expiry(5, 26, now).unwrap(),
            Expiry {
                month: 5,
                year: 2026
            }
        );
        assert_eq!(
            check_expiry(12, 2030, now).unwrap(),
            Expiry {
                month: 12,
                year: 2030
            }
        );
        assert_eq!(check_expiry(4, 2026, now), Err(CardError::ExpiredCard));
        assert_eq!(check_expiry(12, 25, now), Err(CardError::ExpiredCard));
        assert_eq!(check_expiry(0, 2030, now), Err(CardError::InvalidExpiry));
        assert_eq!(check_expiry(13, 2030, now), Err(CardError::InvalidExpiry));
        assert_eq!(check_expiry(1, 202, now), Err(CardError::InvalidExpiry));
        assert_eq!(check_expiry(1, -1, now), Err(CardError::InvalidExpiry));
        assert_eq!(check_expiry(1, 10000, now), Err(CardError::InvalidExpiry));
        assert!(YearMonth::new(26, 5).is_none());
        assert!(YearMonth::new(2026, 13).is_none());
    }

    #[test]
    fn debug_output_never_shows_the_pan() {
        let pan = Pan::parse("4000056655665556").unwrap();
        let dbg = format!("{pan:?}");
        assert!(!dbg.contains("4000056655665556"));
        assert!(dbg.contains("400005******5556"));
        let info = validate("4000056655665556").unwrap();
        assert!(!format!("{info:?}").contains("4000056655665556"));
        for number in [
            "4000056655665557",
            "40000566556655x6",
            "400005665566555612345",
        ] {
            let err = validate(number).unwrap_err();
            assert!(!err.to_string().contains(number));
            assert!(!format!("{err:?}").contains(number));
        }
    }
}
