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
    /// Proxies whose `Forwarded` / `X-Forwarded-For` headers are believed: addresses or CIDR
    /// ranges. Default: none.
    pub trusted_proxies: Option<Vec<String>>,
    /// The SQLite database of accounts, sessions, tokens and the audit log.
    /// Default: `rollcall.db` in `state_dir`.
    pub database: Option<PathBuf>,
    /// Largest upload the admin accepts, in bytes. Default: 2147483648 (2 GiB).
    pub max_upload_bytes: Option<u64>,
    /// Hours a web sign-in lasts. Default: 12.
    pub session_hours: Option<u64>,
    /// Failed sign-ins (or bad API tokens) one address may make per minute before it gets 429.
    /// Default: 5.
    pub sign_in_attempts_per_minute: Option<u32>,
    /// The key personal feed tokens are derived from. Default: `token.key` in `state_dir`.
    pub token_key: Option<PathBuf>,
    /// Distinct addresses one personal URL may be used from in a day before it is flagged as
    /// possibly shared. Default: 5.
    pub sharing_alert_addresses: Option<u64>,
    /// Addresses or CIDR ranges that may read `/metrics` without a token.
    /// Default: `["127.0.0.1", "::1"]`.
    pub metrics_allow: Option<Vec<String>>,
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub measurement: RawMeasurement,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawMeasurement {
    /// Whether media responses are stored as events and counted as downloads. Default: true.
    pub enabled: Option<bool>,
    /// Days raw events are kept before they are rolled up into daily totals. Default: 30.
    pub retention_days: Option<u64>,
    /// Downloads one address may make in a UTC day before more are not counted. Default: 200.
    pub max_downloads_per_address: Option<u64>,
    /// Addresses or CIDR ranges exempt from that limit (a station's shared NAT). Default: none.
    pub busy_addresses: Option<Vec<String>>,
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
    /// Kernel send buffer per connection, in bytes. Default: the kernel's own (autotuned).
    pub send_buffer_bytes: Option<usize>,
}

/// Validated configuration with absolute paths.
#[derive(Debug, Clone)]
pub struct Config {
    pub public_url: String,
    pub listen: SocketAddr,
    pub episodes_dir: PathBuf,
    pub feeds_dir: PathBuf,
    pub state_dir: PathBuf,
    pub database: PathBuf,
    pub token_key: PathBuf,
    pub admin: AdminConfig,
    pub server: ServerConfig,
    pub measurement: MeasurementConfig,
}

/// Download measurement (see `docs/measurement.md`).
#[derive(Debug, Clone)]
pub struct MeasurementConfig {
    pub enabled: bool,
    pub retention_days: u64,
    pub address_limit: crate::stats::count::AddressLimit,
}

/// Limits of the admin surface.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub max_upload_bytes: u64,
    pub session_ttl: Duration,
    pub attempts_per_minute: std::num::NonZeroU32,
    /// Whether session cookies are marked `Secure` (`public_url` is https).
    pub secure_cookies: bool,
    /// Distinct addresses per day past which a personal URL is flagged as possibly shared.
    pub sharing_alert_addresses: u64,
    /// Who may read `/metrics` without a token.
    pub metrics_allow: Vec<ipnet::IpNet>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub shutdown_grace: Duration,
    /// `SO_SNDBUF` for accepted connections; `None` keeps the kernel's autotuning.
    pub send_buffer: Option<usize>,
    /// Proxies whose forwarding headers are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
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
        let networks = |field: &'static str, entries: Vec<String>| {
            let mut nets = Vec::new();
            for entry in entries {
                let net = entry
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
                match net {
                    Ok(net) => nets.push(net.trunc()),
                    Err(_) => {
                        return Err(invalid(
                            field,
                            format!(
                                "{entry:?} is not an IP address or CIDR range: write it like \"127.0.0.1\" or \"10.0.0.0/8\""
                            ),
                        ))
                    }
                }
            }
            Ok(nets)
        };
        let trusted_proxies = networks("trusted_proxies", raw.trusted_proxies.unwrap_or_default())?;
        let metrics_allow = networks(
            "metrics_allow",
            raw.metrics_allow
                .unwrap_or_else(|| vec!["127.0.0.1".into(), "::1".into()]),
        )?;
        let positive =
            |field: &'static str, value: Option<u64>, default: u64, why: &str| match value
                .unwrap_or(default)
            {
                0 => Err(invalid(
                    field,
                    format!("0 {why}: use a positive number such as {default}"),
                )),
                n => Ok(n),
            };
        let admin = AdminConfig {
            max_upload_bytes: positive(
                "max_upload_bytes",
                raw.max_upload_bytes,
                2 << 30,
                "would refuse every upload",
            )?,
            session_ttl: Duration::from_secs(
                3600 * positive(
                    "session_hours",
                    raw.session_hours,
                    12,
                    "would end every sign-in at once",
                )?,
            ),
            attempts_per_minute: std::num::NonZeroU32::new(
                positive(
                    "sign_in_attempts_per_minute",
                    raw.sign_in_attempts_per_minute.map(u64::from),
                    5,
                    "would refuse every sign-in",
                )?
                .min(u64::from(u32::MAX)) as u32,
            )
            .expect("positive"),
            secure_cookies: public_url.starts_with("https://"),
            sharing_alert_addresses: positive(
                "sharing_alert_addresses",
                raw.sharing_alert_addresses,
                5,
                "would flag every personal URL on its first use",
            )?,
            metrics_allow,
        };
        let s = raw.server;
        let max_connections = positive(
            "server.max_connections",
            s.max_connections.map(|n| n as u64),
            10_000,
            "would refuse every client",
        )? as usize;
        let header_read_timeout = positive(
            "server.header_read_timeout_secs",
            s.header_read_timeout_secs,
            10,
            "would give no client time to send its request",
        )?;
        let keep_alive_timeout = positive(
            "server.keep_alive_timeout_secs",
            s.keep_alive_timeout_secs,
            30,
            "would close every connection as soon as it opens",
        )?;
        let send_buffer = match s.send_buffer_bytes {
            Some(n) if n < 1024 => {
                return Err(invalid(
                    "server.send_buffer_bytes",
                    format!("{n} is too small to send a response head: use at least 1024, or leave it out for the kernel's default")
                ))
            }
            other => other,
        };
        let server = ServerConfig {
            max_connections,
            header_read_timeout: Duration::from_secs(header_read_timeout),
            keep_alive_timeout: Duration::from_secs(keep_alive_timeout),
            shutdown_grace: Duration::from_secs(s.shutdown_grace_secs.unwrap_or(10)),
            send_buffer,
            trusted_proxies,
        };
        let measurement = MeasurementConfig {
            enabled: raw.measurement.enabled.unwrap_or(true),
            retention_days: positive(
                "measurement.retention_days",
                raw.measurement.retention_days,
                30,
                "would roll up every event before it is counted",
            )?,
            address_limit: crate::stats::count::AddressLimit {
                per_address_per_day: positive(
                    "measurement.max_downloads_per_address",
                    raw.measurement.max_downloads_per_address,
                    200,
                    "would count no download at all",
                )?,
                exempt: networks(
                    "measurement.busy_addresses",
                    raw.measurement.busy_addresses.unwrap_or_default(),
                )?,
            },
        };
        let state_dir = abs(raw.state_dir, ".rollcall");
        Ok(Config {
            public_url,
            listen,
            episodes_dir: abs(raw.episodes_dir, "episodes"),
            feeds_dir: abs(raw.feeds_dir, "feeds"),
            database: match raw.database {
                Some(p) => abs(Some(p), ""),
                None => state_dir.join("rollcall.db"),
            },
            token_key: match raw.token_key {
                Some(p) => abs(Some(p), ""),
                None => state_dir.join("token.key"),
            },
            state_dir,
            admin,
            server,
            measurement,
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

    fn invalid(toml_text: &str) -> String {
        let raw: RawConfig = toml::from_str(toml_text).unwrap();
        Config::from_raw(raw, Path::new("."), Path::new("config.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn settings_that_make_no_sense_are_refused_by_name() {
        for (text, field) in [
            (
                "[server]\nkeep_alive_timeout_secs = 0",
                "server.keep_alive_timeout_secs",
            ),
            (
                "[server]\nheader_read_timeout_secs = 0",
                "server.header_read_timeout_secs",
            ),
            ("[server]\nmax_connections = 0", "server.max_connections"),
            (
                "[server]\nsend_buffer_bytes = 10",
                "server.send_buffer_bytes",
            ),
            ("trusted_proxies = [\"10.0.0.0/33\"]", "trusted_proxies"),
            ("trusted_proxies = [\"proxy.local\"]", "trusted_proxies"),
        ] {
            let err = invalid(text);
            assert!(
                err.starts_with(&format!("config.toml: field '{field}': ")),
                "{err}"
            );
        }
        assert!(invalid("[server]\nkeep_alive_timeout_secs = 0").contains("such as 30"));
    }

    #[test]
    fn trusted_proxies_take_addresses_and_ranges() {
        let raw: RawConfig =
            toml::from_str("trusted_proxies = [\"127.0.0.1\", \"10.1.2.3/8\", \"::1\"]").unwrap();
        let c = Config::from_raw(raw, Path::new("."), Path::new("config.toml")).unwrap();
        let shown: Vec<String> = c
            .server
            .trusted_proxies
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(shown, ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]);
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
