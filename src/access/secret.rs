//! Secrets: session ids, API tokens and passwords.
//!
//! A [`Secret`] is 256 random bits from the operating system, shown once as 64 hex digits. The
//! store keeps only its SHA-256 ([`SecretHash`]) and finds it by that hash, so a copy of the
//! database proves nothing. Where two secrets are compared directly (a form's CSRF token with the
//! one its session implies), the comparison is constant-time. Logs carry at most a
//! [`SecretHash::fingerprint`]. Passwords are hashed with argon2id at the crate's default
//! (OWASP) cost.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A secret in the clear, as a client holds it. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({})", self.hash().fingerprint())
    }
}

/// SHA-256 of a secret: what the store keeps.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretHash(pub [u8; 32]);

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretHash({})", self.fingerprint())
    }
}

impl SecretHash {
    /// The first 8 hex digits of the hash: enough to tell secrets apart in a log, useless to
    /// an attacker.
    pub fn fingerprint(&self) -> String {
        hex(&self.0[..4])
    }
}

/// The shape of every secret this server makes: 64 lowercase hex digits.
fn well_formed(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn digest(s: &str) -> SecretHash {
    SecretHash(Sha256::digest(s.as_bytes()).into())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl Secret {
    /// 32 random bytes from the operating system.
    pub fn generate() -> Secret {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the operating system's random source works");
        Secret(hex(&bytes))
    }

    /// A secret made of these bytes (for derived secrets), as hex.
    pub fn from_bytes(bytes: &[u8]) -> Secret {
        Secret(hex(bytes))
    }

    /// Takes a secret a client sent, if it has the shape of one (64 lowercase hex digits).
    /// Anything else cannot be a secret this server made, so it is not even hashed.
    pub fn parse(s: &str) -> Option<Secret> {
        well_formed(s).then(|| Secret(s.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> SecretHash {
        digest(&self.0)
    }

    /// The hash of a secret a client sent, if it has the shape of one ([`Secret::parse`]),
    /// without copying it: personal-URL tokens are hashed on every request.
    pub fn hash_of(s: &str) -> Option<SecretHash> {
        well_formed(s).then(|| digest(s))
    }

    /// A value derived from this secret for one `purpose`, such as the CSRF token of a session:
    /// the server can recompute it from the secret, and it reveals nothing about the secret.
    pub fn derive(&self, purpose: &str) -> String {
        let mut h = Sha256::new();
        h.update(purpose.as_bytes());
        h.update([0]);
        h.update(self.0.as_bytes());
        hex(&h.finalize())
    }
}

/// Compares two strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Hashes a password with argon2id and a fresh random salt, as a PHC string.
pub fn hash_password(password: &str) -> String {
    Argon2::default()
        .hash_password(password.as_bytes())
        .expect("argon2 hashing with default parameters does not fail")
        .to_string()
}

/// A hash of no one's password, so a sign-in for an unknown name costs the same time as one
/// for a real account.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(Secret::generate().expose()))
}

/// Checks `password` against a PHC string; `None` checks against a decoy and fails.
pub fn verify_password(password: &str, phc: Option<&str>) -> bool {
    let (stored, real) = match phc {
        Some(p) => (p, true),
        None => (decoy_hash(), false),
    };
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    ok && real
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_hex_and_hash_stably() {
        let a = Secret::generate();
        let b = Secret::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 64);
        assert_eq!(Secret::parse(a.expose()).unwrap().hash(), a.hash());
        assert!(Secret::parse("short").is_none());
        assert!(Secret::parse(&a.expose().to_uppercase()).is_none());
        assert!(!format!("{a:?}").contains(a.expose()));
        assert_ne!(a.derive("csrf"), a.derive("other"));
    }

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let h = hash_password("correct horse");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", Some(&h)));
        assert!(!verify_password("wrong", Some(&h)));
        assert!(!verify_password("correct horse", None));
        assert!(!verify_password("x", Some("not a phc string")));
    }

    #[test]
    fn constant_time_eq_compares_contents() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
    }
}
