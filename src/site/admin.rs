//! The admin pages under `/admin`: sign-in, the episode list with the audit log, and the add and
//! edit forms. Rendered from `templates/admin_*.html` on each request (admins are few, and the
//! pages show live state); the http layer decides who may see them and handles the forms.

use askama::Template;

use super::{format, render, static_url};
use crate::catalog::{Catalog, Episode, Guest, Resource};
use crate::store::{AuditEntry, Officer, SharingFlag, Usage};

/// What the shared admin layout (`admin_base.html`) shows.
struct Layout<'a> {
    title: &'a str,
    css: &'static str,
    js: &'static str,
    user: Option<&'a str>,
    csrf: &'a str,
    notice: Option<&'a str>,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "admin_sign_in.html")]
struct SignInPage<'a> {
    l: Layout<'a>,
}

/// The sign-in form; `csrf` is the value of the pre-session cookie.
pub fn sign_in_page(csrf: &str, error: Option<&str>) -> String {
    render(&SignInPage {
        l: Layout {
            title: "Sign in",
            css: static_url("site.css"),
            js: static_url("admin.js"),
            user: None,
            csrf,
            notice: None,
            error,
        },
    })
}

struct Row<'a> {
    slug: &'a str,
    title: &'a str,
    date_iso: String,
    date_text: String,
    status: &'static str,
    duration: String,
    feeds: String,
}

#[derive(Template)]
#[template(path = "admin_home.html")]
struct HomePage<'a> {
    l: Layout<'a>,
    rows: Vec<Row<'a>>,
    audit: Vec<(String, &'a AuditEntry)>,
}

/// Where an episode stands: `published`, `scheduled` or `unpublished`.
pub fn status(ep: &Episode, now: chrono::DateTime<chrono::FixedOffset>) -> &'static str {
    if ep.unpublished {
        "unpublished"
    } else if ep.published > now {
        "scheduled"
    } else {
        "published"
    }
}

/// The episode list (every episode, scheduled and unpublished included) and the audit log.
pub fn home_page(
    user: &str,
    csrf: &str,
    catalog: &Catalog,
    audit: &[AuditEntry],
    notice: Option<&str>,
) -> String {
    let now = chrono::Utc::now().fixed_offset();
    let rows = catalog
        .all_episodes()
        .into_iter()
        .map(|ep| Row {
            slug: &ep.slug,
            title: &ep.title,
            date_iso: ep.published.to_rfc3339(),
            date_text: ep.published.format("%Y-%m-%d %H:%M %:z").to_string(),
            status: status(ep, now),
            duration: format::human_duration(ep.duration),
            feeds: catalog
                .feeds_of(ep)
                .map(|f| f.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect();
    let audit = audit
        .iter()
        .map(|e| {
            let when = chrono::DateTime::from_timestamp(e.at, 0)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default();
            (when, e)
        })
        .collect();
    render(&HomePage {
        l: Layout {
            title: "Episodes",
            css: static_url("site.css"),
            js: static_url("admin.js"),
            user: Some(user),
            csrf,
            notice,
            error: None,
        },
        rows,
        audit,
    })
}

/// Values shown in the episode form.
#[derive(Debug, Default)]
pub struct FormValues {
    pub title: String,
    pub published: String,
    pub summary: String,
    pub notes: String,
    pub guests: Vec<Guest>,
    pub resources: Vec<Resource>,
    pub feeds: Vec<String>,
}

impl FormValues {
    pub fn of(ep: &Episode) -> FormValues {
        FormValues {
            title: ep.title.clone(),
            published: ep.published.to_rfc3339(),
            summary: ep.summary.clone(),
            notes: ep.notes_markdown.clone(),
            guests: ep.guests.clone(),
            resources: ep.resources.clone(),
            feeds: ep.feeds.clone(),
        }
    }

    /// A new episode: dated now, with one empty guest and resource row.
    pub fn blank() -> FormValues {
        let empty_guest = Guest {
            name: String::new(),
            role: None,
            affiliation: None,
            link: None,
            image: None,
        };
        let empty_resource = Resource {
            title: String::new(),
            url: String::new(),
            note: None,
        };
        FormValues {
            published: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            guests: vec![empty_guest],
            resources: vec![empty_resource],
            ..FormValues::default()
        }
    }
}

#[derive(Template)]
#[template(path = "admin_episode.html")]
struct EpisodeForm<'a> {
    l: Layout<'a>,
    heading: String,
    action: String,
    submit: &'a str,
    editing: Option<&'a str>,
    /// The folder version the form was made from (edits only).
    version: &'a str,
    v: FormValues,
    /// (id, title, checked)
    feeds: Vec<(&'a str, &'a str, bool)>,
}

/// The add form (`editing` is `None`) or the edit form of an episode.
pub fn episode_form(
    user: &str,
    csrf: &str,
    catalog: &Catalog,
    editing: Option<(&Episode, &str)>,
    error: Option<&str>,
) -> String {
    let (editing, version) = match editing {
        Some((ep, version)) => (Some(ep), version),
        None => (None, ""),
    };
    let v = editing.map_or_else(FormValues::blank, FormValues::of);
    let feeds = catalog
        .feeds
        .iter()
        .map(|f| (f.id.as_str(), f.title.as_str(), v.feeds.contains(&f.id)))
        .collect();
    let (heading, action, submit) = match editing {
        Some(ep) => (
            format!("Edit “{}”", ep.title),
            format!("/admin/episodes/{}", ep.slug),
            "Save changes",
        ),
        None => (
            "Add an episode".to_owned(),
            "/admin/episodes".to_owned(),
            "Add the episode",
        ),
    };
    render(&EpisodeForm {
        l: Layout {
            title: "Episode",
            css: static_url("site.css"),
            js: static_url("admin.js"),
            user: Some(user),
            csrf,
            notice: None,
            error,
        },
        heading,
        action,
        submit,
        editing: editing.map(|e| e.slug.as_str()),
        version,
        v,
        feeds,
    })
}

struct OfficerRow<'a> {
    name: &'a str,
    role: &'static str,
    suspended: bool,
    issued: Option<String>,
    last_used: Option<String>,
    /// One line per day: "2026-12-01: 2 addresses; AntennaPod (14), gPodder (3)".
    usage: Vec<String>,
}

#[derive(Template)]
#[template(path = "admin_officers.html")]
struct OfficersPage<'a> {
    l: Layout<'a>,
    officers: Vec<OfficerRow<'a>>,
    flags: &'a [SharingFlag],
    alert: u64,
}

fn when(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// Accounts with their personal URL's state and use, and the open sharing flags.
pub fn officers_page(
    user: &str,
    csrf: &str,
    officers: &[Officer],
    usage: &[Usage],
    flags: &[SharingFlag],
    alert: u64,
    notice: Option<&str>,
) -> String {
    let rows = officers
        .iter()
        .map(|o| OfficerRow {
            name: &o.account.name,
            role: o.account.role.as_str(),
            suspended: o.suspended,
            issued: o.token_issued.map(when),
            last_used: o.token_last_used.map(when),
            usage: usage
                .iter()
                .filter(|u| u.user == o.account.name)
                .map(|u| {
                    let apps: Vec<String> =
                        u.apps.iter().map(|(a, n)| format!("{a} ({n})")).collect();
                    let s = if u.addresses == 1 { "" } else { "es" };
                    format!("{}: {} address{s}; {}", u.day, u.addresses, apps.join(", "))
                })
                .collect(),
        })
        .collect();
    render(&OfficersPage {
        l: Layout {
            title: "Officers",
            css: static_url("site.css"),
            js: static_url("admin.js"),
            user: Some(user),
            csrf,
            notice,
            error: None,
        },
        officers: rows,
        flags,
        alert,
    })
}

/// A page that only reports an outcome (an error without JavaScript), with a way back.
pub fn message_page(user: Option<&str>, csrf: &str, error: &str) -> String {
    #[derive(Template)]
    #[template(
        source = "{% extends \"admin_base.html\" %}{% block main %}<p><a href=\"/admin\">Back to the episodes</a></p>{% endblock %}",
        ext = "html"
    )]
    struct Message<'a> {
        l: Layout<'a>,
    }
    render(&Message {
        l: Layout {
            title: "Not done",
            css: static_url("site.css"),
            js: static_url("admin.js"),
            user,
            csrf,
            notice: None,
            error: Some(error),
        },
    })
}

/// One bar of a chart, laid out: its label, value and geometry in SVG user units.
struct Bar {
    /// As drawn (shortened), and whole (in the tooltip and the table).
    label: String,
    full: String,
    value: u64,
    /// Bars: the bar's top. Columns: the column's left edge.
    at: u64,
    /// Bars: width. Columns: height.
    size: u64,
}

/// A chart drawn as inline SVG by the template: `bars` (horizontal, labelled) or `columns`
/// (days, left to right).
struct Chart {
    id: &'static str,
    title: &'static str,
    columns: bool,
    width: u64,
    height: u64,
    bars: Vec<Bar>,
    /// Columns: the distance between columns.
    step: u64,
    /// Columns: the first and last day, under the axis.
    first: String,
    last: String,
    max: u64,
}

const BAR_HEIGHT: u64 = 22;
const BAR_LABEL: u64 = 280;
const BAR_SPACE: u64 = 420;
const COLUMN_AREA: u64 = 160;
const COLUMN_WIDTH: u64 = 700;
/// Characters of a bar's label drawn in the chart (the table under it has the whole name).
const LABEL_CHARS: usize = 38;

fn bar_chart(id: &'static str, title: &'static str, rows: &[(String, u64)]) -> Chart {
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
    let bars = rows
        .iter()
        .enumerate()
        .map(|(i, (label, value))| Bar {
            label: if label.chars().count() > LABEL_CHARS {
                let cut: String = label.chars().take(LABEL_CHARS - 1).collect();
                format!("{cut}…")
            } else {
                label.clone()
            },
            full: label.clone(),
            value: *value,
            at: i as u64 * BAR_HEIGHT,
            size: (value * BAR_SPACE).div_ceil(max).max(u64::from(*value > 0)),
        })
        .collect::<Vec<_>>();
    Chart {
        id,
        title,
        columns: false,
        width: BAR_LABEL + BAR_SPACE + 60,
        height: (bars.len() as u64 * BAR_HEIGHT).max(BAR_HEIGHT),
        bars,
        step: 0,
        first: String::new(),
        last: String::new(),
        max,
    }
}

/// Downloads per day as columns, every day from the first to the last shown (days without
/// downloads are gaps, not skipped).
fn day_chart(rows: &[(String, u64)]) -> Chart {
    let parse = |d: &str| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok();
    let (Some(first), Some(last)) = (
        rows.first().and_then(|r| parse(&r.0)),
        rows.last().and_then(|r| parse(&r.0)),
    ) else {
        return bar_chart("days", "Downloads per day (UTC)", &[]);
    };
    let by_day: std::collections::HashMap<&str, u64> =
        rows.iter().map(|(d, n)| (d.as_str(), *n)).collect();
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
    let days = (last - first).num_days().max(0) as u64 + 1;
    let step = (COLUMN_WIDTH / days).clamp(2, 40);
    let bars = (0..days)
        .map(|i| {
            let day = (first + chrono::Days::new(i)).to_string();
            let value = by_day.get(day.as_str()).copied().unwrap_or(0);
            Bar {
                label: day.clone(),
                full: day,
                value,
                at: i * step,
                size: (value * COLUMN_AREA).div_ceil(max),
            }
        })
        .collect();
    Chart {
        id: "days",
        title: "Downloads per day (UTC)",
        columns: true,
        // A fixed width: a few days make a few narrow columns, not a few huge ones.
        width: COLUMN_WIDTH,
        height: COLUMN_AREA,
        bars,
        step,
        first: first.to_string(),
        last: last.to_string(),
        max,
    }
}

#[derive(Template)]
#[template(path = "admin_stats.html")]
struct StatsPage<'a> {
    l: Layout<'a>,
    report: &'a crate::stats::report::Report,
    charts: Vec<Chart>,
    /// For the episode filter: slug, title, selected.
    choices: Vec<(&'a str, &'a str, bool)>,
    since: &'a str,
    /// The filter as a query string, for the export links (`?since=…&episode=…` or empty).
    query: String,
    dropped: u64,
}

/// The download report with its charts, filters and export links.
pub fn stats_page(
    user: &str,
    csrf: &str,
    catalog: &Catalog,
    report: &crate::stats::report::Report,
    query: String,
) -> String {
    let pairs = |rows: &[crate::stats::report::Row]| -> Vec<(String, u64)> {
        rows.iter().map(|r| (r.name.clone(), r.downloads)).collect()
    };
    let episodes: Vec<(String, u64)> = report
        .episodes
        .iter()
        .map(|e| (e.title.clone(), e.downloads))
        .collect();
    let feeds: Vec<(String, u64)> = report
        .feeds
        .iter()
        .map(|f| (format!("{} ({})", f.title, f.access), f.downloads))
        .collect();
    let charts = vec![
        day_chart(&pairs(&report.days)),
        bar_chart("episodes", "Downloads per episode", &episodes),
        bar_chart("apps", "Downloads per app", &pairs(&report.apps)),
        bar_chart("devices", "Downloads per device", &pairs(&report.devices)),
        bar_chart("feeds", "Downloads per feed", &feeds),
    ];
    let chosen = report.episode.as_deref();
    let choices = catalog
        .all_episodes()
        .into_iter()
        .map(|ep| {
            (
                ep.slug.as_str(),
                ep.title.as_str(),
                Some(ep.slug.as_str()) == chosen,
            )
        })
        .collect();
    render(&StatsPage {
        l: Layout {
            title: "Downloads",
            css: static_url("site.css"),
            js: static_url("admin.js"),
            user: Some(user),
            csrf,
            notice: None,
            error: None,
        },
        report,
        charts,
        choices,
        since: report.since.as_deref().unwrap_or(""),
        query,
        dropped: report.dropped.unwrap_or(0),
    })
}
