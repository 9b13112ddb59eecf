//! The `rollcall` command: parses arguments, loads config, sets up logging and calls the library.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use rollcall::catalog::{self, MeasureCache, Source};
use rollcall::config::Config;

mod cli;

const ABOUT: &str = "Podcast feed and media server for training programmes";

const LONG_ABOUT: &str = "\
Rollcall serves a catalog of episode folders (episodes/) and feed definitions (feeds/) as RSS \
feeds that follow Apple's rules and the Podcast Index namespace, a website with players, and the \
media itself with exact HTTP range support. Members-only feeds reach officers through personal \
feed URLs; admins add episodes on the website, through the HTTP API or with this command; \
downloads are counted by the IAB measurement guidelines.

Settings come from the config file (--config, default ./config.toml), then from ROLLCALL_... \
environment variables over it (ROLLCALL_PUBLIC_URL, ROLLCALL_SERVER_MAX_CONNECTIONS, ...), then \
from the flags --public-url and --listen over both. docs/config.md lists every setting.";

const EXAMPLES: &str = "\
Examples:
  rollcall serve                                  serve the catalog next to config.toml
  rollcall --config /srv/podcasts/config.toml serve --listen 0.0.0.0:8080
  rollcall check                                  list every problem in the catalog
  rollcall user add chief --role admin            make the first admin
  rollcall stats --since 2026-11-01               download figures
  rollcall completions bash > /etc/bash_completion.d/rollcall";

#[derive(Parser)]
#[command(
    name = "rollcall",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = EXAMPLES
)]
struct Cli {
    /// Config file; relative paths inside it resolve against its folder.
    #[arg(
        long,
        global = true,
        default_value = "config.toml",
        value_name = "PATH"
    )]
    config: PathBuf,
    /// Absolute base URL of every link in feeds and pages, over public_url from the config and
    /// ROLLCALL_PUBLIC_URL.
    #[arg(long, global = true, value_name = "URL")]
    public_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the whole catalog and print every problem.
    ///
    /// Each problem names its file and field, says what is wrong and what to do. Exits 1 if
    /// there is any.
    #[command(after_help = "Example:\n  rollcall check")]
    Check,
    /// Write a static export: feeds/<id>.xml, feeds.opml and the media they use.
    ///
    /// Any static web server can serve the folder. Members-only feeds are left out. Nothing is
    /// written if the catalog has problems.
    #[command(after_help = "Example:\n  rollcall build --out public")]
    Build {
        /// Folder to write into.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Serve feeds, pages and media over HTTP, reloading the catalog when its files change.
    ///
    /// Prints "listening on http://IP:PORT" when ready. Edits to episodes/ and feeds/ apply
    /// within about a second; an invalid edit is logged and the last good catalog keeps serving.
    /// SIGTERM or Ctrl-C lets requests in flight finish first. /healthz says it is alive;
    /// /readyz says whether it can do its work.
    #[command(
        after_help = "Examples:\n  rollcall serve\n  rollcall serve --listen 127.0.0.1:0\n  ROLLCALL_LOG_FORMAT=json rollcall serve"
    )]
    Serve {
        /// Address to listen on, for example 127.0.0.1:8080 (port 0 picks a free port), over
        /// listen from the config and ROLLCALL_LISTEN.
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
    /// Manage accounts: admins add episodes, officers listen to members feeds.
    ///
    /// Works with the server stopped or running; a running server sees changes within a second.
    #[command(
        subcommand,
        after_help = "Examples:\n  rollcall user add chief --role admin\n  rollcall user add patrol --role officer\n  rollcall user token patrol"
    )]
    User(UserCommand),
    /// Manage API tokens for the admin HTTP API.
    #[command(
        subcommand,
        after_help = "Example:\n  rollcall token create --user chief"
    )]
    Token(TokenCommand),
    /// Add episodes from the command line (works with the server stopped or running).
    #[command(subcommand)]
    Episode(Box<EpisodeCommand>),
    /// Print download figures, counted by the IAB v2.3 rules.
    ///
    /// Per episode, day, app, device and feed, and per officer for members feeds; see
    /// docs/measurement.md for the method. Works while the server runs, which stores events
    /// once a second.
    #[command(
        after_help = "Examples:\n  rollcall stats\n  rollcall stats --since 2026-11-01 --episode defining-de-escalation\n  rollcall stats --json > downloads.json"
    )]
    Stats {
        /// Only this episode (its folder name).
        #[arg(long)]
        episode: Option<String>,
        /// Only downloads on or after this UTC day, YYYY-MM-DD.
        #[arg(long)]
        since: Option<String>,
        /// Print JSON instead of tables.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// Print CSV instead of tables.
        #[arg(long)]
        csv: bool,
    },
    /// Print a shell completion script.
    ///
    /// Load it from your shell's startup file, or install it where your shell looks for
    /// completions.
    #[command(
        after_help = "Examples:\n  rollcall completions bash > /etc/bash_completion.d/rollcall\n  rollcall completions zsh > ~/.zfunc/_rollcall\n  rollcall completions fish > ~/.config/fish/completions/rollcall.fish"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), for man(1).
    #[command(
        after_help = "Examples:\n  rollcall man > /usr/local/share/man/man1/rollcall.1\n  rollcall man | man -l -"
    )]
    Man,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account. The password is asked for at a prompt, or read from stdin.
    ///
    /// Passwords have at least 12 characters and are stored only as argon2id hashes.
    #[command(
        after_help = "Examples:\n  rollcall user add chief --role admin\n  printf '%s\\n' \"$PASSWORD\" | rollcall user add patrol --role officer --password-stdin"
    )]
    Add {
        name: String,
        #[arg(long, value_parser = ["admin", "officer"])]
        role: String,
        /// Read the password from the first line of standard input instead of a prompt.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts and their roles.
    #[command(after_help = "Example:\n  rollcall user list")]
    List,
    /// Remove an account; its sessions and tokens stop working at once.
    #[command(after_help = "Example:\n  rollcall user remove patrol")]
    Remove { name: String },
    /// Print the account's personal feed URLs, one per members feed (making its token if it has
    /// none yet). With --rotate, a new token replaces the old one, whose URLs stop working.
    #[command(
        after_help = "Examples:\n  rollcall user token patrol\n  rollcall user token patrol --rotate"
    )]
    Token {
        name: String,
        #[arg(long)]
        rotate: bool,
    },
    /// Suspend an account: its sign-ins, API tokens and personal URLs stop working until it is
    /// reinstated.
    #[command(after_help = "Example:\n  rollcall user suspend patrol")]
    Suspend { name: String },
    /// Reinstate a suspended account.
    #[command(after_help = "Example:\n  rollcall user reinstate patrol")]
    Reinstate { name: String },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token for a user and print it once; only its hash is stored.
    #[command(
        after_help = "Example:\n  TOKEN=$(rollcall token create --user chief)\n  curl -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:8080/admin/api/episodes"
    )]
    Create {
        #[arg(long)]
        user: String,
    },
}

#[derive(Subcommand)]
enum EpisodeCommand {
    /// Add an episode: its folder is staged, checked and renamed into episodes/ in one step.
    ///
    /// The audio is measured (duration, SHA-256) while it is copied. A running server shows the
    /// episode within about a second; a published time in the future schedules it.
    #[command(
        after_help = "Example:\n  rollcall episode add --title \"Defining De-Escalation\" --published 2016-06-30 \\\n    --guest \"Eric Pisconski|Sergeant|Seattle Police Department\" --notes notes.md \\\n    --resource \"PERF report|https://www.policeforum.org/\" \\\n    --feed defusing-difficult-encounters --audio talk.mp3"
    )]
    Add {
        #[arg(long)]
        title: String,
        /// Release time: RFC 3339 (2016-06-30T09:00:00-04:00) or a date (2016-06-30). A time in
        /// the future schedules the episode.
        #[arg(long, visible_alias = "date")]
        published: String,
        /// One or two sentences for podcast apps. Default: the first paragraph of the notes.
        #[arg(long)]
        summary: Option<String>,
        /// "Name|role|affiliation"; repeat for each guest.
        #[arg(long = "guest")]
        guests: Vec<String>,
        /// Show notes in Markdown.
        #[arg(long)]
        notes: Option<PathBuf>,
        /// "Title|URL|note"; repeat for each resource.
        #[arg(long = "resource")]
        resources: Vec<String>,
        /// Feed id (feeds/<id>.toml); repeat for each feed.
        #[arg(long = "feed")]
        feeds: Vec<String>,
        /// The audio: MP3, M4A/AAC, Ogg/Opus or FLAC.
        #[arg(long)]
        audio: PathBuf,
        /// WebVTT or SRT transcript.
        #[arg(long)]
        transcript: Option<PathBuf>,
        /// Podcast Index chapters JSON.
        #[arg(long)]
        chapters: Option<PathBuf>,
        /// Folder name and URL part. Default: made from the title.
        #[arg(long)]
        slug: Option<String>,
    },
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Completions and the manual page need no config.
    if matches!(cli.command, Command::Completions { .. } | Command::Man) {
        return match run(
            cli,
            Config::for_root(std::path::Path::new("."), "http://127.0.0.1:8080"),
        ) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let flags: Vec<(&str, String)> = cli
        .public_url
        .iter()
        .map(|u| ("public_url", u.clone()))
        .collect();
    let config = match Config::load_with(&cli.config, std::env::vars(), &flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Log lines are small and rare, except the access log, which its own thread writes to stderr
    // in batches, in the same format (see rollcall::http::AccessLog).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        rollcall::config::LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        rollcall::config::LogFormat::Json => logs.json().init(),
    }
    match run(cli, config) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, config: Config) -> anyhow::Result<ExitCode> {
    let source = Source::from(&config);
    let cache = source
        .measure_cache
        .as_deref()
        .map(MeasureCache::load)
        .unwrap_or_default();
    match cli.command {
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "rollcall", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check => match catalog::load(&source, &cache) {
            Ok(c) => {
                save_measurements(&source, &cache);
                println!("ok: {} episodes, {} feeds", c.episodes.len(), c.feeds.len());
                Ok(ExitCode::SUCCESS)
            }
            Err(problems) => {
                eprint!("{problems}");
                eprintln!("{} problem(s) found", problems.0.len());
                Ok(ExitCode::FAILURE)
            }
        },
        Command::Build { out } => {
            let c = match catalog::load(&source, &cache) {
                Ok(c) => {
                    save_measurements(&source, &cache);
                    c
                }
                Err(problems) => {
                    eprint!("{problems}");
                    eprintln!("{} problem(s) found; nothing was written", problems.0.len());
                    return Ok(ExitCode::FAILURE);
                }
            };
            let s = rollcall::export::export(&c, &out)
                .with_context(|| format!("exporting to {}", out.display()))?;
            println!(
                "wrote {} feeds and {} media files ({} bytes) to {}",
                s.feeds,
                s.files,
                s.bytes,
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::User(cmd) => cli::user(&config, &source, &cache, cmd),
        Command::Token(cmd) => cli::token(&config, cmd),
        Command::Episode(cmd) => cli::episode(&config, &source, &cache, *cmd),
        Command::Stats {
            episode,
            since,
            json,
            csv,
        } => cli::stats(&config, &source, &cache, episode, since, json, csv),
        Command::Serve { listen } => {
            let listen = listen.unwrap_or(config.listen);
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            let runtime = rollcall::runtime(cpus).context("starting the async runtime")?;
            tracing::info!(
                cpus,
                scheduler = ?runtime.handle().runtime_flavor(),
                "async runtime started"
            );
            let access_log = tracing::enabled!(target: "access", tracing::Level::INFO)
                .then(|| Box::new(std::io::stderr()) as Box<dyn Write + Send>);
            let options = rollcall::Options { listen, access_log };
            let served = runtime.block_on(rollcall::serve(
                config,
                options,
                shutdown_signal(),
                |ready| {
                    println!("listening on http://{}", ready.addr);
                    let _ = std::io::stdout().flush();
                },
            ));
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            served?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Keeps measurements for the next run; a failure only costs time, so it is a warning.
fn save_measurements(source: &Source, cache: &MeasureCache) {
    if let Some(path) = &source.measure_cache {
        if let Err(e) = cache.save(path) {
            eprintln!(
                "warning: {}: cannot save measurements ({e}); check that state_dir is writable",
                path.display()
            );
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
