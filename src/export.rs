//! `rollcall build --out DIR`: a complete static export that any static host or CDN can serve.
//!
//! The export uses exactly the URL layout of `rollcall serve` (`/feeds/<id>.xml`,
//! `/media/<slug>/<version>/<file>`, `/artwork/<id>/<version>/<file>`), so the enclosure URLs in the
//! feeds resolve on either. Members-only feeds and the media only they use are left out.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::access::{self, Credentials};
use crate::catalog::Catalog;
use crate::render::{feed_path, opml, render_feed};

#[derive(Debug, thiserror::Error)]
#[error("{path}: cannot write the export: {source}: check that the --out folder is writable")]
pub struct ExportError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// What an export wrote, for the command's summary line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ExportSummary {
    pub feeds: usize,
    pub files: usize,
    pub bytes: u64,
}

pub fn export(catalog: &Catalog, out: &Path) -> Result<ExportSummary, ExportError> {
    let mut summary = ExportSummary::default();
    let mut files: BTreeSet<(&str, &Path)> = BTreeSet::new();
    for feed in access::visible_feeds(catalog, Credentials::Anonymous) {
        let xml = render_feed(catalog, feed);
        write(&out.join(feed_path(&feed.id).trim_start_matches('/')), &xml)?;
        summary.feeds += 1;
        summary.bytes += xml.len() as u64;
        files.insert((&feed.artwork.url_path, &feed.artwork.path));
        for ep in catalog.feed_episodes(feed) {
            for a in ep.assets() {
                files.insert((&a.url_path, &a.path));
            }
        }
    }
    write(&out.join("feeds.opml"), &opml(catalog))?;
    for (url_path, src) in files {
        let dest = out.join(url_path.trim_start_matches('/'));
        let err = |source| ExportError {
            path: dest.clone(),
            source,
        };
        std::fs::create_dir_all(dest.parent().expect("url paths have folders")).map_err(err)?;
        summary.bytes += std::fs::copy(src, &dest).map_err(err)?;
        summary.files += 1;
    }
    Ok(summary)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    let err = |source| ExportError {
        path: path.to_owned(),
        source,
    };
    std::fs::create_dir_all(path.parent().expect("export paths have folders")).map_err(err)?;
    std::fs::write(path, bytes).map_err(err)
}
