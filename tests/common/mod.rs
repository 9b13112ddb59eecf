//! Shared test helpers: temporary copies of the demo catalog, and a raw HTTP/1.1 client.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rollcall::catalog::{self, Catalog, MeasureCache, Problems, Source};
use rollcall::config::Config;

pub const PUBLIC_URL: &str = "https://podcasts.example.org";

/// The repository root, where the demo catalog lives.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// A temporary copy of the demo catalog (episodes/, feeds/ and config.toml) that a test may edit.
pub struct Demo {
    pub dir: tempfile::TempDir,
}

impl Demo {
    pub fn new() -> Demo {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&repo().join("episodes"), &dir.path().join("episodes"));
        copy_dir(&repo().join("feeds"), &dir.path().join("feeds"));
        std::fs::write(
            dir.path().join("config.toml"),
            format!("public_url = \"{PUBLIC_URL}\"\n"),
        )
        .unwrap();
        Demo { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    /// Replaces the first occurrence of `from` in a file, failing if it is absent.
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = self.read(rel);
        assert!(text.contains(from), "{rel} does not contain {from:?}");
        self.write(rel, &text.replacen(from, to, 1));
    }

    pub fn config(&self) -> Config {
        Config::for_root(self.root(), PUBLIC_URL)
    }

    pub fn load(&self) -> Result<Catalog, Problems> {
        catalog::load(&Source::from(&self.config()), &MeasureCache::default())
    }

    /// Every problem line, for exact comparisons.
    pub fn problems(&self) -> Vec<String> {
        match self.load() {
            Ok(_) => panic!("expected the catalog to have problems"),
            Err(p) => p.0.iter().map(|p| p.to_string()).collect(),
        }
    }
}

/// Runs ffmpeg with `args`, panicking with its stderr on failure.
pub fn ffmpeg(args: &[&str]) {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg must be installed (bash .ci/run installs it)");
    assert!(
        out.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes a spoken-length tone of `secs` seconds as MP3 at `path`.
pub fn tone_mp3(path: &Path, secs: f64) {
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency=440:duration={secs}"),
        "-ac",
        "1",
        "-c:a",
        "libmp3lame",
        "-b:a",
        "32k",
        path.to_str().unwrap(),
    ]);
}
