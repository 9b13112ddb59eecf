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

#[derive(Parser)]
#[command(name = "rollcall", version, about = "Podcast feed and media server")]
struct Cli {
    /// Config file; relative paths inside it resolve against its folder.
    #[arg(long, global = true, default_value = "config.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the whole catalog and print every problem.
    Check,
    /// Write a static export: feeds/<id>.xml, feeds.opml and the media they use.
    Build {
        /// Folder to write into.
        #[arg(long)]
        out: PathBuf,
    },
    /// Serve feeds and media over HTTP, reloading the catalog when its files change.
    Serve {
        /// Address to listen on, for example 127.0.0.1:8080; port 0 picks a free port.
        /// Default: `listen` from the config.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Manage accounts: admins add episodes, officers listen to members feeds.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens for the admin HTTP API.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Add episodes from the command line (works with the server stopped or running).
    #[command(subcommand)]
    Episode(Box<EpisodeCommand>),
    /// Print download figures, counted by the IAB v2.3 rules (see docs/measurement.md): per
    /// episode, day, app, device and feed, and per officer for members feeds. Works while the
    /// server runs; it writes events to the store once a second.
    ///
    /// Examples: rollcall stats; rollcall stats --since 2026-11-01 --episode defining-de-escalation;
    /// rollcall stats --json
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
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account. The password is asked for at a prompt, or read from stdin.
    ///
    /// Example: rollcall user add chief --role admin
    Add {
        name: String,
        #[arg(long, value_parser = ["admin", "officer"])]
        role: String,
        /// Read the password from the first line of standard input instead of a prompt.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts and their roles.
    List,
    /// Remove an account; its sessions and tokens stop working at once.
    Remove { name: String },
    /// Print the account's personal feed URLs, one per members feed (making its token if it has
    /// none yet). With --rotate, a new token replaces the old one, whose URLs stop working.
    ///
    /// Example: rollcall user token patrol --rotate
    Token {
        name: String,
        #[arg(long)]
        rotate: bool,
    },
    /// Suspend an account: its sign-ins, API tokens and personal URLs stop working until it is
    /// reinstated.
    Suspend { name: String },
    /// Reinstate a suspended account.
    Reinstate { name: String },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token for a user and print it once; only its hash is stored.
    ///
    /// Example: rollcall token create --user chief
    Create {
        #[arg(long)]
        user: String,
    },
}

#[derive(Subcommand)]
enum EpisodeCommand {
    /// Add an episode: its folder is staged, checked and renamed into episodes/ in one step.
    ///
    /// Example: rollcall episode add --title "Defining De-Escalation" --published 2016-06-30
    /// --guest "Eric Pisconski|Sergeant|Seattle Police Department" --notes notes.md
    /// --resource "PERF report|https://www.policeforum.org/" --feed defusing-difficult-encounters
    /// --audio talk.mp3
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
    // Log lines are small and rare, except the access log, which its own thread writes to stderr
    // in batches (see rollcall::http::AccessLog).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = Config::load(&cli.config)?;
    let source = Source::from(&config);
    let cache = source
        .measure_cache
        .as_deref()
        .map(MeasureCache::load)
        .unwrap_or_default();
    match cli.command {
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
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
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
