//! Personal feed tokens: what makes `/p/<token>/feeds/<id>.xml` one officer's own URL.
//!
//! Each account has at most one token, used in every URL of every members feed it may see. A
//! token is `HMAC-SHA256(key, user id, seed)` as 64 hex digits, where `seed` is 128 fresh random
//! bits drawn when the token is issued and `key` is 256 random bits in `state_dir/token.key`
//! (mode 0600, outside the database). The store keeps the seed and the token's SHA-256, and
//! requests are looked up by that hash. So a copy of the database alone yields no token, while
//! the server (which holds the key) can show an officer their own URL again at any time, and
//! resetting it (a new seed) revokes the old URL at once.
//!
//! The server keeps every valid token's hash in memory ([`Tokens`]), so a request costs one hash
//! and one map lookup, confirmed with a constant-time comparison. The map is rebuilt whenever the
//! store changes, including changes made by another process (the CLI), which it notices within a
//! second through SQLite's `data_version`.
//!
//! An app polls its feed again and again with the same URL, so the map also remembers the tokens
//! it confirmed lately ([`Recent`]): a later request with the same token is matched by a
//! constant-time comparison of the whole token instead of a SHA-256. This memory holds tokens in
//! the clear, but only in the process that can derive every token anyway (it holds the key and
//! reads the seeds), never on disk; and it is part of the map, so a revocation, a reset or a
//! suspension, which rebuilds the map, empties it at the same moment.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::{Account, Credentials, Role, Secret, SecretHash};
use crate::store::{Store, StoreError};

/// The server's key for deriving personal tokens.
#[derive(Clone)]
pub struct TokenKey([u8; 32]);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(…)")
    }
}

impl TokenKey {
    /// Reads the key at `path`, creating it (mode 0600) with fresh random bytes if it is absent.
    pub fn load_or_create(path: &Path) -> std::io::Result<TokenKey> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let key = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!(
                            "{}: not a 32-byte key: restore it from a backup, or delete it (every personal URL then has to be reset)",
                            path.display()
                        ),
                    )
                })?;
                Ok(TokenKey(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).expect("random source");
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                use std::os::unix::fs::OpenOptionsExt;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)?;
                f.write_all(&key)?;
                f.sync_all()?;
                Ok(TokenKey(key))
            }
            Err(e) => Err(e),
        }
    }

    /// The token of `user_id` with `seed`.
    pub fn token(&self, user_id: i64, seed: &[u8; 16]) -> Secret {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("any key length works");
        mac.update(b"rollcall personal feed token\0");
        mac.update(&user_id.to_le_bytes());
        mac.update(seed);
        Secret::from_bytes(&mac.finalize().into_bytes())
    }
}

/// Issues `user` a new personal token, revoking the old one. Returns it.
pub fn issue(store: &Store, key: &TokenKey, user: &Account) -> Result<Secret, StoreError> {
    let mut seed = [0u8; 16];
    getrandom::fill(&mut seed).expect("random source");
    let token = key.token(user.id, &seed);
    store.set_feed_token(&user.name, &token.hash(), &seed)?;
    Ok(token)
}

/// `user`'s current personal token, if it has one the key can still derive.
pub fn current(
    store: &Store,
    key: &TokenKey,
    user: &Account,
) -> Result<Option<Secret>, StoreError> {
    Ok(store
        .feed_tokens()?
        .into_iter()
        .find(|t| t.account.id == user.id)
        .map(|t| (key.token(user.id, &t.seed), t.hash))
        .filter(|(token, hash)| token.hash() == *hash)
        .map(|(token, _)| token))
}

/// Who a valid token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub id: i64,
    pub name: String,
    pub role: Role,
    hash: SecretHash,
}

impl Holder {
    pub fn credentials(&self) -> Credentials {
        let mut fingerprint = [0u8; 4];
        fingerprint.copy_from_slice(&self.hash.0[..4]);
        Credentials::Personal {
            id: self.id,
            role: self.role,
            fingerprint,
        }
    }
}

/// Every valid personal token, by hash, in memory.
#[derive(Default)]
pub struct Tokens {
    map: ArcSwap<TokenMap>,
}

/// The valid tokens of one state of the store.
#[derive(Default)]
struct TokenMap {
    by_hash: HashMap<SecretHash, Arc<Holder>, std::hash::BuildHasherDefault<DigestHasher>>,
    recent: Recent,
}

/// The length of every token: 64 hex digits.
const TOKEN_LEN: usize = 64;
/// How many confirmed tokens [`Recent`] holds at most.
const RECENT_SLOTS: usize = 1024;

/// Tokens confirmed lately, in a table of [`RECENT_SLOTS`] slots indexed by a randomly seeded
/// hash of the token's text. A token that finds its slot holding itself (all 64 bytes, compared
/// in constant time) is valid without hashing it again; one that does not goes the whole way,
/// and takes the slot if it proves valid. A slot's index says nothing about any token: the seed
/// is drawn for each map.
struct Recent {
    seed: foldhash::fast::RandomState,
    slots: Box<[ArcSwapOption<Confirmed>]>,
}

/// A token that proved valid, with its holder.
struct Confirmed {
    token: [u8; TOKEN_LEN],
    holder: Arc<Holder>,
}

impl Drop for Confirmed {
    fn drop(&mut self) {
        // Best effort: the freed memory does not keep the token.
        self.token = [0; TOKEN_LEN];
        std::hint::black_box(&self.token);
    }
}

impl Default for Recent {
    fn default() -> Recent {
        Recent {
            seed: foldhash::fast::RandomState::default(),
            slots: (0..RECENT_SLOTS).map(|_| ArcSwapOption::empty()).collect(),
        }
    }
}

impl Recent {
    fn slot(&self, token: &[u8; TOKEN_LEN]) -> &ArcSwapOption<Confirmed> {
        use std::hash::BuildHasher;
        let i = self.seed.hash_one(token) as usize % RECENT_SLOTS;
        &self.slots[i]
    }

    /// The holder of `token` if it was confirmed lately.
    fn get(&self, token: &[u8; TOKEN_LEN]) -> Option<Arc<Holder>> {
        let slot = self.slot(token).load();
        let confirmed = slot.as_ref()?;
        same_token(&confirmed.token, token).then(|| Arc::clone(&confirmed.holder))
    }

    fn remember(&self, token: &[u8; TOKEN_LEN], holder: &Arc<Holder>) {
        self.slot(token).store(Some(Arc::new(Confirmed {
            token: *token,
            holder: Arc::clone(holder),
        })));
    }
}

/// Whether two tokens are equal, in time that does not depend on where they differ: every word
/// is compared and the differences are folded together before the one test.
fn same_token(a: &[u8; TOKEN_LEN], b: &[u8; TOKEN_LEN]) -> bool {
    let mut difference = 0u64;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let x = u64::from_ne_bytes(x.try_into().expect("8 bytes"));
        let y = u64::from_ne_bytes(y.try_into().expect("8 bytes"));
        difference |= x ^ y;
    }
    bool::from(difference.ct_eq(&0))
}

/// Hashes a [`SecretHash`] by its first eight bytes instead of running SipHash over all 32
/// (every personal feed poll looks one up). They are SHA-256 output, already uniform, and the
/// map's keys are tokens the server issued, so a client choosing what it asks for can neither
/// fill a bucket nor learn anything from how long a lookup takes (the match itself is checked in
/// constant time).
#[derive(Default)]
struct DigestHasher(u64);

impl std::hash::Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        match bytes.first_chunk::<8>() {
            Some(first) => self.0 ^= u64::from_le_bytes(*first),
            None => {
                for &b in bytes {
                    self.0 = self.0.rotate_left(8) ^ u64::from(b);
                }
            }
        }
    }
}

impl Tokens {
    /// Rebuilds the map from the store (blocking).
    pub fn reload(&self, store: &Store) -> Result<(), StoreError> {
        let by_hash = store
            .feed_tokens()?
            .into_iter()
            .map(|t| {
                let holder = Holder {
                    id: t.account.id,
                    name: t.account.name,
                    role: t.account.role,
                    hash: t.hash,
                };
                (t.hash, Arc::new(holder))
            })
            .collect();
        self.map.store(Arc::new(TokenMap {
            by_hash,
            recent: Recent::default(),
        }));
        Ok(())
    }

    /// The holder of `token`, asking the store when the map does not know it: a token issued a
    /// moment ago by another process (the CLI) works at once. Blocking.
    pub fn lookup_fresh(&self, store: &Store, token: &str) -> Option<Arc<Holder>> {
        if let Some(h) = self.lookup(token) {
            return Some(h);
        }
        let hash = Secret::parse(token)?.hash();
        if store.has_feed_token(&hash).unwrap_or(false) && self.reload(store).is_ok() {
            return self.lookup(token);
        }
        None
    }

    /// The holder of `token`, if it is valid now. Malformed tokens are not even hashed.
    pub fn lookup(&self, token: &str) -> Option<Arc<Holder>> {
        let map = self.map.load();
        let text: Option<&[u8; TOKEN_LEN]> = token.as_bytes().try_into().ok();
        if let Some(holder) = text.and_then(|t| map.recent.get(t)) {
            return Some(holder);
        }
        let hash = Secret::hash_of(token)?;
        let holder = map.by_hash.get(&hash)?;
        if !bool::from(holder.hash.0.ct_eq(&hash.0)) {
            return None;
        }
        if let Some(text) = text {
            map.recent.remember(text, holder);
        }
        Some(Arc::clone(holder))
    }
}

/// Keeps `tokens` in step with the store: every second, if another process (the CLI) has
/// committed to the database, the map is rebuilt. Changes the server makes itself reload the map
/// directly. Stops when `stop` is cancelled.
pub fn watch(tokens: Arc<Tokens>, store: Arc<Store>, stop: tokio_util::sync::CancellationToken) {
    let spawned = std::thread::Builder::new()
        .name("token-watch".into())
        .spawn(move || {
            let mut seen = store.data_version().ok();
            while !stop.is_cancelled() {
                std::thread::sleep(std::time::Duration::from_secs(1));
                let now = store.data_version().ok();
                if now != seen {
                    seen = now;
                    if let Err(e) = tokens.reload(&store) {
                        tracing::error!(error = %e, "cannot reload personal tokens");
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the token watcher; CLI revocations apply at restart");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_depend_on_key_user_and_seed() {
        let dir = tempfile::tempdir().unwrap();
        let key = TokenKey::load_or_create(&dir.path().join("token.key")).unwrap();
        let again = TokenKey::load_or_create(&dir.path().join("token.key")).unwrap();
        let seed = [7u8; 16];
        assert_eq!(key.token(1, &seed), again.token(1, &seed));
        assert_ne!(key.token(1, &seed), key.token(2, &seed));
        assert_ne!(key.token(1, &seed), key.token(1, &[8u8; 16]));
        let other = TokenKey::load_or_create(&dir.path().join("other.key")).unwrap();
        assert_ne!(key.token(1, &seed), other.token(1, &seed));
        assert_eq!(key.token(1, &seed).expose().len(), 64);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("token.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_confirmed_token_is_remembered_until_the_map_is_rebuilt_and_nothing_else_matches_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("r.db")).unwrap();
        let key = TokenKey::load_or_create(&dir.path().join("token.key")).unwrap();
        store.add_user("pat", Role::Officer, "h").unwrap();
        let pat = store.users().unwrap().remove(0);
        let token = issue(&store, &key, &pat).unwrap();
        let text: [u8; TOKEN_LEN] = token.expose().as_bytes().try_into().unwrap();
        let tokens = Tokens::default();
        tokens.reload(&store).unwrap();
        assert!(tokens.map.load().recent.get(&text).is_none());
        assert_eq!(tokens.lookup(token.expose()).unwrap().name, "pat");
        assert_eq!(tokens.map.load().recent.get(&text).unwrap().name, "pat");
        assert_eq!(tokens.lookup(token.expose()).unwrap().name, "pat");

        // A different token that lands in the same slot does not match it.
        let map = tokens.map.load();
        let slot = map.recent.slot(&text) as *const _;
        let mut other = text;
        let mut n = 0u32;
        while !std::ptr::eq(map.recent.slot(&other), slot) || other == text {
            n += 1;
            let hex = format!("{n:064x}");
            other.copy_from_slice(hex.as_bytes());
        }
        assert!(map.recent.get(&other).is_none());
        assert!(tokens
            .lookup(std::str::from_utf8(&other).unwrap())
            .is_none());
        // Nor does one that differs from it in any one byte.
        for i in 0..TOKEN_LEN {
            let mut near = text;
            near[i] = if near[i] == b'0' { b'1' } else { b'0' };
            assert!(!same_token(&near, &text), "byte {i}");
            assert!(tokens.lookup(std::str::from_utf8(&near).unwrap()).is_none());
        }
        assert!(same_token(&text, &text.clone()));
        drop(map);

        // Suspending the account rebuilds the map: the remembered token is gone with it.
        store.set_suspended("pat", true).unwrap();
        tokens.reload(&store).unwrap();
        assert!(tokens.map.load().recent.get(&text).is_none());
        assert!(tokens.lookup(token.expose()).is_none());
    }

    #[test]
    fn issued_tokens_resolve_until_replaced_or_suspended() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("r.db")).unwrap();
        let key = TokenKey::load_or_create(&dir.path().join("token.key")).unwrap();
        store.add_user("pat", Role::Officer, "h").unwrap();
        let pat = store.users().unwrap().remove(0);
        let first = issue(&store, &key, &pat).unwrap();
        assert_eq!(current(&store, &key, &pat).unwrap(), Some(first.clone()));
        let tokens = Tokens::default();
        tokens.reload(&store).unwrap();
        assert_eq!(tokens.lookup(first.expose()).unwrap().name, "pat");
        assert!(tokens.lookup("not-a-token").is_none());
        assert!(tokens.lookup(&"0".repeat(64)).is_none());
        let second = issue(&store, &key, &pat).unwrap();
        tokens.reload(&store).unwrap();
        assert!(tokens.lookup(first.expose()).is_none(), "reset revokes");
        assert!(tokens.lookup(second.expose()).is_some());
        store.set_suspended("pat", true).unwrap();
        tokens.reload(&store).unwrap();
        assert!(tokens.lookup(second.expose()).is_none(), "suspended");
        store.set_suspended("pat", false).unwrap();
        tokens.reload(&store).unwrap();
        assert!(tokens.lookup(second.expose()).is_some(), "reinstated");
    }
}
