//! Conditional requests (RFC 9110 section 13): preconditions, evaluated in the RFC's order, and
//! `If-Range`. Pure functions over header text and the representation's validators.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The validators of the selected representation.
#[derive(Debug, Clone, Copy)]
pub struct Validators<'a> {
    /// Strong entity tag, quoted.
    pub etag: &'a str,
    /// Other tags that name the same content (for example the same feed in another encoding);
    /// they match `If-None-Match` but never `If-Match` or `If-Range`.
    pub alternates: &'a [&'a str],
    pub last_modified: SystemTime,
}

/// The conditional request headers, as received.
#[derive(Debug, Clone, Copy, Default)]
pub struct Conditions<'a> {
    pub if_match: Option<&'a str>,
    pub if_unmodified_since: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
    pub if_modified_since: Option<&'a str>,
    pub if_range: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Serve the request normally.
    Proceed,
    /// 304 Not Modified (GET and HEAD only).
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// One entity tag from a list.
#[derive(Debug, PartialEq, Eq)]
struct Tag<'a> {
    weak: bool,
    opaque: &'a str,
}

/// Parses `"*"` (None) or a list of entity tags. Malformed input yields no tags, which matches nothing.
/// The list is checked whole here and walked again by [`TagList::iter`], so asking costs no
/// allocation (every conditional poll asks).
fn tags(list: &str) -> Option<TagList<'_>> {
    if list.trim() == "*" {
        return None;
    }
    let well_formed = TagIter { rest: list }.all(|t| t.is_some());
    Some(TagList {
        list: if well_formed { list } else { "" },
    })
}

/// A well-formed list of entity tags (or none, where the list was malformed).
#[derive(Clone, Copy)]
struct TagList<'a> {
    list: &'a str,
}

impl<'a> TagList<'a> {
    fn iter(self) -> impl Iterator<Item = Tag<'a>> {
        TagIter { rest: self.list }.map_while(|t| t)
    }
}

/// Walks a list of entity tags: `Some(tag)` for each, one `None` at the first malformed one.
struct TagIter<'a> {
    rest: &'a str,
}

impl<'a> Iterator for TagIter<'a> {
    type Item = Option<Tag<'a>>;

    fn next(&mut self) -> Option<Option<Tag<'a>>> {
        let rest = self.rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            self.rest = rest;
            return None;
        }
        // Whatever follows a malformed tag is not read.
        self.rest = "";
        let (weak, rest) = match rest.strip_prefix("W/") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let Some((body, end)) = rest
            .strip_prefix('"')
            .and_then(|body| Some((body, body.find('"')?)))
        else {
            return Some(None);
        };
        self.rest = &body[end + 1..];
        Some(Some(Tag {
            weak,
            opaque: &body[..end],
        }))
    }
}

fn opaque(etag: &str) -> &str {
    etag.trim_start_matches("W/").trim_matches('"')
}

fn strong_match(list: &str, etag: &str) -> bool {
    match tags(list) {
        None => true,
        Some(ts) => ts.iter().any(|t| !t.weak && t.opaque == opaque(etag)),
    }
}

fn weak_match(list: &str, v: &Validators) -> bool {
    match tags(list) {
        None => true,
        Some(ts) => ts.iter().any(|t| {
            t.opaque == opaque(v.etag) || v.alternates.iter().any(|a| t.opaque == opaque(a))
        }),
    }
}

/// Whole seconds, as HTTP dates carry.
fn seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

fn http_date_secs(text: &str) -> Option<u64> {
    httpdate::parse_http_date(text.trim()).ok().map(seconds)
}

/// Evaluates preconditions in the order RFC 9110 section 13.2.2 fixes:
/// If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since.
/// `safe` is true for GET and HEAD.
pub fn evaluate(c: &Conditions, v: &Validators, safe: bool) -> Precondition {
    let modified = seconds(v.last_modified);
    if let Some(list) = c.if_match {
        if !strong_match(list, v.etag) {
            return Precondition::Failed;
        }
    } else if let Some(date) = c.if_unmodified_since.and_then(http_date_secs) {
        if modified > date {
            return Precondition::Failed;
        }
    }
    if let Some(list) = c.if_none_match {
        if weak_match(list, v) {
            return if safe {
                Precondition::NotModified
            } else {
                Precondition::Failed
            };
        }
    } else if let Some(date) = c
        .if_modified_since
        .filter(|_| safe)
        .and_then(http_date_secs)
    {
        if modified <= date {
            return Precondition::NotModified;
        }
    }
    Precondition::Proceed
}

/// Whether a `Range` request may be honoured under its `If-Range`: an entity tag must match strongly,
/// a date must equal Last-Modified exactly. Without `If-Range` it holds.
pub fn if_range_holds(c: &Conditions, v: &Validators) -> bool {
    let Some(value) = c.if_range.map(str::trim) else {
        return true;
    };
    if value.starts_with('"') || value.starts_with("W/") {
        let Some(ts) = tags(value) else {
            return false;
        };
        let mut ts = ts.iter();
        match (ts.next(), ts.next()) {
            (Some(t), None) => !t.weak && t.opaque == opaque(v.etag),
            _ => false,
        }
    } else {
        http_date_secs(value) == Some(seconds(v.last_modified))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ETAG: &str = "\"abc\"";

    fn v() -> Validators<'static> {
        Validators {
            etag: ETAG,
            alternates: &["\"abc-gzip\""],
            // Sun, 06 Nov 1994 08:49:37 GMT
            last_modified: UNIX_EPOCH + Duration::from_secs(784111777),
        }
    }

    const LM: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const BEFORE: &str = "Sun, 06 Nov 1994 08:49:36 GMT";
    const AFTER: &str = "Sun, 06 Nov 1994 08:49:38 GMT";

    fn eval(c: Conditions) -> Precondition {
        evaluate(&c, &v(), true)
    }

    #[test]
    fn tag_lists_parse_whole_or_not_at_all() {
        let parsed = |list| {
            tags(list).map(|ts| {
                ts.iter()
                    .map(|t| (t.weak, t.opaque.to_owned()))
                    .collect::<Vec<_>>()
            })
        };
        let list = parsed(" \"a\",W/\"b\" ,\t\"\" ,, ").expect("a list");
        assert_eq!(
            list,
            [
                (false, "a".to_owned()),
                (true, "b".to_owned()),
                (false, String::new())
            ]
        );
        assert_eq!(parsed(" * "), None);
        assert_eq!(parsed(""), Some(vec![]));
        // A malformed tag anywhere leaves no tags at all, even the well-formed ones before it.
        for bad in [
            "\"a\", junk",
            "\"a\", \"b",
            "W/b",
            "\"a\" W/",
            "\"a\"\"b\"x",
        ] {
            assert_eq!(parsed(bad), Some(vec![]), "{bad}");
        }
    }

    #[test]
    fn no_conditions_proceed() {
        assert_eq!(eval(Conditions::default()), Precondition::Proceed);
    }

    #[test]
    fn if_match_uses_strong_comparison() {
        let c = |s| Conditions {
            if_match: Some(s),
            ..Default::default()
        };
        assert_eq!(eval(c("\"abc\"")), Precondition::Proceed);
        assert_eq!(eval(c("\"x\", \"abc\"")), Precondition::Proceed);
        assert_eq!(eval(c("*")), Precondition::Proceed);
        assert_eq!(
            eval(c("W/\"abc\"")),
            Precondition::Failed,
            "weak tags never match If-Match"
        );
        assert_eq!(eval(c("\"other\"")), Precondition::Failed);
        assert_eq!(
            eval(c("\"abc-gzip\"")),
            Precondition::Failed,
            "alternates are not the same bytes"
        );
        assert_eq!(eval(c("garbage")), Precondition::Failed);
    }

    #[test]
    fn if_unmodified_since() {
        let c = |s| Conditions {
            if_unmodified_since: Some(s),
            ..Default::default()
        };
        assert_eq!(eval(c(LM)), Precondition::Proceed);
        assert_eq!(eval(c(AFTER)), Precondition::Proceed);
        assert_eq!(eval(c(BEFORE)), Precondition::Failed);
        assert_eq!(
            eval(c("not a date")),
            Precondition::Proceed,
            "an invalid date is ignored"
        );
    }

    #[test]
    fn if_match_takes_precedence_over_if_unmodified_since() {
        let c = Conditions {
            if_match: Some(ETAG),
            if_unmodified_since: Some(BEFORE),
            ..Default::default()
        };
        assert_eq!(eval(c), Precondition::Proceed);
    }

    #[test]
    fn if_none_match_uses_weak_comparison() {
        let c = |s| Conditions {
            if_none_match: Some(s),
            ..Default::default()
        };
        assert_eq!(eval(c("\"abc\"")), Precondition::NotModified);
        assert_eq!(eval(c("W/\"abc\"")), Precondition::NotModified);
        assert_eq!(eval(c("\"abc-gzip\"")), Precondition::NotModified);
        assert_eq!(eval(c("*")), Precondition::NotModified);
        assert_eq!(eval(c("\"other\"")), Precondition::Proceed);
        assert_eq!(
            evaluate(&c("\"abc\""), &v(), false),
            Precondition::Failed,
            "unsafe methods get 412"
        );
    }

    #[test]
    fn if_modified_since() {
        let c = |s| Conditions {
            if_modified_since: Some(s),
            ..Default::default()
        };
        assert_eq!(eval(c(LM)), Precondition::NotModified);
        assert_eq!(eval(c(AFTER)), Precondition::NotModified);
        assert_eq!(eval(c(BEFORE)), Precondition::Proceed);
        assert_eq!(
            eval(c("Sunday, 06-Nov-94 08:49:37 GMT")),
            Precondition::NotModified,
            "RFC 850 dates"
        );
        assert_eq!(
            eval(c("Sun Nov  6 08:49:37 1994")),
            Precondition::NotModified,
            "asctime dates"
        );
        assert_eq!(eval(c("yesterday")), Precondition::Proceed);
        assert_eq!(
            evaluate(&c(LM), &v(), false),
            Precondition::Proceed,
            "only for GET and HEAD"
        );
    }

    #[test]
    fn if_none_match_takes_precedence_over_if_modified_since() {
        let c = Conditions {
            if_none_match: Some("\"other\""),
            if_modified_since: Some(AFTER),
            ..Default::default()
        };
        assert_eq!(eval(c), Precondition::Proceed);
    }

    #[test]
    fn failed_if_match_wins_over_not_modified() {
        let c = Conditions {
            if_match: Some("\"other\""),
            if_none_match: Some(ETAG),
            ..Default::default()
        };
        assert_eq!(eval(c), Precondition::Failed);
    }

    #[test]
    fn if_range_with_etag_is_strong() {
        let c = |s| Conditions {
            if_range: Some(s),
            ..Default::default()
        };
        assert!(if_range_holds(&c("\"abc\""), &v()));
        assert!(!if_range_holds(&c("W/\"abc\""), &v()));
        assert!(!if_range_holds(&c("\"old\""), &v()));
        assert!(!if_range_holds(&c("\"abc-gzip\""), &v()));
        assert!(if_range_holds(&Conditions::default(), &v()));
    }

    #[test]
    fn if_range_with_date_must_be_exact() {
        let c = |s| Conditions {
            if_range: Some(s),
            ..Default::default()
        };
        assert!(if_range_holds(&c(LM), &v()));
        assert!(
            !if_range_holds(&c(AFTER), &v()),
            "a later date is not the same validator"
        );
        assert!(!if_range_holds(&c(BEFORE), &v()));
        assert!(!if_range_holds(&c("garbage"), &v()));
    }
}
