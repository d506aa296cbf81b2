//! Vault crypto: AES-256-GCM records bound to tenant and token id, key rotation, keyed fingerprints.
//!
//! **Ciphertext format** (all integers big-endian):
//!
//! ```text
//! version (1 byte, = 1) | key_version (u32) | nonce (12 random bytes) | AES-256-GCM ciphertext + 16-byte tag
//! ```
//!
//! **Associated data** binds each record to where it belongs, so a record copied to another
//! tenant, another token or relabelled with another key version fails to decrypt:
//!
//! ```text
//! version | key_version (u32) | len(tenant) (u32) | tenant (UTF-8) | len(token_id) (u32) | token_id (UTF-8)
//! ```
//!
//! **Card record** (the plaintext [`Vault::tokenize`] encrypts): `1 | exp_month (u8) | exp_year
//! (u16) | PAN as ASCII digits`. The CVV is never part of it.
//!
//! **Keys**: a keyring `{version: 32-byte key}`; new records use the highest version, any version
//! in the ring decrypts, [`Vault::reencrypt`] moves a record to the highest. Nonces are random
//! (96 bits), so a key should be rotated well before 2^32 encryptions (NIST SP 800-38D).
//!
//! **Fingerprints**: `fp_` + hex(HMAC-SHA256(fingerprint_key, "paymux.fp.v1" | len(tenant) (u32)
//! | tenant | PAN digits)). Same card and tenant, same fingerprint; another tenant, another one;
//! not reversible without the key.
//!
//! **Token ids**: `tok_` + base58 of 16 bytes from the OS RNG; never derived from the PAN.
//!
//! Key schedules, HMAC state, PANs and decrypted plaintexts are zeroized on drop; nothing here
//! prints a key or a PAN (`Debug` is written by hand). No cryptography is written by hand: AES-GCM
//! and HMAC come from RustCrypto, randomness from `getrandom`.

use core::fmt;
use std::collections::BTreeMap;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::card::{self, CardError, CardInfo, Expiry, Pan, YearMonth};

/// First byte of every ciphertext.
pub const FORMAT_VERSION: u8 = 1;
/// First byte of a card record's plaintext.
const CARD_RECORD_VERSION: u8 = 1;
/// AES-256 key length, also required of the fingerprint key.
pub const KEY_LEN: usize = 32;
const HEADER_LEN: usize = 1 + 4;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Shortest possible ciphertext: header, nonce, tag, empty plaintext.
pub const MIN_CIPHERTEXT_LEN: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;
/// Upper bound on tenant and token id lengths (bytes), to keep associated data small.
pub const MAX_ID_LEN: usize = 256;
const FINGERPRINT_DOMAIN: &[u8] = b"paymux.fp.v1";

/// Machine-readable vault failures. Messages never contain key material or card data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VaultError {
    /// Authentication failed: wrong tenant, token id or key, or the ciphertext was altered.
    DecryptFailed,
    /// The ciphertext names a key version this keyring does not hold.
    UnknownKeyVersion(u32),
    /// A key is not 32 bytes, the keyring is empty, or the fingerprint key repeats a data key.
    InvalidKey(&'static str),
    /// Too short, unknown format version, or not a card record.
    InvalidCiphertext(&'static str),
    /// Tenant or token id empty or longer than [`MAX_ID_LEN`].
    InvalidArgument(&'static str),
    /// The OS random number generator failed.
    RandomUnavailable,
    /// The card itself was refused (tokenize, fingerprint).
    Card(CardError),
}

impl VaultError {
    pub fn code(&self) -> &'static str {
        match self {
            VaultError::DecryptFailed => "decrypt_failed",
            VaultError::UnknownKeyVersion(_) => "unknown_key_version",
            VaultError::InvalidKey(_) => "invalid_key",
            VaultError::InvalidCiphertext(_) => "invalid_ciphertext",
            VaultError::InvalidArgument(_) => "invalid_argument",
            VaultError::RandomUnavailable => "random_unavailable",
            VaultError::Card(e) => e.code(),
        }
    }

    pub fn message(&self) -> String {
        match self {
            VaultError::DecryptFailed => {
                "ciphertext does not authenticate for this tenant, token id and key".to_owned()
            }
            VaultError::UnknownKeyVersion(v) => format!("no key with version {v} in the keyring"),
            VaultError::InvalidKey(why)
            | VaultError::InvalidCiphertext(why)
            | VaultError::InvalidArgument(why) => (*why).to_owned(),
            VaultError::RandomUnavailable => "the OS random number generator failed".to_owned(),
            VaultError::Card(e) => e.message().to_owned(),
        }
    }
}

impl fmt::Display for VaultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message())
    }
}

impl std::error::Error for VaultError {}

impl From<CardError> for VaultError {
    fn from(e: CardError) -> Self {
        VaultError::Card(e)
    }
}

/// The result of tokenizing a card: everything that may leave the vault, plus the ciphertext.
#[derive(Clone, Debug)]
pub struct TokenizedCard {
    pub token_id: String,
    pub fingerprint: String,
    pub ciphertext: Vec<u8>,
    pub key_version: u32,
    pub info: CardInfo,
    pub expiry: Expiry,
}

/// A decrypted card record, for the way out to the PSP. `Debug` shows the masked PAN only.
#[derive(Clone, Debug)]
pub struct RevealedCard {
    pub pan: Pan,
    pub expiry: Expiry,
}

/// A keyring of AES-256-GCM keys by version plus the fingerprint key. Immutable: rotate by
/// building a new `Vault` with the extra key.
pub struct Vault {
    ciphers: BTreeMap<u32, Aes256Gcm>,
    active: u32,
    fingerprint_mac: Hmac<Sha256>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("key_versions", &self.key_versions())
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

fn check_id(value: &str, what: &'static str) -> Result<(), VaultError> {
    if value.is_empty() || value.len() > MAX_ID_LEN {
        Err(VaultError::InvalidArgument(what))
    } else {
        Ok(())
    }
}

fn header(key_version: u32) -> [u8; HEADER_LEN] {
    let v = key_version.to_be_bytes();
    [FORMAT_VERSION, v[0], v[1], v[2], v[3]]
}

fn associated_data(head: &[u8; HEADER_LEN], tenant: &str, token_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(HEADER_LEN + 8 + tenant.len() + token_id.len());
    aad.extend_from_slice(head);
    // Both lengths are bounded by MAX_ID_LEN (checked by every caller), so they fit in a u32.
    aad.extend_from_slice(&(tenant.len() as u32).to_be_bytes());
    aad.extend_from_slice(tenant.as_bytes());
    aad.extend_from_slice(&(token_id.len() as u32).to_be_bytes());
    aad.extend_from_slice(token_id.as_bytes());
    aad
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    s
}

fn random_fill(buf: &mut [u8]) -> Result<(), VaultError> {
    getrandom::fill(buf).map_err(|_| VaultError::RandomUnavailable)
}

/// A fresh token id: `tok_` + base58 of 16 random bytes.
pub fn new_token_id() -> Result<String, VaultError> {
    let mut raw = [0u8; 16];
    random_fill(&mut raw)?;
    Ok(token_id_from(&raw))
}

fn token_id_from(raw: &[u8; 16]) -> String {
    let mut id = String::with_capacity(4 + 22);
    id.push_str("tok_");
    id.push_str(&bs58::encode(raw).into_string());
    id
}

/// The key version a ciphertext was written with, without decrypting it.
pub fn key_version_of(ciphertext: &[u8]) -> Result<u32, VaultError> {
    if ciphertext.len() < MIN_CIPHERTEXT_LEN {
        return Err(VaultError::InvalidCiphertext("ciphertext is too short"));
    }
    if ciphertext[0] != FORMAT_VERSION {
        return Err(VaultError::InvalidCiphertext(
            "ciphertext has an unknown format version",
        ));
    }
    let mut v = [0u8; 4];
    v.copy_from_slice(&ciphertext[1..HEADER_LEN]);
    Ok(u32::from_be_bytes(v))
}

impl Vault {
    /// Build a vault from `(version, key)` pairs and a fingerprint key; every key is 32 bytes.
    pub fn new<'k>(
        keys: impl IntoIterator<Item = (u32, &'k [u8])>,
        fingerprint_key: &[u8],
    ) -> Result<Vault, VaultError> {
        if fingerprint_key.len() != KEY_LEN {
            return Err(VaultError::InvalidKey("fingerprint key must be 32 bytes"));
        }
        let mut ciphers = BTreeMap::new();
        for (version, key) in keys {
            if key.len() != KEY_LEN {
                return Err(VaultError::InvalidKey("every data key must be 32 bytes"));
            }
            if key == fingerprint_key {
                return Err(VaultError::InvalidKey(
                    "the fingerprint key must differ from every data key",
                ));
            }
            let cipher = Aes256Gcm::new_from_slice(key)
                .map_err(|_| VaultError::InvalidKey("every data key must be 32 bytes"))?;
            ciphers.insert(version, cipher);
        }
        let active = *ciphers
            .keys()
            .next_back()
            .ok_or(VaultError::InvalidKey("the keyring is empty"))?;
        let fingerprint_mac = <Hmac<Sha256> as KeyInit>::new_from_slice(fingerprint_key)
            .map_err(|_| VaultError::InvalidKey("fingerprint key must be 32 bytes"))?;
        Ok(Vault {
            ciphers,
            active,
            fingerprint_mac,
        })
    }

    /// The version new records are written with: the highest in the ring.
    pub fn active_key_version(&self) -> u32 {
        self.active
    }

    pub fn key_versions(&self) -> Vec<u32> {
        self.ciphers.keys().copied().collect()
    }

    /// Encrypt `plaintext` for `(tenant, token_id)` under the active key.
    pub fn encrypt(
        &self,
        tenant: &str,
        token_id: &str,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        check_id(tenant, "tenant must be 1 to 256 bytes")?;
        check_id(token_id, "token id must be 1 to 256 bytes")?;
        let mut nonce = [0u8; NONCE_LEN];
        random_fill(&mut nonce)?;
        self.encrypt_with_nonce(tenant, token_id, plaintext, nonce)
    }

    fn encrypt_with_nonce(
        &self,
        tenant: &str,
        token_id: &str,
        plaintext: &[u8],
        nonce: [u8; NONCE_LEN],
    ) -> Result<Vec<u8>, VaultError> {
        let cipher = &self.ciphers[&self.active];
        let head = header(self.active);
        let aad = associated_data(&head, tenant, token_id);
        let body_start = HEADER_LEN + NONCE_LEN;
        let mut out = Vec::with_capacity(body_start + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&head);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let nonce = Nonce::from(nonce);
        let sealed = cipher.encrypt_inout_detached(&nonce, &aad, (&mut out[body_start..]).into());
        match sealed {
            Ok(tag) => {
                // Capacity was reserved for the tag: no reallocation leaves a copy behind.
                out.extend_from_slice(&tag);
                Ok(out)
            }
            // Only for plaintexts beyond GCM's 64 GiB limit; the buffer still holds plaintext.
            Err(_) => {
                out.zeroize();
                Err(VaultError::InvalidArgument("plaintext is too long"))
            }
        }
    }

    /// Decrypt a ciphertext written for `(tenant, token_id)` under any key in the ring.
    pub fn decrypt(
        &self,
        tenant: &str,
        token_id: &str,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        check_id(tenant, "tenant must be 1 to 256 bytes")?;
        check_id(token_id, "token id must be 1 to 256 bytes")?;
        let version = key_version_of(ciphertext)?;
        let cipher = self
            .ciphers
            .get(&version)
            .ok_or(VaultError::UnknownKeyVersion(version))?;
        let mut head = [0u8; HEADER_LEN];
        head.copy_from_slice(&ciphertext[..HEADER_LEN]);
        let aad = associated_data(&head, tenant, token_id);
        let body_start = HEADER_LEN + NONCE_LEN;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&ciphertext[HEADER_LEN..body_start]);
        let nonce = Nonce::from(nonce);
        let mut buffer = Zeroizing::new(ciphertext[body_start..].to_vec());
        cipher
            .decrypt_in_place(&nonce, &aad, &mut *buffer)
            .map_err(|_| VaultError::DecryptFailed)?;
        Ok(buffer)
    }

    /// Move a record to the active key (fresh nonce), after authenticating it.
    pub fn reencrypt(
        &self,
        tenant: &str,
        token_id: &str,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        let plaintext = self.decrypt(tenant, token_id, ciphertext)?;
        self.encrypt(tenant, token_id, &plaintext)
    }

    /// Tenant-scoped keyed fingerprint of a parsed PAN.
    pub fn fingerprint_pan(&self, tenant: &str, pan: &Pan) -> Result<String, VaultError> {
        check_id(tenant, "tenant must be 1 to 256 bytes")?;
        let mut mac = self.fingerprint_mac.clone();
        mac.update(FINGERPRINT_DOMAIN);
        mac.update(&(tenant.len() as u32).to_be_bytes());
        mac.update(tenant.as_bytes());
        mac.update(pan.digits());
        let mut digest: [u8; 32] = mac.finalize().into_bytes().into();
        let mut fp = String::with_capacity(3 + 64);
        fp.push_str("fp_");
        fp.push_str(&hex(&digest));
        digest.zeroize();
        Ok(fp)
    }

    /// Fingerprint of a card number (spaces and dashes stripped; 12..=19 digits).
    pub fn fingerprint(&self, tenant: &str, number: &str) -> Result<String, VaultError> {
        let pan = Pan::parse(number)?;
        self.fingerprint_pan(tenant, &pan)
    }

    /// The whole edge step in one call: validate the number and expiry, fingerprint, mint a
    /// token id and encrypt PAN + expiry under the active key. The CVV is not an input.
    pub fn tokenize(
        &self,
        tenant: &str,
        number: &str,
        exp_month: i64,
        exp_year: i64,
        now: YearMonth,
    ) -> Result<TokenizedCard, VaultError> {
        check_id(tenant, "tenant must be 1 to 256 bytes")?;
        let pan = Pan::parse(number)?;
        let info = card::validate_pan(&pan)?;
        let expiry = card::check_expiry(exp_month, exp_year, now)?;
        let fingerprint = self.fingerprint_pan(tenant, &pan)?;

        // One OS RNG draw for both the token id and the nonce.
        let mut random = [0u8; 16 + NONCE_LEN];
        random_fill(&mut random)?;
        let mut raw_id = [0u8; 16];
        raw_id.copy_from_slice(&random[..16]);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&random[16..]);
        let token_id = token_id_from(&raw_id);

        let mut record = Zeroizing::new(Vec::with_capacity(4 + pan.len()));
        record.push(CARD_RECORD_VERSION);
        record.push(expiry.month);
        record.extend_from_slice(&expiry.year.to_be_bytes());
        record.extend_from_slice(pan.digits());
        let ciphertext = self.encrypt_with_nonce(tenant, &token_id, &record, nonce)?;
        Ok(TokenizedCard {
            token_id,
            fingerprint,
            ciphertext,
            key_version: self.active,
            info,
            expiry,
        })
    }

    /// Decrypt a card record: the PAN and expiry, for the request to the PSP.
    pub fn reveal(
        &self,
        tenant: &str,
        token_id: &str,
        ciphertext: &[u8],
    ) -> Result<RevealedCard, VaultError> {
        let record = self.decrypt(tenant, token_id, ciphertext)?;
        let not_a_card = VaultError::InvalidCiphertext("ciphertext is not a card record");
        if record.len() < 4 || record[0] != CARD_RECORD_VERSION {
            return Err(not_a_card);
        }
        let month = record[1];
        let year = u16::from_be_bytes([record[2], record[3]]);
        let digits = core::str::from_utf8(&record[4..]).map_err(|_| not_a_card)?;
        let pan = Pan::parse(digits).map_err(|_| not_a_card)?;
        if !(1..=12).contains(&month) {
            return Err(not_a_card);
        }
        Ok(RevealedCard {
            pan,
            expiry: Expiry { month, year },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::tests::GOLDEN;

    const K1: [u8; 32] = [0x11; 32];
    const K2: [u8; 32] = [0x22; 32];
    const FP: [u8; 32] = [0xfe; 32];

    fn now() -> YearMonth {
        YearMonth::new(2026, 5).unwrap()
    }

    fn vault_v1() -> Vault {
        Vault::new([(1, &K1[..])], &FP).unwrap()
    }

    fn vault_v1_v2() -> Vault {
        Vault::new([(1, &K1[..]), (2, &K2[..])], &FP).unwrap()
    }

    #[test]
    fn tokenize_then_reveal_round_trips_every_golden_number() {
        let vault = vault_v1();
        for &(number, brand) in GOLDEN {
            let t = vault.tokenize("m_1", number, 12, 30, now()).unwrap();
            assert_eq!(t.info.brand, brand);
            assert_eq!(t.key_version, 1);
            assert_eq!(
                t.expiry,
                Expiry {
                    month: 12,
                    year: 2030
                }
            );
            assert!(t.token_id.starts_with("tok_"));
            assert!(t.fingerprint.starts_with("fp_") && t.fingerprint.len() == 67);
            let r = vault.reveal("m_1", &t.token_id, &t.ciphertext).unwrap();
            assert_eq!(r.pan.expose(), number);
            assert_eq!(r.expiry, t.expiry);
        }
    }

    #[test]
    fn ciphertext_layout_carries_format_and_key_version() {
        let vault = vault_v1_v2();
        let ct = vault.encrypt("m_1", "tok_a", b"hello").unwrap();
        assert_eq!(ct.len(), MIN_CIPHERTEXT_LEN + 5);
        assert_eq!(ct[0], FORMAT_VERSION);
        assert_eq!(&ct[1..5], &2u32.to_be_bytes());
        assert_eq!(key_version_of(&ct).unwrap(), 2);
        assert_eq!(&*vault.decrypt("m_1", "tok_a", &ct).unwrap(), b"hello");
    }

    #[test]
    fn wrong_tenant_token_or_key_version_or_flipped_bit_fails_to_decrypt() {
        let vault = vault_v1_v2();
        let ct = vault.encrypt("m_1", "tok_a", b"secret").unwrap();
        assert_eq!(
            vault.decrypt("m_2", "tok_a", &ct).unwrap_err(),
            VaultError::DecryptFailed
        );
        assert_eq!(
            vault.decrypt("m_1", "tok_b", &ct).unwrap_err(),
            VaultError::DecryptFailed
        );
        // Relabel as key version 1: authenticated header, so it fails.
        let mut relabelled = ct.clone();
        relabelled[1..5].copy_from_slice(&1u32.to_be_bytes());
        assert_eq!(
            vault.decrypt("m_1", "tok_a", &relabelled).unwrap_err(),
            VaultError::DecryptFailed
        );
        for i in 5..ct.len() {
            let mut flipped = ct.clone();
            flipped[i] ^= 0x01;
            assert_eq!(
                vault.decrypt("m_1", "tok_a", &flipped).unwrap_err(),
                VaultError::DecryptFailed,
                "byte {i}"
            );
        }
        // Length-prefixed ids: ("m_1", "tok_a") is not ("m_1t", "ok_a").
        assert_eq!(
            vault.decrypt("m_1t", "ok_a", &ct).unwrap_err(),
            VaultError::DecryptFailed
        );
    }

    #[test]
    fn malformed_ciphertexts_are_invalid_not_panics() {
        let vault = vault_v1();
        let ct = vault.encrypt("m_1", "tok_a", b"").unwrap();
        assert_eq!(ct.len(), MIN_CIPHERTEXT_LEN);
        assert_eq!(
            vault
                .decrypt("m_1", "tok_a", &ct[..ct.len() - 1])
                .unwrap_err()
                .code(),
            "invalid_ciphertext"
        );
        assert_eq!(
            vault.decrypt("m_1", "tok_a", &[]).unwrap_err().code(),
            "invalid_ciphertext"
        );
        let mut wrong_format = ct.clone();
        wrong_format[0] = 2;
        assert_eq!(
            vault
                .decrypt("m_1", "tok_a", &wrong_format)
                .unwrap_err()
                .code(),
            "invalid_ciphertext"
        );
        let mut unknown = ct.clone();
        unknown[1..5].copy_from_slice(&9u32.to_be_bytes());
        assert_eq!(
            vault.decrypt("m_1", "tok_a", &unknown).unwrap_err(),
            VaultError::UnknownKeyVersion(9)
        );
        // A valid ciphertext that is not a card record.
        assert_eq!(
            vault.reveal("m_1", "tok_a", &ct).unwrap_err().code(),
            "invalid_ciphertext"
        );
    }

    #[test]
    fn rotation_keeps_old_records_readable_and_reencrypt_moves_them() {
        let old = vault_v1();
        let t = old
            .tokenize("m_1", "4242424242424242", 1, 2031, now())
            .unwrap();
        assert_eq!(t.key_version, 1);

        let rotated = vault_v1_v2();
        assert_eq!(rotated.active_key_version(), 2);
        assert_eq!(
            rotated
                .reveal("m_1", &t.token_id, &t.ciphertext)
                .unwrap()
                .pan
                .expose(),
            "4242424242424242"
        );
        let moved = rotated
            .reencrypt("m_1", &t.token_id, &t.ciphertext)
            .unwrap();
        assert_eq!(key_version_of(&moved).unwrap(), 2);
        assert_eq!(
            rotated
                .reveal("m_1", &t.token_id, &moved)
                .unwrap()
                .pan
                .expose(),
            "4242424242424242"
        );
        // The old vault cannot read the moved record: it lacks key 2.
        assert_eq!(
            old.reveal("m_1", &t.token_id, &moved).unwrap_err(),
            VaultError::UnknownKeyVersion(2)
        );
        // Fingerprints do not depend on the data keys.
        assert_eq!(
            rotated.fingerprint("m_1", "4242424242424242").unwrap(),
            t.fingerprint
        );
        // Reencrypt authenticates first.
        assert_eq!(
            rotated
                .reencrypt("m_2", &t.token_id, &t.ciphertext)
                .unwrap_err(),
            VaultError::DecryptFailed
        );
    }

    #[test]
    fn fingerprints_are_stable_and_tenant_scoped() {
        let vault = vault_v1();
        let a = vault.fingerprint("m_1", "4242424242424242").unwrap();
        assert_eq!(a, vault.fingerprint("m_1", "4242 4242 4242 4242").unwrap());
        assert_ne!(a, vault.fingerprint("m_2", "4242424242424242").unwrap());
        assert_ne!(a, vault.fingerprint("m_1", "5555555555554444").unwrap());
        let other_key = Vault::new([(1, &K1[..])], &[0xfd; 32]).unwrap();
        assert_ne!(a, other_key.fingerprint("m_1", "4242424242424242").unwrap());
        assert!(!a.contains("4242"));
        let t1 = vault
            .tokenize("m_1", "4242424242424242", 1, 30, now())
            .unwrap();
        let t2 = vault
            .tokenize("m_1", "4242424242424242", 1, 30, now())
            .unwrap();
        assert_eq!(t1.fingerprint, a);
        assert_eq!(t1.fingerprint, t2.fingerprint);
        assert_ne!(t1.token_id, t2.token_id);
        assert_ne!(t1.ciphertext, t2.ciphertext);
    }

    #[test]
    fn token_ids_are_random_base58_of_16_bytes() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let id = new_token_id().unwrap();
            let raw = bs58::decode(&id[4..]).into_vec().unwrap();
            assert_eq!(raw.len(), 16);
            assert!(seen.insert(id));
        }
    }

    #[test]
    fn tokenize_refuses_bad_cards_with_card_codes() {
        let vault = vault_v1();
        let code =
            |n: &str, m: i64, y: i64| vault.tokenize("m_1", n, m, y, now()).unwrap_err().code();
        assert_eq!(code("4242424242424241", 1, 30), "luhn_failed");
        assert_eq!(code("4242", 1, 30), "invalid_number");
        assert_eq!(code("4242424242424242", 13, 30), "invalid_expiry");
        assert_eq!(code("4242424242424242", 4, 2026), "expired_card");
        assert_eq!(
            vault
                .tokenize("", "4242424242424242", 1, 30, now())
                .unwrap_err()
                .code(),
            "invalid_argument"
        );
    }

    #[test]
    fn bad_keys_are_refused() {
        assert_eq!(
            Vault::new([(1, &K1[..16])], &FP).unwrap_err().code(),
            "invalid_key"
        );
        assert_eq!(
            Vault::new([(1, &K1[..])], &FP[..31]).unwrap_err().code(),
            "invalid_key"
        );
        assert_eq!(
            Vault::new(std::iter::empty::<(u32, &[u8])>(), &FP)
                .unwrap_err()
                .code(),
            "invalid_key"
        );
        assert_eq!(
            Vault::new([(1, &K1[..])], &K1).unwrap_err().code(),
            "invalid_key"
        );
    }

    #[test]
    fn debug_output_has_no_pan_and_no_key() {
        let vault = vault_v1_v2();
        let dbg = format!("{vault:?}");
        assert_eq!(dbg, "Vault { key_versions: [1, 2], active: 2, .. }");
        let t = vault
            .tokenize("m_1", "4000056655665556", 3, 29, now())
            .unwrap();
        let r = vault.reveal("m_1", &t.token_id, &t.ciphertext).unwrap();
        for text in [format!("{t:?}"), format!("{r:?}")] {
            assert!(!text.contains("4000056655665556"), "{text}");
            assert!(
                !text.contains("0x11") && !text.contains("17, 17, 17"),
                "{text}"
            );
        }
        for err in [
            VaultError::DecryptFailed,
            VaultError::UnknownKeyVersion(3),
            VaultError::Card(CardError::LuhnFailed),
        ] {
            assert!(!err.to_string().contains("4000056655665556"));
        }
    }
}
