//! The store: accounts, sessions, API tokens and the audit log, in embedded SQLite.
//!
//! All SQL in Rollcall is in this file. The database sits under `state_dir` (setting `database`),
//! in WAL mode with a busy timeout, so the CLI and a running server can use it at once. The schema
//! is migrated forward at open, tracked with `PRAGMA user_version`. Every call blocks: the http
//! layer runs them on tokio's blocking pool, never on an async worker.
//!
//! Secrets never reach this module in the clear: session ids and API tokens arrive as their
//! SHA-256 ([`crate::access::SecretHash`]) and are looked up by it, and passwords arrive as argon2id
//! PHC strings. The interface is a handful of domain calls (no SQL, no connection) so that a
//! PostgreSQL backend can stand behind the same calls later.

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
];

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
        let open_err = |source| StoreError::Open {
            path: path.to_owned(),
            source,
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
                "SELECT id, name, role, password_hash FROM users WHERE name = ?1",
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
                 WHERE s.id_hash = ?1 AND s.expires_at > ?2",
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
                 WHERE t.hash = ?1",
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
