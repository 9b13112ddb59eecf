//! Reading what an admin submits: a multipart body (the web form, or the API's `metadata` JSON
//! part and files) into metadata plus files staged on disk.
//!
//! Files stream to the staging folder in constant memory, through a bounded channel to a writer
//! on the blocking pool that hashes as it writes; one over `max_upload_bytes` is cut off with 413.
//! A web form must send its CSRF token as the first part, so nothing of a forged request is
//! read, let alone written, before it is refused.

use axum::extract::multipart::{Field, Multipart};
use bytes::Bytes;
use serde::Deserialize;

use super::AdminError;
use crate::access::secret::constant_time_eq;
use crate::catalog::write::{self, Attachments, Draft, Patch, Staging, Uploaded};
use crate::catalog::{Guest, Resource};

/// Largest text field (show notes included), and largest sum of all text fields.
const MAX_TEXT: usize = 1 << 20;
const MAX_TEXT_TOTAL: usize = 4 << 20;
/// Most parts in one multipart body.
const MAX_PARTS: usize = 1000;

/// Episode metadata as the API sends it: the field names of `episode.toml`, plus `notes` for
/// the Markdown show notes. Unknown fields are refused by name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    pub slug: Option<String>,
    pub title: Option<String>,
    pub published: Option<String>,
    pub summary: Option<String>,
    pub guests: Option<Vec<GuestJson>>,
    pub resources: Option<Vec<ResourceJson>>,
    pub feeds: Option<Vec<String>>,
    pub notes: Option<String>,
    pub explicit: Option<bool>,
    pub unpublished: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestJson {
    pub name: String,
    pub role: Option<String>,
    pub affiliation: Option<String>,
    pub link: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceJson {
    pub title: String,
    pub url: String,
    pub note: Option<String>,
}

fn bad(field: &str, message: impl Into<String>) -> AdminError {
    AdminError::BadRequest {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Parses the API's metadata JSON, naming the offending field.
pub fn metadata_from_json(field: &str, bytes: &[u8]) -> Result<Metadata, AdminError> {
    serde_json::from_slice(bytes).map_err(|e| {
        bad(
            field,
            format!(
                "{e}: send a JSON object with the field names of episode.toml (see docs/admin.md)"
            ),
        )
    })
}

fn guests(list: Vec<GuestJson>) -> Vec<Guest> {
    list.into_iter()
        .map(|g| Guest {
            name: g.name.trim().to_owned(),
            role: g.role.filter(|s| !s.trim().is_empty()),
            affiliation: g.affiliation.filter(|s| !s.trim().is_empty()),
            link: g.link.filter(|s| !s.trim().is_empty()),
            image: None,
        })
        .collect()
}

fn resources(list: Vec<ResourceJson>) -> Vec<Resource> {
    list.into_iter()
        .map(|r| Resource {
            title: r.title.trim().to_owned(),
            url: r.url.trim().to_owned(),
            note: r.note.filter(|s| !s.trim().is_empty()),
        })
        .collect()
}

impl Metadata {
    /// A new episode: `title` and `published` are required; `summary` defaults to the notes'
    /// first paragraph, then to the title.
    pub fn into_draft(self) -> Result<Draft, AdminError> {
        let title = self
            .title
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| bad("title", "is required"))?;
        let published = self.published.ok_or_else(|| {
            bad(
                "published",
                "is required: write it like 2016-06-30T09:00:00-04:00",
            )
        })?;
        let published = write::parse_published("published", &published)
            .map_err(|m| bad("published", m.trim_start_matches("field 'published': ")))?;
        if self.unpublished.is_some() {
            return Err(bad(
                "unpublished",
                "applies to existing episodes: add it, then unpublish it",
            ));
        }
        let notes = self.notes.unwrap_or_default();
        let summary = self
            .summary
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| {
                let first = write::summary_from_notes(&notes);
                if first.is_empty() {
                    title.clone()
                } else {
                    first
                }
            });
        Ok(Draft {
            slug: self.slug.filter(|s| !s.is_empty()),
            title,
            published,
            summary,
            guests: guests(self.guests.unwrap_or_default()),
            resources: resources(self.resources.unwrap_or_default()),
            feeds: self.feeds.unwrap_or_default(),
            notes,
            explicit: self.explicit.unwrap_or(false),
        })
    }

    /// Changes to an existing episode; the slug cannot change (it is in every URL).
    pub fn into_patch(self) -> Result<Patch, AdminError> {
        if self.slug.is_some() {
            return Err(bad(
                "slug",
                "cannot change: it is part of every URL of the episode",
            ));
        }
        let published = match self.published {
            Some(p) => Some(
                write::parse_published("published", &p)
                    .map_err(|m| bad("published", m.trim_start_matches("field 'published': ")))?,
            ),
            None => None,
        };
        Ok(Patch {
            title: self.title,
            published,
            summary: self.summary,
            guests: self.guests.map(guests),
            resources: self.resources.map(resources),
            feeds: self.feeds,
            notes: self.notes,
            explicit: self.explicit,
            unpublished: self.unpublished,
            expect_version: None,
        })
    }
}

/// A read multipart body.
pub struct Submission {
    /// Text parts in order (the web form's fields, or the API's `metadata`).
    pub text: Vec<(String, String)>,
    pub files: Attachments,
    /// Where the files are; dropping it removes them.
    pub staging: Staging,
}

impl Submission {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.text
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn value(&self, name: &str) -> Option<String> {
        self.values(name).next().map(str::to_owned)
    }

    /// The API's `metadata` part, parsed.
    pub fn metadata(&self) -> Result<Metadata, AdminError> {
        match self.value("metadata") {
            Some(json) => metadata_from_json("metadata", json.as_bytes()),
            None => Err(bad(
                "metadata",
                "is missing: send a multipart part named metadata with the episode's JSON",
            )),
        }
    }

    /// The web form's fields as metadata. Guest and resource rows come as parallel lists;
    /// empty rows are skipped.
    pub fn form_metadata(&self, editing: bool) -> Result<Metadata, AdminError> {
        let known = [
            "title",
            "slug",
            "published",
            "summary",
            "notes",
            "feed",
            "guest_name",
            "guest_role",
            "guest_affiliation",
            "resource_title",
            "resource_url",
            "resource_note",
            "version",
        ];
        if let Some((k, _)) = self.text.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            return Err(bad(k, "is not a field of the episode form"));
        }
        let column = |name| self.values(name).collect::<Vec<_>>();
        let (names, roles, affiliations) = (
            column("guest_name"),
            column("guest_role"),
            column("guest_affiliation"),
        );
        let mut guest_list = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let role = roles.get(i).copied().unwrap_or_default();
            let affiliation = affiliations.get(i).copied().unwrap_or_default();
            if name.trim().is_empty() {
                if role.trim().is_empty() && affiliation.trim().is_empty() {
                    continue;
                }
                return Err(bad(
                    &format!("guests[{i}].name"),
                    "is empty: give the guest a name, or clear the row",
                ));
            }
            guest_list.push(GuestJson {
                name: (*name).to_owned(),
                role: Some(role.to_owned()),
                affiliation: Some(affiliation.to_owned()),
                link: None,
            });
        }
        let (titles, urls, notes) = (
            column("resource_title"),
            column("resource_url"),
            column("resource_note"),
        );
        let mut resource_list = Vec::new();
        for (i, title) in titles.iter().enumerate() {
            let url = urls.get(i).copied().unwrap_or_default();
            let note = notes.get(i).copied().unwrap_or_default();
            if title.trim().is_empty() && url.trim().is_empty() && note.trim().is_empty() {
                continue;
            }
            resource_list.push(ResourceJson {
                title: (*title).to_owned(),
                url: url.to_owned(),
                note: Some(note.to_owned()),
            });
        }
        Ok(Metadata {
            slug: if editing { None } else { self.value("slug") },
            title: self.value("title"),
            published: self.value("published"),
            summary: self.value("summary"),
            guests: Some(guest_list),
            resources: Some(resource_list),
            feeds: Some(self.values("feed").map(str::to_owned).collect()),
            notes: self.value("notes"),
            explicit: None,
            unpublished: None,
        })
    }
}

/// Reads a multipart body. Text parts are kept; `audio`, `transcript` and `chapters` are
/// streamed into `staging`. With `csrf`, the first part must be `csrf` with that value.
pub async fn read(
    mut multipart: Multipart,
    staging: Staging,
    limit: u64,
    csrf: Option<&str>,
) -> Result<Submission, AdminError> {
    let broken = |e: axum::extract::multipart::MultipartError| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            AdminError::TooLarge {
                field: "(body)".into(),
                limit,
            }
        } else {
            bad(
                "(body)",
                format!("the multipart body is malformed or was cut off: {e}"),
            )
        }
    };
    let mut text = Vec::new();
    let mut text_total = 0;
    let mut files = Attachments::default();
    let mut first = true;
    let mut parts = 0;
    while let Some(field) = multipart.next_field().await.map_err(broken)? {
        let name = field.name().unwrap_or_default().to_owned();
        parts += 1;
        text_total += name.len() + 64;
        if parts > MAX_PARTS || text_total > MAX_TEXT_TOTAL {
            return Err(bad(
                "(body)",
                format!("has more than {MAX_PARTS} parts or {MAX_TEXT_TOTAL} bytes of fields"),
            ));
        }
        if let Some(expected) = csrf.filter(|_| first) {
            let given = if name == "csrf" {
                field.text().await.map_err(broken)?
            } else {
                String::new()
            };
            if !constant_time_eq(&given, expected) {
                return Err(AdminError::Forbidden(
                    "the form's CSRF token is missing or does not match this session: reload the page and submit again".into(),
                ));
            }
            first = false;
            continue;
        }
        first = false;
        match name.as_str() {
            "audio" | "transcript" | "chapters" => {
                let uploaded = stream_file(field, &staging, &name, limit).await?;
                let slot = match name.as_str() {
                    "audio" => &mut files.audio,
                    "transcript" => &mut files.transcript,
                    _ => &mut files.chapters,
                };
                // An empty file input (no file chosen) sends a part with no bytes.
                if let Some(u) = uploaded.filter(|u| u.size > 0) {
                    *slot = Some(u);
                }
            }
            _ => {
                let mut value = Vec::new();
                let mut field = field;
                while let Some(chunk) = field.chunk().await.map_err(broken)? {
                    if value.len() + chunk.len() > MAX_TEXT {
                        return Err(AdminError::TooLarge {
                            field: name,
                            limit: MAX_TEXT as u64,
                        });
                    }
                    value.extend_from_slice(&chunk);
                }
                text_total += value.len();
                if text_total > MAX_TEXT_TOTAL {
                    return Err(AdminError::TooLarge {
                        field: name,
                        limit: MAX_TEXT_TOTAL as u64,
                    });
                }
                let value =
                    String::from_utf8(value).map_err(|_| bad(&name, "is not UTF-8 text"))?;
                text.push((name, value));
            }
        }
    }
    if csrf.is_some() && first {
        // An empty body: no token either.
        return Err(AdminError::Forbidden(
            "the form's CSRF token is missing: reload the page and submit again".into(),
        ));
    }
    Ok(Submission {
        text,
        files,
        staging,
    })
}

/// Streams one file part into staging. `None` for a part with no file name and no bytes.
async fn stream_file(
    mut field: Field<'_>,
    staging: &Staging,
    name: &str,
    limit: u64,
) -> Result<Option<Uploaded>, AdminError> {
    let upload = staging.upload(name, limit)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let writer = tokio::task::spawn_blocking(move || {
        let mut upload = upload;
        while let Some(chunk) = rx.blocking_recv() {
            upload.write(&chunk)?;
        }
        upload.finish()
    });
    let mut cut_off = None;
    loop {
        match field.chunk().await {
            Ok(Some(chunk)) => {
                if tx.send(chunk).await.is_err() {
                    break; // The writer stopped: its error says why.
                }
            }
            Ok(None) => break,
            Err(e) => {
                cut_off = Some(e);
                break;
            }
        }
    }
    drop(tx);
    let written = writer
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    if let Some(e) = cut_off {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            return Err(AdminError::TooLarge {
                field: name.to_owned(),
                limit,
            });
        }
        return Err(bad(
            name,
            format!("the upload was cut off ({e}); nothing was changed: send it again"),
        ));
    }
    Ok(Some(written?))
}
