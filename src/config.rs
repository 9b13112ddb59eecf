//! Server and catalog configuration.
//!
//! `config.toml` is read in two stages: serde parses it into [`RawConfig`], which rejects unknown keys by
//! name, and [`Config::from_raw`] validates it and resolves every relative path against the folder that
//! holds the config file, so `rollcall --config /srv/podcasts/config.toml` works from any directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "{path}: cannot read the config file: {source}: pass --config PATH or create config.toml"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: field '{field}': {message}")]
    Invalid {
        path: PathBuf,
        field: &'static str,
        message: String,
    },
}

/// The config file as written. Every field has a default, listed in `docs/config.md`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Absolute base URL used for every link in feeds and pages. Default: `http://127.0.0.1:8080`.
    pub public_url: Option<String>,
    /// Address `rollcall serve` listens on. Default: `127.0.0.1:8080`.
    pub listen: Option<String>,
    /// Folder of episode folders. Default: `episodes`.
    pub episodes_dir: Option<PathBuf>,
    /// Folder of feed definitions. Default: `feeds`.
    pub feeds_dir: Option<PathBuf>,
    /// Folder for Rollcall's own state, such as the measurement cache. Default: `.rollcall`.
    pub state_dir: Option<PathBuf>,
    #[serde(default)]
    pub server: RawServer,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Most connections served at once; further ones wait in the accept queue. Default: 10000.
    pub max_connections: Option<usize>,
    /// Seconds a client has to send its request headers. Default: 10.
    pub header_read_timeout_secs: Option<u64>,
    /// Seconds an idle keep-alive connection stays open. Default: 30.
    pub keep_alive_timeout_secs: Option<u64>,
    /// Seconds in-flight requests get to finish after SIGTERM or Ctrl-C. Default: 10.
    pub shutdown_grace_secs: Option<u64>,
}

/// Validated configuration with absolute paths.
#[derive(Debug, Clone)]
pub struct Config {
    pub public_url: String,
    pub listen: SocketAddr,
    pub episodes_dir: PathBuf,
    pub feeds_dir: PathBuf,
    pub state_dir: PathBuf,
    pub server: ServerConfig,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub shutdown_grace: Duration,
}

impl Config {
    /// Reads and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let raw: RawConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.message().to_owned() + ": see docs/config.md for the keys",
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Config::from_raw(raw, base, path)
    }

    /// Validates `raw`, resolving relative paths against `base`. `origin` names the file in errors.
    pub fn from_raw(raw: RawConfig, base: &Path, origin: &Path) -> Result<Config, ConfigError> {
        let invalid = |field: &'static str, message: String| ConfigError::Invalid {
            path: origin.to_owned(),
            field,
            message,
        };
        let public_url = raw
            .public_url
            .unwrap_or_else(|| "http://127.0.0.1:8080".into());
        let public_url = public_url.trim_end_matches('/').to_owned();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://"))
            || public_url.contains(char::is_whitespace)
        {
            return Err(invalid(
                "public_url",
                format!(
                    "{public_url:?} is not an absolute http(s) URL: write it like \"https://podcasts.example.org\""
                ),
            ));
        }
        let listen_text = raw.listen.unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen = listen_text.parse().map_err(|_| {
            invalid(
                "listen",
                format!(
                    "{listen_text:?} is not an IP:PORT address: write it like \"127.0.0.1:8080\""
                ),
            )
        })?;
        let abs = |p: Option<PathBuf>, default: &str| {
            let p = p.unwrap_or_else(|| PathBuf::from(default));
            if p.is_absolute() {
                p
            } else {
                base.join(p)
            }
        };
        let s = raw.server;
        let server = ServerConfig {
            max_connections: s.max_connections.unwrap_or(10_000),
            header_read_timeout: Duration::from_secs(s.header_read_timeout_secs.unwrap_or(10)),
            keep_alive_timeout: Duration::from_secs(s.keep_alive_timeout_secs.unwrap_or(30)),
            shutdown_grace: Duration::from_secs(s.shutdown_grace_secs.unwrap_or(10)),
        };
        if server.max_connections == 0 {
            return Err(invalid(
                "server.max_connections",
                "0 would refuse every client: use a positive number such as 10000".into(),
            ));
        }
        Ok(Config {
            public_url,
            listen,
            episodes_dir: abs(raw.episodes_dir, "episodes"),
            feeds_dir: abs(raw.feeds_dir, "feeds"),
            state_dir: abs(raw.state_dir, ".rollcall"),
            server,
        })
    }

    /// A config for a catalog at `root` (with `episodes/` and `feeds/` inside), used by tests and tools.
    pub fn for_root(root: &Path, public_url: &str) -> Config {
        let raw = RawConfig {
            public_url: Some(public_url.into()),
            ..RawConfig::default()
        };
        Config::from_raw(raw, root, &root.join("config.toml")).expect("valid default config")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_resolve_against_the_config_folder() {
        let raw: RawConfig = toml::from_str("episodes_dir = \"eps\"").unwrap();
        let c = Config::from_raw(
            raw,
            Path::new("/srv/pod"),
            Path::new("/srv/pod/config.toml"),
        )
        .unwrap();
        assert_eq!(c.episodes_dir, PathBuf::from("/srv/pod/eps"));
        assert_eq!(c.feeds_dir, PathBuf::from("/srv/pod/feeds"));
    }

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        let err = toml::from_str::<RawConfig>("public_ulr = \"x\"").unwrap_err();
        assert!(err.message().contains("public_ulr"), "{}", err.message());
    }

    #[test]
    fn public_url_must_be_absolute_and_loses_trailing_slash() {
        let bad = RawConfig {
            public_url: Some("podcasts.example.org".into()),
            ..Default::default()
        };
        let err = Config::from_raw(bad, Path::new("."), Path::new("config.toml")).unwrap_err();
        assert!(err.to_string().contains("field 'public_url'"), "{err}");
        let good = RawConfig {
            public_url: Some("https://p.example.org/".into()),
            ..Default::default()
        };
        let c = Config::from_raw(good, Path::new("."), Path::new("config.toml")).unwrap();
        assert_eq!(c.public_url, "https://p.example.org");
    }
}
