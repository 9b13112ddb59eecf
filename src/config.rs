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
    /// `text` (default) or `json`: the format of every log line, access lines included.
    pub log_format: Option<LogFormat>,
    /// How access lines show the client's address: `full` (default), `truncated` (IPv4 /24,
    /// IPv6 /48) or `none`.
    pub log_client_address: Option<ClientAddress>,
    /// Addresses or CIDR ranges that may read `/metrics` without a token.
    /// Default: `["127.0.0.1", "::1"]`.
    pub metrics_allow: Option<Vec<String>>,
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub measurement: RawMeasurement,
    #[serde(default)]
    pub site: RawSite,
}

/// `[site]`: the website's identity.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    /// The site's name in every page's header and `<title>`. Default: `Podcasts`.
    pub title: Option<String>,
    /// The programme that publishes the podcasts, shown beside the title and in the footer.
    pub programme: Option<String>,
    /// The programme's own website, linked from its name.
    pub programme_url: Option<String>,
    /// A PNG or JPEG logo shown in the header, relative to this file.
    pub logo: Option<PathBuf>,
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

/// How an environment variable's text becomes a setting's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Int,
    Bool,
    /// Comma-separated.
    List,
}

/// Every setting, as `section.key`, with the kind of its value: `ROLLCALL_` plus the name in
/// capitals, dots as underscores, sets it (`ROLLCALL_SERVER_MAX_CONNECTIONS`).
const SETTINGS: &[(&str, Kind)] = &[
    ("public_url", Kind::Str),
    ("listen", Kind::Str),
    ("episodes_dir", Kind::Str),
    ("feeds_dir", Kind::Str),
    ("state_dir", Kind::Str),
    ("trusted_proxies", Kind::List),
    ("database", Kind::Str),
    ("max_upload_bytes", Kind::Int),
    ("session_hours", Kind::Int),
    ("sign_in_attempts_per_minute", Kind::Int),
    ("token_key", Kind::Str),
    ("sharing_alert_addresses", Kind::Int),
    ("log_format", Kind::Str),
    ("log_client_address", Kind::Str),
    ("metrics_allow", Kind::List),
    ("server.max_connections", Kind::Int),
    ("server.header_read_timeout_secs", Kind::Int),
    ("server.keep_alive_timeout_secs", Kind::Int),
    ("server.shutdown_grace_secs", Kind::Int),
    ("server.send_buffer_bytes", Kind::Int),
    ("measurement.enabled", Kind::Bool),
    ("measurement.retention_days", Kind::Int),
    ("measurement.max_downloads_per_address", Kind::Int),
    ("measurement.busy_addresses", Kind::List),
    ("site.title", Kind::Str),
    ("site.programme", Kind::Str),
    ("site.programme_url", Kind::Str),
    ("site.logo", Kind::Str),
];

/// The names of every environment variable that sets something.
pub fn environment_variables() -> impl Iterator<Item = String> {
    SETTINGS
        .iter()
        .map(|(s, _)| format!("ROLLCALL_{}", s.replace('.', "_").to_uppercase()))
}

fn parse_value(text: &str, kind: Kind) -> Result<toml::Value, String> {
    Ok(match kind {
        Kind::Int => toml::Value::Integer(
            text.trim()
                .parse::<i64>()
                .map_err(|_| format!("{text:?} is not a whole number"))?,
        ),
        Kind::Bool => toml::Value::Boolean(match text.trim() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => return Err(format!("{text:?} is not true or false")),
        }),
        Kind::List => toml::Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        ),
        Kind::Str => toml::Value::String(text.to_owned()),
    })
}

/// Sets `section.key` (or a top-level `key`) in `table`.
fn set(table: &mut toml::Table, setting: &str, value: toml::Value) {
    match setting.split_once('.') {
        Some((section, key)) => {
            let entry = table
                .entry(section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(t) = entry {
                t.insert(key.to_owned(), value);
            }
        }
        None => {
            table.insert(setting.to_owned(), value);
        }
    }
}

/// `line L, column C: ` of where a span starts in `text`, or nothing without a span.
fn position(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    let Some(span) = span else {
        return String::new();
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}: ")
}

/// The format of log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// How much of a client's address access lines show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAddress {
    #[default]
    Full,
    Truncated,
    None,
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
    pub log_format: LogFormat,
    pub log_client_address: ClientAddress,
    /// The website's title, programme and logo.
    pub site: crate::catalog::SiteSource,
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
    /// Reads and validates the config file at `path`, with `ROLLCALL_…` environment variables
    /// over it.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with(path, std::env::vars(), &[])
    }

    /// Reads the config file at `path`; then `env` (the `ROLLCALL_…` variables among them) over
    /// it; then `flags` (setting, value) over both; and validates the result. Relative paths
    /// resolve against the file's folder whichever layer set them.
    pub fn load_with(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &[(&str, String)],
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let at = |e: toml::de::Error| ConfigError::Parse {
            path: path.to_owned(),
            message: format!(
                "{}{}: see docs/config.md for the keys",
                position(&text, e.span()),
                e.message().trim()
            ),
        };
        // The file alone first, so its mistakes (syntax, unknown keys, wrong types) are reported
        // with their line and column; then as a table the other layers go over.
        toml::from_str::<RawConfig>(&text).map_err(at)?;
        let mut table: toml::Table = toml::from_str(&text).map_err(at)?;
        let mut from_env: Vec<(&'static str, String)> = Vec::new();
        for (name, value) in env {
            let Some(key) = name.strip_prefix("ROLLCALL_") else {
                continue;
            };
            let Some((setting, kind)) = SETTINGS
                .iter()
                .find(|(s, _)| s.replace('.', "_").eq_ignore_ascii_case(key))
            else {
                // ROLLCALL_BIN and the like belong to tools, not the server.
                continue;
            };
            let value = parse_value(&value, *kind).map_err(|message| ConfigError::Parse {
                path: PathBuf::from(&name),
                message,
            })?;
            set(&mut table, setting, value);
            from_env.push((*setting, name));
        }
        for (setting, value) in flags {
            let kind = SETTINGS
                .iter()
                .find(|(s, _)| s == setting)
                .map_or(Kind::Str, |(_, k)| *k);
            let value = parse_value(value, kind).map_err(|message| ConfigError::Parse {
                path: PathBuf::from(format!("--{}", setting.replace('_', "-"))),
                message,
            })?;
            set(&mut table, setting, value);
            from_env.retain(|(s, _)| s != setting);
        }
        let raw = RawConfig::deserialize(toml::Value::Table(table)).map_err(|e| {
            let message = e.message().trim().to_owned();
            // A wrong value from the environment is that variable's fault, not the file's.
            let culprit = from_env.iter().find(|(s, _)| {
                message.contains(&format!("`{}`", s.rsplit('.').next().unwrap_or(s)))
            });
            ConfigError::Parse {
                path: culprit.map_or_else(|| path.to_owned(), |(_, name)| PathBuf::from(name)),
                message: message + ": see docs/config.md for the keys",
            }
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Config::from_raw(raw, base, path).map_err(|e| match e {
            ConfigError::Invalid { field, message, .. }
                if from_env.iter().any(|(s, _)| *s == field) =>
            {
                let name = &from_env.iter().find(|(s, _)| *s == field).expect("found").1;
                ConfigError::Invalid {
                    path: PathBuf::from(name),
                    field,
                    message,
                }
            }
            e => e,
        })
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
        if let Some(url) = &raw.site.programme_url {
            if !(url.starts_with("https://") || url.starts_with("http://"))
                || url.contains(char::is_whitespace)
            {
                return Err(invalid(
                    "site.programme_url",
                    format!("{url:?} is not an http(s) URL: write the programme's website, like \"https://bja.ojp.gov/program/valor\""),
                ));
            }
        }
        let site = crate::catalog::SiteSource {
            title: raw.site.title,
            programme: raw.site.programme.filter(|p| !p.trim().is_empty()),
            programme_url: raw.site.programme_url,
            logo: raw.site.logo.map(|p| abs(Some(p), "")),
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
            log_format: raw.log_format.unwrap_or_default(),
            log_client_address: raw.log_client_address.unwrap_or_default(),
            site,
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
    fn flags_then_environment_then_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "public_url = \"http://file.example\"\nlisten = \"127.0.0.1:1\"\n[server]\nmax_connections = 5\n",
        )
        .unwrap();
        let env = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let c = Config::load_with(&path, env(&[]), &[]).unwrap();
        assert_eq!(
            (c.public_url.as_str(), c.server.max_connections),
            ("http://file.example", 5)
        );
        let e = env(&[
            ("ROLLCALL_PUBLIC_URL", "https://env.example"),
            ("ROLLCALL_SERVER_MAX_CONNECTIONS", "7"),
            ("ROLLCALL_TRUSTED_PROXIES", "10.0.0.1, 10.0.0.0/8"),
            ("ROLLCALL_MEASUREMENT_ENABLED", "false"),
            ("ROLLCALL_STATE_DIR", "state"),
            ("ROLLCALL_BIN", "not a setting"),
        ]);
        let c = Config::load_with(&path, e.clone(), &[]).unwrap();
        assert_eq!(c.public_url, "https://env.example");
        assert_eq!(c.server.max_connections, 7);
        assert_eq!(c.server.trusted_proxies.len(), 2);
        assert!(!c.measurement.enabled);
        assert_eq!(
            c.state_dir,
            dir.path().join("state"),
            "relative to the config file"
        );
        let c =
            Config::load_with(&path, e, &[("public_url", "https://flag.example".into())]).unwrap();
        assert_eq!(c.public_url, "https://flag.example");
        // A bad value from the environment names the variable.
        let bad = Config::load_with(&path, env(&[("ROLLCALL_SERVER_MAX_CONNECTIONS", "0")]), &[])
            .unwrap_err()
            .to_string();
        assert!(
            bad.starts_with("ROLLCALL_SERVER_MAX_CONNECTIONS: field 'server.max_connections'"),
            "{bad}"
        );
        let bad = Config::load_with(&path, env(&[("ROLLCALL_SESSION_HOURS", "twelve")]), &[])
            .unwrap_err()
            .to_string();
        assert!(bad.starts_with("ROLLCALL_SESSION_HOURS: "), "{bad}");
        assert_eq!(environment_variables().count(), SETTINGS.len());
        assert!(environment_variables().any(|v| v == "ROLLCALL_MEASUREMENT_BUSY_ADDRESSES"));
    }

    #[test]
    fn config_errors_name_the_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "public_url = \"http://x\"\n[server]\nmax_connections = \"many\"\n",
        )
        .unwrap();
        let e = Config::load(&path).unwrap_err().to_string();
        assert!(e.contains("config.toml: line 3, column 19: "), "{e}");
        std::fs::write(&path, "log_format = \"yaml\"\n").unwrap();
        let e = Config::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("line 1, column 14: ") && e.contains("text") && e.contains("json"),
            "{e}"
        );
        std::fs::write(
            &path,
            "log_client_address = \"truncated\"\nlog_format = \"json\"\n",
        )
        .unwrap();
        let c = Config::load(&path).unwrap();
        assert_eq!(
            (c.log_format, c.log_client_address),
            (LogFormat::Json, ClientAddress::Truncated)
        );
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
