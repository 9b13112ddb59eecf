//! Reads typed fields out of a parsed TOML table while collecting every problem.
//!
//! serde stops at the first bad field. Catalog files are written by hand, so `rollcall check` should
//! report every mistake in one run; this reader records a [`Problem`] per bad field and carries on.

use chrono::{DateTime, FixedOffset};
use toml::{Table, Value};

use super::Problem;

/// The years a release date may have: feeds write RFC 2822 dates, whose years are four digits
/// from 1900 (RFC 5322 3.3), and `episode.toml` dates are four-digit TOML dates.
pub const PUBLISHED_YEARS: std::ops::RangeInclusive<i32> = 1900..=9999;

/// The problem with a date `text` whose year is not in [`PUBLISHED_YEARS`].
pub fn outside_published_years(text: &str) -> String {
    format!(
        "{text:?} has a year outside {} to {}",
        PUBLISHED_YEARS.start(),
        PUBLISHED_YEARS.end()
    )
}

/// Field reader over one TOML table. `prefix` is prepended to field names, e.g. `guests[0].`.
pub struct Fields<'a> {
    pub file: &'a str,
    table: &'a Table,
    prefix: String,
    seen: Vec<&'static str>,
    pub problems: &'a mut Vec<Problem>,
}

impl<'a> Fields<'a> {
    pub fn new(
        file: &'a str,
        table: &'a Table,
        prefix: String,
        problems: &'a mut Vec<Problem>,
    ) -> Self {
        Fields {
            file,
            table,
            prefix,
            seen: Vec::new(),
            problems,
        }
    }

    pub fn problem(&mut self, field: &str, what: impl Into<String>, fix: impl Into<String>) {
        self.problems.push(Problem::new(
            self.file,
            format!("{}{}", self.prefix, field),
            what,
            fix,
        ));
    }

    /// The raw value, for fields that accept more than one type.
    pub fn raw(&mut self, key: &'static str) -> Option<&'a Value> {
        self.get(key)
    }

    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.seen.push(key);
        self.table.get(key)
    }

    fn wrong_type(&mut self, key: &str, want: &str, got: &Value) {
        self.problem(
            key,
            format!("expected {want}, found {}", got.type_str()),
            format!("write {key} as {want}"),
        );
    }

    pub fn opt_str(&mut self, key: &'static str) -> Option<String> {
        match self.get(key)? {
            Value::String(s) => Some(s.clone()),
            other => {
                self.wrong_type(key, "a string", other);
                None
            }
        }
    }

    /// A required text that feeds and pages show: its control characters (which XML forbids)
    /// are removed, and it must not be blank without them.
    pub fn req_text(&mut self, key: &'static str, example: &str) -> Option<String> {
        let text = strip_controls(self.req_str(key, example)?);
        if text.trim().is_empty() {
            self.problem(
                key,
                "is empty once its control characters are removed",
                format!("write it like {key} = {example}"),
            );
            return None;
        }
        Some(text)
    }

    /// A required identifier (a GUID, an email address) that must be written exactly as it is:
    /// a character XML forbids is refused by name rather than removed.
    pub fn req_plain(&mut self, key: &'static str, example: &str) -> Option<String> {
        let text = self.req_str(key, example)?;
        if let Some(c) = text.chars().find(|&c| !allowed_in_text(c)) {
            self.problem(
                key,
                format!(
                    "contains the control character U+{:04X}, which XML forbids",
                    c as u32
                ),
                format!("remove it: write it like {key} = {example}"),
            );
            return None;
        }
        Some(text)
    }

    /// A required, non-blank string.
    pub fn req_str(&mut self, key: &'static str, example: &str) -> Option<String> {
        let present = self.table.contains_key(key);
        match self.opt_str(key) {
            Some(s) if !s.trim().is_empty() => Some(s),
            Some(_) => {
                self.problem(key, "is empty", format!("write it like {key} = {example}"));
                None
            }
            None if !present => {
                self.problem(key, "is missing", format!("add {key} = {example}"));
                None
            }
            None => None,
        }
    }

    pub fn opt_bool(&mut self, key: &'static str) -> Option<bool> {
        match self.get(key)? {
            Value::Boolean(b) => Some(*b),
            other => {
                self.wrong_type(key, "true or false", other);
                None
            }
        }
    }

    pub fn opt_uint(&mut self, key: &'static str) -> Option<u64> {
        match self.get(key)? {
            Value::Integer(i) if *i >= 0 => Some(*i as u64),
            Value::Integer(i) => {
                self.problem(
                    key,
                    format!("{i} is negative"),
                    "use a whole number of 0 or more",
                );
                None
            }
            other => {
                self.wrong_type(key, "a whole number", other);
                None
            }
        }
    }

    pub fn opt_str_list(&mut self, key: &'static str) -> Option<Vec<String>> {
        match self.get(key)? {
            Value::Array(items) => {
                let mut out = Vec::new();
                for item in items {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        other => {
                            self.wrong_type(key, "a list of strings", other);
                            return None;
                        }
                    }
                }
                Some(out)
            }
            other => {
                self.wrong_type(key, "a list of strings", other);
                None
            }
        }
    }

    /// An array of tables such as `[[guests]]`; each element comes back with its index.
    pub fn tables(&mut self, key: &'static str) -> Vec<&'a Table> {
        match self.get(key) {
            None => Vec::new(),
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for item in items {
                    match item {
                        Value::Table(t) => out.push(t),
                        other => {
                            let fix = format!("write each entry as a [[{key}]] table");
                            self.problem(
                                key,
                                format!("expected tables, found {}", other.type_str()),
                                fix,
                            );
                            return Vec::new();
                        }
                    }
                }
                out
            }
            Some(other) => {
                self.wrong_type(key, &format!("[[{key}]] tables"), other);
                Vec::new()
            }
        }
    }

    pub fn opt_table(&mut self, key: &'static str) -> Option<&'a Table> {
        match self.get(key)? {
            Value::Table(t) => Some(t),
            other => {
                self.wrong_type(key, &format!("a [{key}] table"), other);
                None
            }
        }
    }

    /// A date and time with a zone offset, as a TOML datetime or an RFC 3339 string.
    pub fn req_datetime(&mut self, key: &'static str) -> Option<DateTime<FixedOffset>> {
        let example = "2016-06-30T09:00:00-04:00";
        let text = match self.get(key) {
            None => {
                self.problem(key, "is missing", format!("add {key} = {example}"));
                return None;
            }
            Some(Value::Datetime(d)) => d.to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                let other = other.clone();
                self.wrong_type(key, "a date and time", &other);
                return None;
            }
        };
        match DateTime::parse_from_rfc3339(&text) {
            Ok(d) if !PUBLISHED_YEARS.contains(&chrono::Datelike::year(&d)) => {
                self.problem(
                    key,
                    outside_published_years(&text),
                    format!("write the release date, like {key} = {example}"),
                );
                None
            }
            Ok(d) => Some(d),
            Err(_) => {
                self.problem(
                    key,
                    format!("{text:?} is not a date and time with a time zone"),
                    format!("write it like {key} = {example}"),
                );
                None
            }
        }
    }

    /// Reports keys that no reader asked for: usually typos.
    pub fn finish(mut self, known_tables: &[&str]) {
        let unknown: Vec<String> = self
            .table
            .keys()
            .filter(|k| !self.seen.contains(&k.as_str()) && !known_tables.contains(&k.as_str()))
            .cloned()
            .collect();
        let mut expected: Vec<&str> = self.seen.clone();
        expected.extend_from_slice(known_tables);
        expected.sort_unstable();
        expected.dedup();
        for key in unknown {
            self.problem(
                &key,
                "is not a known field",
                format!("remove it or use one of: {}", expected.join(", ")),
            );
        }
    }
}

/// Removes characters that XML 1.0 forbids (C0 controls other than tab, newline and carriage return,
/// DEL-range C1 is allowed but U+FFFE/U+FFFF are not), so any text stays well-formed in a feed.
pub fn strip_controls(s: impl Into<String>) -> String {
    let s = s.into();
    // Nearly every text is clean, and is returned as it came: one byte scan, no copy. (U+FFFE
    // and U+FFFF are the only refused characters outside ASCII; both start with byte 0xEF.)
    let clean_ascii = s
        .bytes()
        .all(|b| (b >= 0x20 && b != 0x7f) || matches!(b, b'\t' | b'\n' | b'\r'));
    if clean_ascii && (!s.as_bytes().contains(&0xef) || s.chars().all(allowed_in_text)) {
        return s;
    }
    s.chars().filter(|&c| allowed_in_text(c)).collect()
}

/// Whether `c` may stay in catalog text: not a C0 control other than tab, newline and carriage
/// return, not DEL, and not U+FFFE or U+FFFF.
fn allowed_in_text(c: char) -> bool {
    !((c < '\u{20}' && !matches!(c, '\t' | '\n' | '\r'))
        || c == '\u{7f}'
        || c == '\u{fffe}'
        || c == '\u{ffff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_dates_outside_four_digit_years_are_refused_by_name() {
        for (text, ok) in [
            ("published = 2016-06-30T09:00:00-04:00", true),
            ("published = 1899-12-31T00:00:00Z", false),
            ("published = \"0001-01-01T00:00:00Z\"", false),
        ] {
            let table: Table = text.parse().unwrap();
            let mut problems = Vec::new();
            let got = Fields::new("episode.toml", &table, String::new(), &mut problems)
                .req_datetime("published");
            assert_eq!(got.is_some(), ok, "{text}");
            if !ok {
                assert!(
                    problems[0]
                        .to_string()
                        .contains("has a year outside 1900 to 9999"),
                    "{}",
                    problems[0]
                );
            }
        }
    }

    #[test]
    fn strip_controls_keeps_whitespace_and_text() {
        assert_eq!(strip_controls("a\u{0}b\u{1b}c\td\ne\u{7f}"), "abc\td\ne");
        assert_eq!(strip_controls("Fish & <Chips> ]]>"), "Fish & <Chips> ]]>");
        // The two refused characters outside ASCII; other characters starting with byte 0xEF stay.
        assert_eq!(
            strip_controls("a\u{fffe}b\u{ffff}c\u{feff}d\u{ef}"),
            "abc\u{feff}d\u{ef}"
        );
        assert_eq!(strip_controls(String::from("été")), "été");
    }
}
