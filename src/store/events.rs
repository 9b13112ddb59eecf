//! Download measurement in the store: raw events, downloads, the counting windows still open,
//! and the daily totals raw events are rolled up into once they pass the retention period.
//!
//! Nothing here holds a client address: events and downloads carry only its keyed hash (see
//! [`crate::stats::count`]).

use std::sync::Arc;

use rusqlite::params;

use super::{Store, StoreError};
use crate::stats::count::{Intervals, Window};

/// One media response, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Unix milliseconds.
    pub at: i64,
    pub day: Arc<str>,
    pub episode: Arc<str>,
    /// `GET` or `HEAD`: media answers no other method.
    pub method: &'static str,
    pub status: u16,
    pub range: Option<String>,
    /// Body bytes that reached the socket.
    pub bytes: u64,
    pub agent: Arc<str>,
    pub user_id: Option<i64>,
    /// A personal token's fingerprint (8 hex digits), for requests through one.
    pub fingerprint: Option<String>,
    /// The keyed hash of the client's address.
    pub address: Arc<str>,
    /// What it counted as ([`crate::stats::count::Verdict`]).
    pub verdict: &'static str,
}

/// One counted download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadRow {
    pub at: i64,
    pub day: Arc<str>,
    pub episode: Arc<str>,
    pub app: &'static str,
    pub device: Option<&'static str>,
    pub user_id: Option<i64>,
    pub address: Arc<str>,
}

/// What one pass of the measurement thread writes, in one transaction.
#[derive(Debug, Default)]
pub struct MeasurementBatch {
    pub events: Vec<Event>,
    pub downloads: Vec<DownloadRow>,
    /// Windows opened or changed, by key.
    pub windows: Vec<(String, Window)>,
    /// Keys of windows that closed.
    pub closed: Vec<String>,
}

impl MeasurementBatch {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.downloads.is_empty()
            && self.windows.is_empty()
            && self.closed.is_empty()
    }
}

/// Which downloads a report covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsQuery {
    /// From this UTC day on (`YYYY-MM-DD`), inclusive.
    pub since: Option<String>,
    pub episode: Option<String>,
}

/// Download figures, as the store counts them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: u64,
    /// Episode, downloads, distinct officers (accounts) among them.
    pub by_episode: Vec<(String, u64, u64)>,
    /// Day, downloads; oldest first.
    pub by_day: Vec<(String, u64)>,
    /// App, downloads; most first.
    pub by_app: Vec<(String, u64)>,
    /// Device ("unknown" where none matched), downloads; most first.
    pub by_device: Vec<(String, u64)>,
    /// Officer, episode, downloads: who listened to what, for members figures.
    pub by_officer: Vec<(String, String, u64)>,
    /// Every media request by what it counted as: verdict, requests, bytes.
    pub verdicts: Vec<(String, u64, u64)>,
}

/// Rows per `INSERT` of events.
const EVENTS_PER_INSERT: usize = 64;

/// The `INSERT` of `n` events.
fn events_insert(n: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO events (at, episode, status, range, bytes, agent, user_id, fingerprint,
         address, verdict) VALUES ",
    );
    for i in 0..n {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str("(?,?,?,?,?,?,?,?,?,?)");
    }
    sql
}

impl Store {
    /// Writes one batch of events, downloads and window changes, all or nothing.
    pub fn record_measurement(&self, batch: &MeasurementBatch) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            // Many rows per statement: one statement per row would cost more in SQLite's
            // per-statement work than the rows themselves.
            // Full chunks share one statement, held for the whole batch (handing a statement
            // back to the cache clears its hundreds of bindings), and the rest go one by one.
            let full = batch.events.len() / EVENTS_PER_INSERT * EVENTS_PER_INSERT;
            let (many, rest) = batch.events.split_at(full);
            let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(EVENTS_PER_INSERT * 10);
            let bytes: Vec<i64> = batch.events.iter().map(|e| e.bytes as i64).collect();
            let (many_bytes, rest_bytes) = bytes.split_at(full);
            let mut insert_many = tx.prepare_cached(&events_insert(EVENTS_PER_INSERT))?;
            let mut insert_one = tx.prepare_cached(&events_insert(1))?;
            let chunks = many
                .chunks(EVENTS_PER_INSERT)
                .zip(many_bytes.chunks(EVENTS_PER_INSERT))
                .map(|c| (c, true))
                .chain(rest.chunks(1).zip(rest_bytes.chunks(1)).map(|c| (c, false)));
            for ((chunk, bytes), full) in chunks {
                values.clear();
                for (e, bytes) in chunk.iter().zip(bytes) {
                    values.extend_from_slice(&[
                        &e.at as &dyn rusqlite::ToSql,
                        &e.episode,
                        &e.status,
                        &e.range,
                        bytes,
                        &e.agent,
                        &e.user_id,
                        &e.fingerprint,
                        &e.address,
                        &e.verdict,
                    ]);
                }
                if full {
                    insert_many.execute(values.as_slice())?;
                } else {
                    insert_one.execute(values.as_slice())?;
                }
            }
            drop((insert_many, insert_one));
            let mut insert = tx.prepare_cached(
                "INSERT INTO downloads (at, day, episode, app, device, user_id, address)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for d in &batch.downloads {
                insert.execute(params![
                    d.at,
                    &*d.day,
                    &*d.episode,
                    d.app,
                    d.device,
                    d.user_id,
                    &*d.address
                ])?;
            }
            let mut upsert = tx.prepare_cached(
                "INSERT INTO count_windows (key, opened_at, covered, counted)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (key) DO UPDATE SET opened_at = ?2, covered = ?3, counted = ?4",
            )?;
            for (key, w) in &batch.windows {
                upsert.execute(params![key, w.opened_ms, w.covered.to_text(), w.counted])?;
            }
            let mut delete = tx.prepare_cached("DELETE FROM count_windows WHERE key = ?1")?;
            for key in &batch.closed {
                delete.execute(params![key])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The counting windows stored as open, to resume counting after a restart.
    pub fn open_windows(&self) -> Result<Vec<(String, Window)>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT key, opened_at, covered, counted FROM count_windows")?;
        let rows = stmt.query_map([], |r| {
            let covered: String = r.get(2)?;
            Ok((
                r.get::<_, String>(0)?,
                Window {
                    opened_ms: r.get(1)?,
                    covered: Intervals::from_text(&covered).unwrap_or_default(),
                    counted: r.get(3)?,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Rolls raw events older than `before_ms` up into daily totals per episode and verdict, and
    /// deletes them. Returns how many were rolled up.
    ///
    /// Events are stored in the order their responses ended, so ids rise nearly with `at`; the
    /// roll-up takes the run of old events at the low end, up to the first one that is not old,
    /// and reads nothing past it. (Scanning the whole table for `at < before_ms`, without an
    /// index, which every insert would pay for, read all of it each hour: 0.2 s of CPU at
    /// each start for a million events.) An old event stored after a newer one, such as a
    /// download that outlasted the ones after it, waits for a later roll-up; no event younger
    /// than `before_ms` is ever rolled up.
    pub fn roll_up(&self, before_ms: i64) -> Result<u64, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        // The first id that stays: the first event that is not old, or past the last event.
        let end: i64 = tx.query_row(
            "SELECT coalesce(
                (SELECT id FROM events WHERE at >= ?1 ORDER BY id LIMIT 1),
                (SELECT max(id) + 1 FROM events),
                0)",
            params![before_ms],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT INTO daily_events (day, episode, verdict, requests, bytes)
             SELECT date(at / 1000, 'unixepoch'), episode, verdict, count(*), sum(bytes)
             FROM events WHERE id < ?1
             GROUP BY 1, episode, verdict
             ON CONFLICT (day, episode, verdict)
             DO UPDATE SET requests = requests + excluded.requests, bytes = bytes + excluded.bytes",
            params![end],
        )?;
        let n = tx.execute("DELETE FROM events WHERE id < ?1", params![end])?;
        tx.commit()?;
        Ok(n as u64)
    }

    /// Download figures for `q`.
    pub fn download_counts(&self, q: &StatsQuery) -> Result<Counts, StoreError> {
        let conn = self.conn();
        let since = q.since.clone().unwrap_or_default();
        let episode = q.episode.clone();
        // Both filters in every query: `?1` the first day, `?2` the episode or NULL for all.
        let filter = "d.day >= ?1 AND (?2 IS NULL OR d.episode = ?2)";
        let pairs = |sql: &str| -> Result<Vec<(String, u64)>, StoreError> {
            let mut stmt = conn.prepare(sql)?;
            let rows = stmt.query_map(params![since, episode], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        };
        let by_day = pairs(&format!(
            "SELECT d.day, count(*) FROM downloads d WHERE {filter} GROUP BY d.day ORDER BY d.day"
        ))?;
        let by_app = pairs(&format!(
            "SELECT d.app, count(*) AS n FROM downloads d WHERE {filter}
             GROUP BY d.app ORDER BY n DESC, d.app"
        ))?;
        let by_device = pairs(&format!(
            "SELECT coalesce(d.device, 'unknown'), count(*) AS n FROM downloads d WHERE {filter}
             GROUP BY 1 ORDER BY n DESC, 1"
        ))?;
        let mut stmt = conn.prepare(&format!(
            "SELECT d.episode, count(*) AS n, count(DISTINCT d.user_id) FROM downloads d
             WHERE {filter} GROUP BY d.episode ORDER BY n DESC, d.episode"
        ))?;
        let by_episode = stmt
            .query_map(params![since, episode], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, i64>(2)? as u64,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT coalesce(u.name, '#' || d.user_id), d.episode, count(*) FROM downloads d
             LEFT JOIN users u ON u.id = d.user_id
             WHERE {filter} AND d.user_id IS NOT NULL
             GROUP BY d.user_id, d.episode ORDER BY 1, 2"
        ))?;
        let by_officer = stmt
            .query_map(params![since, episode], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT verdict, sum(requests), sum(bytes) FROM (
                SELECT d.verdict, count(*) AS requests, sum(d.bytes) AS bytes FROM events d
                WHERE date(d.at / 1000, 'unixepoch') >= ?1 AND (?2 IS NULL OR d.episode = ?2)
                GROUP BY d.verdict
                UNION ALL
                SELECT d.verdict, sum(d.requests), sum(d.bytes) FROM daily_events d
                WHERE {filter} GROUP BY d.verdict
             ) GROUP BY verdict ORDER BY 2 DESC, 1"
        ))?;
        let verdicts = stmt
            .query_map(params![since, episode], |r| {
                Ok((
                    r.get(0)?,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, Option<i64>>(2)?.unwrap_or(0) as u64,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Counts {
            total: by_episode.iter().map(|e| e.1).sum(),
            by_episode,
            by_day,
            by_app,
            by_device,
            by_officer,
            verdicts,
        })
    }

    /// Downloads per address hash on `day`, for the per-address limit after a restart.
    pub fn address_downloads(
        &self,
        day: &str,
    ) -> Result<std::collections::HashMap<String, u64>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT address, count(*) FROM downloads WHERE day = ?1 GROUP BY address")?;
        let rows = stmt.query_map(params![day], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Raw events stored, oldest first (for tests and `rollcall stats --events`).
    pub fn events(&self, limit: usize) -> Result<Vec<Event>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT at, date(at / 1000, 'unixepoch'), episode, verdict, status, range, bytes,
                    agent, user_id, fingerprint, address, verdict
             FROM events ORDER BY id LIMIT ?1",
        )?;
        let rows = stmt.query_map(params![limit as i64], |r| {
            let verdict: String = r.get(11)?;
            let method: String = r.get(3)?;
            // Every HEAD request's verdict is `head`.
            Ok(Event {
                at: r.get(0)?,
                day: r.get::<_, String>(1)?.into(),
                episode: r.get::<_, String>(2)?.into(),
                method: if method == "head" { "HEAD" } else { "GET" },
                status: r.get(4)?,
                range: r.get(5)?,
                bytes: r.get::<_, i64>(6)? as u64,
                agent: r.get::<_, String>(7)?.into(),
                user_id: r.get(8)?,
                fingerprint: r.get(9)?,
                address: r.get::<_, String>(10)?.into(),
                verdict: crate::stats::count::Verdict::parse(&verdict)
                    .map_or("unknown", |v| v.as_str()),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Milliseconds into `day` (UTC).
    fn ms(day: &str, offset: i64) -> i64 {
        let d = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
        d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis() + offset
    }

    fn event(at: i64, day: &str, verdict: &'static str) -> Event {
        Event {
            at: ms(day, at),
            day: day.into(),
            episode: "ep".into(),
            method: "GET",
            status: 206,
            range: Some("bytes=0-".into()),
            bytes: 100,
            agent: "AntennaPod/3".into(),
            user_id: None,
            fingerprint: None,
            address: "00ff".into(),
            verdict,
        }
    }

    #[test]
    fn a_roll_up_takes_the_old_events_up_to_the_first_young_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        // Stored in this order: two old, one young, then an old one that ended late.
        let events = vec![
            event(1, "2026-01-01", "partial"),
            event(2, "2026-01-01", "download"),
            event(3, "2026-01-03", "probe"),
            event(4, "2026-01-01", "download"),
        ];
        store
            .record_measurement(&MeasurementBatch {
                events: events.clone(),
                ..Default::default()
            })
            .unwrap();
        let cutoff = ms("2026-01-02", 0);
        assert_eq!(store.roll_up(cutoff).unwrap(), 2, "the run of old events");
        let left = store.events(10).unwrap();
        assert_eq!(left.len(), 2);
        assert!(left.contains(&events[2]) && left.contains(&events[3]));
        assert_eq!(
            store.roll_up(cutoff).unwrap(),
            0,
            "nothing more before a young event"
        );
        // Once the young event is old too, everything goes, the late one included.
        assert_eq!(store.roll_up(ms("2026-01-04", 0)).unwrap(), 2);
        assert!(store.events(10).unwrap().is_empty());
        assert_eq!(
            store.roll_up(ms("2026-01-04", 0)).unwrap(),
            0,
            "an empty table"
        );
        let c = store.download_counts(&StatsQuery::default()).unwrap();
        let requests: u64 = c.verdicts.iter().map(|v| v.1).sum();
        assert_eq!(
            requests, 4,
            "every event is in the daily totals: {:?}",
            c.verdicts
        );
    }

    #[test]
    fn batches_windows_and_roll_ups_keep_every_figure() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let mut w = Window {
            opened_ms: 5,
            covered: Intervals::from_pairs(&[(0, 10)]),
            counted: false,
        };
        store
            .record_measurement(&MeasurementBatch {
                events: vec![
                    event(1, "2026-01-01", "partial"),
                    event(2, "2026-01-01", "download"),
                    event(3, "2026-01-02", "probe"),
                ],
                downloads: vec![DownloadRow {
                    at: ms("2026-01-01", 2),
                    day: "2026-01-01".into(),
                    episode: "ep".into(),
                    app: "AntennaPod",
                    device: None,
                    user_id: None,
                    address: "00ff".into(),
                }],
                windows: vec![("k".into(), w.clone())],
                closed: vec![],
            })
            .unwrap();
        assert_eq!(store.open_windows().unwrap(), [("k".to_owned(), w.clone())]);
        w.counted = true;
        store
            .record_measurement(&MeasurementBatch {
                windows: vec![("k".into(), w.clone())],
                ..Default::default()
            })
            .unwrap();
        assert!(store.open_windows().unwrap()[0].1.counted);
        let before = store.download_counts(&StatsQuery::default()).unwrap();
        assert_eq!(before.total, 1);
        assert_eq!(before.by_device, [("unknown".to_owned(), 1)]);
        assert_eq!(store.roll_up(ms("2026-01-02", 0)).unwrap(), 2);
        let left = store.events(10).unwrap();
        assert_eq!(left, [event(3, "2026-01-02", "probe")], "read back whole");
        let after = store.download_counts(&StatsQuery::default()).unwrap();
        assert_eq!(before, after, "rolling up changes no figure");
        let since = StatsQuery {
            since: Some("2026-01-02".into()),
            episode: None,
        };
        let c = store.download_counts(&since).unwrap();
        assert_eq!(
            (c.total, c.verdicts),
            (0, vec![("probe".to_owned(), 1, 100)])
        );
        store
            .record_measurement(&MeasurementBatch {
                closed: vec!["k".into()],
                ..Default::default()
            })
            .unwrap();
        assert!(store.open_windows().unwrap().is_empty());
    }
}
