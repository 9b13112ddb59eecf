//! The store: accounts, sessions, API tokens and the audit log, in embedded SQLite.
//!
//! All SQL in Rollcall is in this module: accounts and tokens here, download measurement in
//! `events.rs`. The database sits under `state_dir` (setting `database`),
//! in WAL mode with a busy timeout, so the CLI and a running server can use it at once. The schema
//! is migrated forward at open, tracked with `PRAGMA user_version`. Every call blocks: the http
//! layer runs them on tokio's blocking pool, never on an async worker.
//!
//! Secrets never reach this module in the clear: session ids and API tokens arrive as their
//! SHA-256 ([`crate::access::SecretHash`]) and are looked up by it, and passwords arrive as argon2id
//! PHC strings. The interface is a handful of domain calls (no SQL, no connection) so that a
//! PostgreSQL backend can stand behind the same calls later.

mod events;
pub use events::{Counts, DownloadRow, Event, MeasurementBatch, StatsQuery};

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use crate::access::{Account, Role, SecretHash};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: cannot open the database: {source}: check that state_dir is writable")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "{path}: the database is damaged ({detail}): stop rollcall, restore the file from a backup (docs/admin.md, \"The store\"), or move it aside to start with an empty database"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "{path}: the database has schema version {found}, newer than this rollcall ({known}): upgrade rollcall"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("user {0:?} already exists: pick another name, or remove the old account first")]
    UserExists(String),
    #[error("no user is named {0:?}: `rollcall user list` shows them")]
    NoSuchUser(String),
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// An audit log entry: who did what, when, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Seconds since the Unix epoch.
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    /// The client address, or "cli".
    pub origin: String,
}

/// Schema migrations, in order; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &[
    // 1: accounts, sessions, API tokens, audit log.
    "CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL CHECK (role IN ('admin', 'officer')),
        password_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL
     );
     CREATE TABLE sessions (
        id_hash BLOB PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
     );
     CREATE INDEX sessions_expiry ON sessions(expires_at);
     CREATE TABLE api_tokens (
        hash BLOB PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at INTEGER NOT NULL
     );
     CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        origin TEXT NOT NULL
     );",
    // 2: personal feed tokens, their use, sharing flags, suspended accounts, daily salts.
    "ALTER TABLE users ADD COLUMN suspended INTEGER NOT NULL DEFAULT 0;
     CREATE TABLE feed_tokens (
        user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
        hash BLOB NOT NULL UNIQUE,
        seed BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        last_used_at INTEGER
     );
     CREATE TABLE token_uses (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        day TEXT NOT NULL,
        address TEXT NOT NULL,
        app TEXT NOT NULL,
        requests INTEGER NOT NULL,
        last_at INTEGER NOT NULL,
        PRIMARY KEY (user_id, day, address, app)
     );
     CREATE TABLE sharing_flags (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        day TEXT NOT NULL,
        addresses INTEGER NOT NULL,
        dismissed INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (user_id, day)
     );
     CREATE TABLE salts (
        day TEXT PRIMARY KEY,
        salt BLOB NOT NULL
     );",
    // 3: download measurement: raw events, downloads, open counting windows, daily roll-ups.
    // Events are many, so they hold nothing derivable: the day comes from `at`, and the
    // method from the verdict (every HEAD request is `head`).
    "CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        episode TEXT NOT NULL,
        status INTEGER NOT NULL,
        range TEXT,
        bytes INTEGER NOT NULL,
        agent TEXT NOT NULL,
        user_id INTEGER,
        fingerprint TEXT,
        address TEXT NOT NULL,
        verdict TEXT NOT NULL
     );
     CREATE TABLE downloads (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        day TEXT NOT NULL,
        episode TEXT NOT NULL,
        app TEXT NOT NULL,
        device TEXT,
        user_id INTEGER,
        address TEXT NOT NULL
     );
     CREATE INDEX downloads_day ON downloads(day);
     CREATE TABLE count_windows (
        key TEXT PRIMARY KEY,
        opened_at INTEGER NOT NULL,
        covered TEXT NOT NULL,
        counted INTEGER NOT NULL
     );
     CREATE TABLE daily_events (
        day TEXT NOT NULL,
        episode TEXT NOT NULL,
        verdict TEXT NOT NULL,
        requests INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        PRIMARY KEY (day, episode, verdict)
     );",
    // 4: one row that readiness checks rewrite, to learn whether the database takes writes.
    "CREATE TABLE probes (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        at INTEGER NOT NULL
     );",
];

/// A personal feed token as the store keeps it: its hash (lookup key) and the random seed it
/// was derived from (which alone proves nothing; see [`crate::access::personal`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedToken {
    pub account: Account,
    pub hash: SecretHash,
    pub seed: [u8; 16],
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// An account as the officers page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Officer {
    pub account: Account,
    pub suspended: bool,
    /// When its personal token was issued, if it has one.
    pub token_issued: Option<i64>,
    pub token_last_used: Option<i64>,
}

/// One account's personal-feed use on one day, per app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    pub user: String,
    pub day: String,
    /// Distinct client addresses (counted by keyed hash) that day.
    pub addresses: u64,
    /// Apps named from their user agents, with their request counts.
    pub apps: Vec<(String, u64)>,
    pub last_at: i64,
}

/// A possible shared token: one account's personal URLs used from many addresses in a day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharingFlag {
    pub user: String,
    pub day: String,
    pub addresses: u64,
}

/// A use of a personal token to record: who, when, from which (hashed) address, with which app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUse {
    pub user_id: i64,
    /// The latest of these requests.
    pub at: i64,
    /// How many requests this is.
    pub requests: i64,
    pub day: String,
    pub address: String,
    pub app: String,
}

/// The open store. One connection, used one call at a time; calls are short.
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn role_of(s: &str) -> Role {
    if s == "admin" {
        Role::Admin
    } else {
        Role::Officer
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path` and migrates it to the current schema.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_err = |source: rusqlite::Error| match source.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
                StoreError::Corrupt {
                    path: path.to_owned(),
                    detail: source.to_string(),
                }
            }
            _ => StoreError::Open {
                path: path.to_owned(),
                source,
            },
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                open_err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                    Some(format!("cannot create {}: {e}", dir.display())),
                ))
            })?;
        }
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        // Measurement appends thousands of events a second: checkpoints run every 16 MiB of WAL
        // rather than every 4 MiB.
        conn.pragma_update(None, "wal_autocheckpoint", 4096)
            .map_err(open_err)?;
        // Once a checkpoint has copied the whole WAL back, the next write starts the WAL over
        // from its beginning. Left at its old size, that overwrites pages the kernel may long
        // have evicted, and a WAL frame (24 bytes of header and a 4 KiB page) never covers a
        // whole file page: every write then reads the old block from disk first, on the
        // measurement thread. A profile of 64 KiB ranges put that at a third of the thread's
        // samples (BENCHMARKS.md). Truncated at each restart, the WAL only ever appends.
        conn.pragma_update(None, "journal_size_limit", 0)
            .map_err(open_err)?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(open_err)?;
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(open_err)?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew {
                path: path.to_owned(),
                found: version,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql).map_err(open_err)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)
                .map_err(open_err)?;
        }
        tx.commit().map_err(open_err)?;
        // A damaged page anywhere would otherwise surface later as a failed query; find it now,
        // with the file named. quick_check reads every page but skips the costlier index checks.
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(open_err)?;
        if check != "ok" {
            // quick_check heads its report with "*** in database main ***".
            let mut lines = check.lines().filter(|l| !l.starts_with("***"));
            let first = lines
                .next()
                .unwrap_or("quick_check failed")
                .trim()
                .to_owned();
            let more = lines.count();
            return Err(StoreError::Corrupt {
                path: path.to_owned(),
                detail: if more == 0 {
                    first
                } else {
                    format!("{first}, and {more} more problems")
                },
            });
        }
        Ok(Store {
            conn: Mutex::new(conn),
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an account. `password_hash` is an argon2id PHC string.
    pub fn add_user(&self, name: &str, role: Role, password_hash: &str) -> Result<(), StoreError> {
        let r = self.conn().execute(
            "INSERT INTO users (name, role, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![name, role.as_str(), password_hash, now()],
        );
        match r {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::UserExists(name.to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every account, by name.
    pub fn users(&self) -> Result<Vec<Account>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id, name, role FROM users ORDER BY name")?;
        let rows = stmt.query_map([], |r| {
            Ok(Account {
                id: r.get(0)?,
                name: r.get(1)?,
                role: role_of(&r.get::<_, String>(2)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes an account with its sessions and tokens, so they stop working at once.
    pub fn remove_user(&self, name: &str) -> Result<(), StoreError> {
        let n = self
            .conn()
            .execute("DELETE FROM users WHERE name = ?1", params![name])?;
        if n == 0 {
            return Err(StoreError::NoSuchUser(name.to_owned()));
        }
        Ok(())
    }

    /// The account and its password hash, for signing in.
    pub fn credentials(&self, name: &str) -> Result<Option<(Account, String)>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id, name, role, password_hash FROM users WHERE name = ?1 AND suspended = 0",
                params![name],
                |r| {
                    Ok((
                        Account {
                            id: r.get(0)?,
                            name: r.get(1)?,
                            role: role_of(&r.get::<_, String>(2)?),
                        },
                        r.get(3)?,
                    ))
                },
            )
            .optional()?)
    }

    /// Starts a session that ends after `ttl`.
    pub fn create_session(
        &self,
        id: &SecretHash,
        user_id: i64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let at = now();
        let conn = self.conn();
        // Expired sessions go whenever a new one starts, so the table stays small.
        conn.execute("DELETE FROM sessions WHERE expires_at <= ?1", params![at])?;
        conn.execute(
            "INSERT INTO sessions (id_hash, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![&id.0[..], user_id, at, at + ttl.as_secs() as i64],
        )?;
        Ok(())
    }

    /// The account a live session belongs to.
    pub fn session(&self, id: &SecretHash) -> Result<Option<Account>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT u.id, u.name, u.role FROM sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.id_hash = ?1 AND s.expires_at > ?2 AND u.suspended = 0",
                params![&id.0[..], now()],
                |r| {
                    Ok(Account {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        role: role_of(&r.get::<_, String>(2)?),
                    })
                },
            )
            .optional()?)
    }

    pub fn end_session(&self, id: &SecretHash) -> Result<(), StoreError> {
        self.conn().execute(
            "DELETE FROM sessions WHERE id_hash = ?1",
            params![&id.0[..]],
        )?;
        Ok(())
    }

    /// Records a new API token for `user`.
    pub fn add_api_token(&self, user: &str, token: &SecretHash) -> Result<(), StoreError> {
        let conn = self.conn();
        let id: Option<i64> = conn
            .query_row("SELECT id FROM users WHERE name = ?1", params![user], |r| {
                r.get(0)
            })
            .optional()?;
        let id = id.ok_or_else(|| StoreError::NoSuchUser(user.to_owned()))?;
        conn.execute(
            "INSERT INTO api_tokens (hash, user_id, created_at) VALUES (?1, ?2, ?3)",
            params![&token.0[..], id, now()],
        )?;
        Ok(())
    }

    /// The account an API token belongs to.
    pub fn api_token(&self, token: &SecretHash) -> Result<Option<Account>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT u.id, u.name, u.role FROM api_tokens t JOIN users u ON u.id = t.user_id
                 WHERE t.hash = ?1 AND u.suspended = 0",
                params![&token.0[..]],
                |r| {
                    Ok(Account {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        role: role_of(&r.get::<_, String>(2)?),
                    })
                },
            )
            .optional()?)
    }

    /// Suspends (`true`) or reinstates an account. A suspended account's sessions, API tokens
    /// and personal URLs stop working at once; they work again when it is reinstated.
    pub fn set_suspended(&self, name: &str, suspended: bool) -> Result<(), StoreError> {
        let n = self.conn().execute(
            "UPDATE users SET suspended = ?2 WHERE name = ?1",
            params![name, suspended],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchUser(name.to_owned()));
        }
        Ok(())
    }

    /// Sets `user`'s personal feed token (replacing, and so revoking, any earlier one).
    pub fn set_feed_token(
        &self,
        user: &str,
        hash: &SecretHash,
        seed: &[u8; 16],
    ) -> Result<(), StoreError> {
        let conn = self.conn();
        let id: Option<i64> = conn
            .query_row("SELECT id FROM users WHERE name = ?1", params![user], |r| {
                r.get(0)
            })
            .optional()?;
        let id = id.ok_or_else(|| StoreError::NoSuchUser(user.to_owned()))?;
        conn.execute(
            "INSERT INTO feed_tokens (user_id, hash, seed, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (user_id) DO UPDATE SET hash = ?2, seed = ?3, created_at = ?4,
             last_used_at = NULL",
            params![id, &hash.0[..], &seed[..], now()],
        )?;
        Ok(())
    }

    /// Every account with its status and personal token, by name.
    pub fn officers(&self) -> Result<Vec<Officer>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT u.id, u.name, u.role, u.suspended, t.created_at, t.last_used_at
             FROM users u LEFT JOIN feed_tokens t ON t.user_id = u.id ORDER BY u.name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Officer {
                account: Account {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    role: role_of(&r.get::<_, String>(2)?),
                },
                suspended: r.get(3)?,
                token_issued: r.get(4)?,
                token_last_used: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Whether a valid personal feed token (of an account not suspended) has this hash.
    pub fn has_feed_token(&self, hash: &SecretHash) -> Result<bool, StoreError> {
        Ok(self.conn().query_row(
            "SELECT count(*) > 0 FROM feed_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.hash = ?1 AND u.suspended = 0",
            params![&hash.0[..]],
            |r| r.get(0),
        )?)
    }

    /// Revokes `user`'s personal feed token, if it has one.
    pub fn revoke_feed_token(&self, user: &str) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "DELETE FROM feed_tokens WHERE user_id = (SELECT id FROM users WHERE name = ?1)",
            params![user],
        )?;
        Ok(n > 0)
    }

    /// Every personal feed token of an account that is not suspended.
    pub fn feed_tokens(&self) -> Result<Vec<FeedToken>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT u.id, u.name, u.role, t.hash, t.seed, t.created_at, t.last_used_at
             FROM feed_tokens t JOIN users u ON u.id = t.user_id WHERE u.suspended = 0",
        )?;
        let rows = stmt.query_map([], |r| {
            let hash: Vec<u8> = r.get(3)?;
            let seed: Vec<u8> = r.get(4)?;
            Ok((
                Account {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    role: role_of(&r.get::<_, String>(2)?),
                },
                hash,
                seed,
                r.get::<_, i64>(5)?,
                r.get::<_, Option<i64>>(6)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (account, hash, seed, created_at, last_used_at) = row?;
            let (Ok(hash), Ok(seed)) = (<[u8; 32]>::try_from(hash), <[u8; 16]>::try_from(seed))
            else {
                continue;
            };
            out.push(FeedToken {
                account,
                hash: SecretHash(hash),
                seed,
                created_at,
                last_used_at,
            });
        }
        Ok(out)
    }

    /// A number that changes whenever another connection (another process) commits to the
    /// database: a cheap way to notice revocations made by the CLI.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn()
            .pragma_query_value(None, "data_version", |r| r.get(0))?)
    }

    /// The salt for keyed hashes of client addresses on `day` (`YYYY-MM-DD`), made on first use.
    /// Salts of earlier days than `keep_from` are deleted, so old hashes cannot be recomputed.
    pub fn daily_salt(&self, day: &str, keep_from: &str) -> Result<[u8; 32], StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM salts WHERE day < ?1", params![keep_from])?;
        let found: Option<Vec<u8>> = tx
            .query_row("SELECT salt FROM salts WHERE day = ?1", params![day], |r| {
                r.get(0)
            })
            .optional()?;
        let salt = match found.and_then(|s| <[u8; 32]>::try_from(s).ok()) {
            Some(s) => s,
            None => {
                let mut s = [0u8; 32];
                getrandom::fill(&mut s).expect("random source");
                tx.execute(
                    "INSERT OR REPLACE INTO salts (day, salt) VALUES (?1, ?2)",
                    params![day, &s[..]],
                )?;
                s
            }
        };
        tx.commit()?;
        Ok(salt)
    }

    /// Writes one small row and commits: fails when the database cannot take writes (read-only,
    /// full disk, locked past the busy timeout, corrupt).
    pub fn check_writable(&self) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO probes (id, at) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET at = ?1",
            params![now()],
        )?;
        Ok(())
    }

    /// The salt of `day`, if one was made; never makes one.
    pub fn existing_salt(&self, day: &str) -> Result<Option<[u8; 32]>, StoreError> {
        let found: Option<Vec<u8>> = self
            .conn()
            .query_row("SELECT salt FROM salts WHERE day = ?1", params![day], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(found.and_then(|s| <[u8; 32]>::try_from(s).ok()))
    }

    /// Deletes the salts of days before `day`, so their hashes can never be recomputed.
    pub fn forget_salts_before(&self, day: &str) -> Result<(), StoreError> {
        self.conn()
            .execute("DELETE FROM salts WHERE day < ?1", params![day])?;
        Ok(())
    }

    /// Records uses of personal tokens, and returns each account-day whose distinct addresses
    /// now exceed `alert_above` for the first time (a new sharing flag).
    pub fn record_token_uses(
        &self,
        uses: &[TokenUse],
        alert_above: u64,
    ) -> Result<Vec<SharingFlag>, StoreError> {
        // One row per (account, day, address, app) and one last-use per account, however many
        // requests the batch holds: a busy app polling costs a handful of statements a second.
        let mut groups: std::collections::BTreeMap<(i64, &str, &str, &str), (i64, i64)> =
            Default::default();
        let mut last: std::collections::BTreeMap<i64, i64> = Default::default();
        for u in uses {
            let g = groups
                .entry((u.user_id, &u.day, &u.address, &u.app))
                .or_insert((0, 0));
            g.0 += u.requests;
            g.1 = g.1.max(u.at);
            let l = last.entry(u.user_id).or_insert(0);
            *l = (*l).max(u.at);
        }
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut touched = std::collections::BTreeSet::new();
        for ((user_id, day, address, app), (requests, at)) in groups {
            tx.execute(
                "INSERT INTO token_uses (user_id, day, address, app, requests, last_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (user_id, day, address, app)
                 DO UPDATE SET requests = requests + ?5, last_at = max(last_at, ?6)",
                params![user_id, day, address, app, requests, at],
            )?;
            touched.insert((user_id, day.to_owned()));
        }
        for (user_id, at) in last {
            tx.execute(
                "UPDATE feed_tokens SET last_used_at = max(coalesce(last_used_at, 0), ?2)
                 WHERE user_id = ?1",
                params![user_id, at],
            )?;
        }
        let mut flags = Vec::new();
        for (user_id, day) in touched {
            let addresses: i64 = tx.query_row(
                "SELECT count(DISTINCT address) FROM token_uses WHERE user_id = ?1 AND day = ?2",
                params![user_id, day],
                |r| r.get(0),
            )?;
            if addresses as u64 <= alert_above {
                continue;
            }
            let existed: bool = tx.query_row(
                "SELECT count(*) > 0 FROM sharing_flags WHERE user_id = ?1 AND day = ?2",
                params![user_id, day],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT INTO sharing_flags (user_id, day, addresses) VALUES (?1, ?2, ?3)
                 ON CONFLICT (user_id, day) DO UPDATE SET addresses = ?3",
                params![user_id, day, addresses],
            )?;
            if !existed {
                let user: String = tx.query_row(
                    "SELECT name FROM users WHERE id = ?1",
                    params![user_id],
                    |r| r.get(0),
                )?;
                flags.push(SharingFlag {
                    user,
                    day,
                    addresses: addresses as u64,
                });
            }
        }
        tx.commit()?;
        Ok(flags)
    }

    /// Personal-feed use per account and day, newest first, for the last `days` days.
    pub fn usage(&self, since_day: &str) -> Result<Vec<Usage>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT u.name, t.day, t.address, t.app, t.requests, t.last_at
             FROM token_uses t JOIN users u ON u.id = t.user_id
             WHERE t.day >= ?1 ORDER BY u.name, t.day DESC",
        )?;
        let rows = stmt.query_map(params![since_day], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?;
        let mut out: Vec<Usage> = Vec::new();
        let mut seen: std::collections::HashSet<(String, String, String)> = Default::default();
        for row in rows {
            let (user, day, address, app, requests, last_at) = row?;
            let same = out.last().is_some_and(|u| u.user == user && u.day == day);
            if !same {
                out.push(Usage {
                    user: user.clone(),
                    day: day.clone(),
                    addresses: 0,
                    apps: Vec::new(),
                    last_at,
                });
            }
            let u = out.last_mut().expect("pushed");
            if seen.insert((user, day, address)) {
                u.addresses += 1;
            }
            u.last_at = u.last_at.max(last_at);
            match u.apps.iter_mut().find(|(a, _)| *a == app) {
                Some((_, n)) => *n += requests as u64,
                None => u.apps.push((app, requests as u64)),
            }
        }
        // Most used first, then by name, whatever order the rows came in.
        for u in &mut out {
            u.apps
                .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        }
        Ok(out)
    }

    /// Sharing flags not yet dismissed, newest first.
    pub fn sharing_flags(&self) -> Result<Vec<SharingFlag>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT u.name, f.day, f.addresses FROM sharing_flags f JOIN users u ON u.id = f.user_id
             WHERE f.dismissed = 0 ORDER BY f.day DESC, u.name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(SharingFlag {
                user: r.get(0)?,
                day: r.get(1)?,
                addresses: r.get::<_, i64>(2)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Dismisses `user`'s sharing flag for `day`.
    pub fn dismiss_flag(&self, user: &str, day: &str) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "UPDATE sharing_flags SET dismissed = 1
             WHERE day = ?2 AND user_id = (SELECT id FROM users WHERE name = ?1)",
            params![user, day],
        )?;
        Ok(n > 0)
    }

    /// Appends to the audit log.
    pub fn audit(
        &self,
        actor: &str,
        action: &str,
        subject: &str,
        origin: &str,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO audit (at, actor, action, subject, origin) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![now(), actor, action, subject, origin],
        )?;
        Ok(())
    }

    /// The newest `limit` audit entries, newest first.
    pub fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT at, actor, action, subject, origin FROM audit ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map(params![limit as i64], |r| {
            Ok(AuditEntry {
                at: r.get(0)?,
                actor: r.get(1)?,
                action: r.get(2)?,
                subject: r.get(3)?,
                origin: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Secret;

    #[test]
    fn migrates_once_and_keeps_data_across_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/rollcall.db");
        let store = Store::open(&path).unwrap();
        store.add_user("ada", Role::Admin, "$argon2id$x").unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.users().unwrap()[0].name, "ada");
        let v: i64 = store
            .conn()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        let mode: String = store
            .conn()
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn the_wal_starts_over_empty_after_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let store = Store::open(&path).unwrap();
        let wal = dir.path().join("r.db-wal");
        let conn = store.conn();
        conn.execute_batch("CREATE TABLE scratch (b BLOB)").unwrap();
        conn.execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
             INSERT INTO scratch SELECT zeroblob(4000) FROM n",
        )
        .unwrap();
        let grown = std::fs::metadata(&wal).unwrap().len();
        assert!(grown > 4_000_000, "WAL of {grown} bytes");
        // What the autocheckpoint does every 16 MiB: copy the WAL back, with no reader to wait for.
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .unwrap();
        // The next write restarts the WAL, and truncates it to what that write adds.
        conn.execute("INSERT INTO scratch VALUES (x'00')", [])
            .unwrap();
        let after = std::fs::metadata(&wal).unwrap().len();
        assert!(after < 64 * 1024, "WAL of {after} bytes after a restart");
    }

    #[test]
    fn a_newer_schema_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rollcall.db");
        drop(Store::open(&path).unwrap());
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        drop(c);
        let e = Store::open(&path).unwrap_err().to_string();
        assert!(
            e.contains("schema version 99") && e.contains("upgrade"),
            "{e}"
        );
    }

    #[test]
    fn removing_a_user_ends_its_sessions_and_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("r.db")).unwrap();
        store.add_user("bo", Role::Officer, "h").unwrap();
        assert!(matches!(
            store.add_user("bo", Role::Admin, "h"),
            Err(StoreError::UserExists(_))
        ));
        let id = store.users().unwrap()[0].id;
        let session = Secret::generate().hash();
        let token = Secret::generate().hash();
        store
            .create_session(&session, id, Duration::from_secs(60))
            .unwrap();
        store.add_api_token("bo", &token).unwrap();
        assert_eq!(store.session(&session).unwrap().unwrap().name, "bo");
        assert_eq!(store.api_token(&token).unwrap().unwrap().name, "bo");
        store.remove_user("bo").unwrap();
        assert!(store.session(&session).unwrap().is_none());
        assert!(store.api_token(&token).unwrap().is_none());
        assert!(matches!(
            store.remove_user("bo"),
            Err(StoreError::NoSuchUser(_))
        ));
    }

    #[test]
    fn expired_sessions_are_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("r.db")).unwrap();
        store.add_user("cy", Role::Admin, "h").unwrap();
        let id = store.users().unwrap()[0].id;
        let s = Secret::generate().hash();
        store.create_session(&s, id, Duration::ZERO).unwrap();
        assert!(store.session(&s).unwrap().is_none());
    }
}
