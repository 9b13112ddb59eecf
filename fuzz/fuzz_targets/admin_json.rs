//! The admin API's request bodies: episode metadata JSON and multipart uploads, through a running
//! server, plus axum's multipart reader and the admin's text helpers on their own.
//!
//! Input: one mode byte, then the body.
//! - `J` / `j`: `PATCH /admin/api/episodes/<slug>` with `Content-Type: application/json`;
//! - `M` / `m`: the same with `multipart/form-data; boundary=FUZZBOUNDARY`;
//!   upper case edits the catalog's episode under a stale `If-Match`, so the edit is checked and
//!   then refused with 409 and nothing is ever committed; lower case names an episode that does
//!   not exist;
//! - `D`: the body is drained with axum's `Multipart` extractor, in process;
//! - `E`: an edit, in process, as the admin makes it once it has parsed a request: the body is
//!   fields separated by 0xFF (title, published, summary, guest `Name|role|affiliation`,
//!   resource `Title|URL|note`, notes, feeds separated by commas; empty leaves a field as it
//!   is) for `write::prepare_edit` on a catalog of its own, which must succeed or refuse, and
//!   leave the live episode untouched (the prepared edit is dropped, never committed);
//! - anything else: the body is text for `parse_published`, `summary_from_notes`,
//!   `guest_from_spec`, `resource_from_spec` and `slug_from_title`.
//!
//! The server must answer every request with a 4xx that names the problem (400, 404, 409, 413
//! or 415): never a 5xx, never a timeout, never a panic.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use rollcall::catalog::valid_slug;
use rollcall::catalog::write::{
    guest_from_spec, parse_published, prepare_edit, resource_from_spec, slug_from_title,
    summary_from_notes, Attachments, Patch, Staging,
};
use rollcall::catalog::Catalog;
use rollcall::fuzzing::{AdminServer, MultipartDrain, TempCatalog, BOUNDARY, EPISODE_TOML, SLUG};

static SERVER: LazyLock<AdminServer> = LazyLock::new(|| {
    let server = rollcall_fuzz::admin_server();
    // The harness must reach the handlers: the token works and a stale edit is refused.
    let list = server.send("GET", "/admin/api/episodes", &[], b"");
    assert_eq!(list.status, 200, "{}", String::from_utf8_lossy(&list.body));
    let stale = patch(&server, true, "application/json", br#"{"title":"x"}"#);
    assert_eq!(
        stale.status,
        409,
        "{}",
        String::from_utf8_lossy(&stale.body)
    );
    server
});
static DRAIN: LazyLock<MultipartDrain> = LazyLock::new(MultipartDrain::default);
static EDITS: LazyLock<(TempCatalog, Catalog)> = LazyLock::new(|| {
    let c = rollcall_fuzz::temp_catalog();
    let catalog = c.load_quick().expect("the starting catalog loads");
    (c, catalog)
});

fn patch(
    server: &AdminServer,
    existing: bool,
    content_type: &str,
    body: &[u8],
) -> rollcall::fuzzing::Reply {
    let slug = if existing { SLUG } else { "no-such-episode" };
    server.send(
        "PATCH",
        &format!("/admin/api/episodes/{slug}"),
        &[
            ("Content-Type", content_type),
            ("If-Match", "\"0000000000000000\""),
        ],
        body,
    )
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let multipart = format!("multipart/form-data; boundary={BOUNDARY}");
    let reply = match mode {
        b'J' | b'j' => patch(&SERVER, mode == b'J', "application/json", body),
        b'M' | b'm' => patch(&SERVER, mode == b'M', &multipart, body),
        b'E' => {
            edit(body);
            return;
        }
        b'D' => {
            if let Ok(parts) = DRAIN.drain(body) {
                let total: usize = parts.iter().map(|p| p.len).sum();
                assert!(total <= body.len(), "{parts:?} from {} bytes", body.len());
            }
            return;
        }
        _ => {
            helpers(&String::from_utf8_lossy(body));
            return;
        }
    };
    assert!(
        matches!(reply.status, 400 | 404 | 409 | 413 | 415),
        "{} from the admin API: {}",
        reply.status,
        String::from_utf8_lossy(&reply.body)
    );
});

fn helpers(text: &str) {
    if let Ok(when) = parse_published("published", text) {
        assert_eq!(
            parse_published("published", &when.to_rfc3339()),
            Ok(when),
            "{text:?} does not survive a round trip"
        );
    }
    let summary = summary_from_notes(text);
    assert!(
        !summary.contains('\n') && summary.trim() == summary,
        "{summary:?}"
    );
    if let Ok(g) = guest_from_spec(text) {
        assert!(!g.name.is_empty());
        for part in [Some(&g.name), g.role.as_ref(), g.affiliation.as_ref()]
            .into_iter()
            .flatten()
        {
            assert!(!part.contains('|') && part.trim() == part, "{g:?}");
        }
    }
    if let Ok(r) = resource_from_spec(text) {
        assert!(!r.title.is_empty() && !r.url.is_empty());
        assert!(!r.title.contains('|') && !r.url.contains('|'), "{r:?}");
    }
    let slug = slug_from_title(text);
    assert!(
        slug.is_empty() || valid_slug(&slug),
        "{text:?} gives slug {slug:?}"
    );
    assert!(slug.len() <= 60, "{slug:?}");
}

/// Prepares an edit of the episode, as `PATCH /admin/api/episodes/<slug>` does after parsing.
fn edit(body: &[u8]) {
    let fields = rollcall_fuzz::fields(body);
    let field = |i: usize| fields.get(i).filter(|f| !f.is_empty()).cloned();
    let mut patch = Patch {
        title: field(0),
        summary: field(2),
        notes: field(5),
        feeds: field(6).map(|f| f.split(',').map(str::to_owned).collect()),
        ..Patch::default()
    };
    if let Some(p) = field(1) {
        let Ok(when) = parse_published("published", &p) else {
            return;
        };
        patch.published = Some(when);
    }
    if let Some(g) = field(3) {
        let Ok(g) = guest_from_spec(&g) else { return };
        patch.guests = Some(vec![g]);
    }
    if let Some(r) = field(4) {
        let Ok(r) = resource_from_spec(&r) else {
            return;
        };
        patch.resources = Some(vec![r]);
    }
    let (c, catalog) = &*EDITS;
    let source = c.source();
    let staging = Staging::new(&source.episodes_dir).expect("a staging folder");
    let prepared = prepare_edit(
        source,
        catalog,
        &c.measure_cache(),
        staging,
        SLUG,
        patch,
        Attachments::default(),
    );
    drop(prepared);
    let live = std::fs::read_to_string(source.episodes_dir.join(SLUG).join("episode.toml"))
        .expect("the live episode.toml");
    assert_eq!(
        live, EPISODE_TOML,
        "preparing an edit changed the live episode"
    );
}
