//! What the fuzz targets share: the demo audio and artwork their temporary catalogs are built
//! from, and the field format of the `render` target's inputs.

use rollcall::fuzzing::{AdminServer, TempCatalog};

/// A real MP3 from the demo catalog, for the temporary catalog's only episode.
pub const AUDIO: &[u8] = include_bytes!("../../episodes/defining-de-escalation/audio.mp3");
/// A square JPEG the feed loader accepts as artwork.
pub const ARTWORK: &[u8] = include_bytes!("../../feeds/spotlight-on-safety.jpg");

/// A fresh one-episode, one-feed catalog.
pub fn temp_catalog() -> TempCatalog {
    TempCatalog::new(AUDIO, ARTWORK)
}

/// A server over a fresh catalog, with an admin account and its token.
pub fn admin_server() -> AdminServer {
    AdminServer::start(AUDIO, ARTWORK)
}

/// Splits an input into text fields at every 0xFF byte, which UTF-8 never contains, so a field
/// can hold any text; invalid UTF-8 inside a field becomes U+FFFD.
pub fn fields(data: &[u8]) -> Vec<String> {
    data.split(|&b| b == 0xff)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect()
}
