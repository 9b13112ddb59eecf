//! The binary's admin commands (`user`, `token`, `episode`): prompts, progress and printing. The
//! work itself is the library's: [`rollcall::store`], [`rollcall::access`] and
//! [`rollcall::catalog::write`].

use std::io::{BufRead, IsTerminal, Read};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};

use rollcall::access::personal::{self, TokenKey};
use rollcall::access::{self, Role, Secret};
use rollcall::catalog::write::{self, Attachments, Draft, Staging, WriteError};
use rollcall::catalog::{MeasureCache, Source};
use rollcall::config::Config;
use rollcall::store::Store;

use super::{EpisodeCommand, TokenCommand, UserCommand};

fn open_store(config: &Config) -> anyhow::Result<Store> {
    Ok(Store::open(&config.database)?)
}

/// Who ran a CLI command, for the audit log.
fn operator() -> String {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into())
}

fn read_password(name: &str, from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    if !std::io::stdin().is_terminal() {
        bail!("no terminal to ask for the password: pass --password-stdin and pipe it in");
    }
    let first = rpassword::prompt_password(format!("Password for {name}: "))?;
    let again = rpassword::prompt_password("Repeat it: ")?;
    if first != again {
        bail!("the passwords differ; nothing was changed");
    }
    Ok(first)
}

pub fn user(
    config: &Config,
    source: &Source,
    cache: &MeasureCache,
    cmd: UserCommand,
) -> anyhow::Result<ExitCode> {
    match cmd {
        UserCommand::Add {
            name,
            role,
            password_stdin,
        } => {
            let role = Role::parse(&role).expect("clap checked the role");
            let store = open_store(config)?;
            let password = read_password(&name, password_stdin)?;
            let hash = access::new_account(&name, &password)?;
            store.add_user(&name, role, &hash)?;
            store.audit(
                &operator(),
                "user add",
                &format!("{name} ({})", role.as_str()),
                "cli",
            )?;
            println!("added {} {name}", role.as_str());
        }
        UserCommand::List => {
            let store = open_store(config)?;
            for a in store.users()? {
                println!("{}\t{}", a.name, a.role.as_str());
            }
        }
        UserCommand::Token { name, rotate } => {
            let store = open_store(config)?;
            let key = TokenKey::load_or_create(&config.token_key)
                .with_context(|| format!("{}", config.token_key.display()))?;
            let Some(account) = store.users()?.into_iter().find(|a| a.name == name) else {
                bail!("no user is named {name:?}: `rollcall user list` shows them");
            };
            let token = match personal::current(&store, &key, &account)? {
                Some(t) if !rotate => t,
                _ => {
                    let t = personal::issue(&store, &key, &account)?;
                    let action = if rotate {
                        "token rotate"
                    } else {
                        "token issue"
                    };
                    store.audit(
                        &operator(),
                        action,
                        &format!("{name} ({})", t.hash().fingerprint()),
                        "cli",
                    )?;
                    t
                }
            };
            let catalog = rollcall::catalog::load(source, cache)
                .map_err(|p| anyhow::anyhow!("the catalog has problems:\n{p}"))?;
            let members: Vec<_> = catalog
                .feeds
                .iter()
                .filter(|f| !access::is_public(f))
                .collect();
            if members.is_empty() {
                eprintln!("no members feeds yet: set access = \"members\" in a feeds/<id>.toml");
            }
            for feed in members {
                println!(
                    "{}/p/{}/feeds/{}.xml",
                    config.public_url,
                    token.expose(),
                    feed.id
                );
            }
        }
        UserCommand::Suspend { name } => {
            let store = open_store(config)?;
            store.set_suspended(&name, true)?;
            store.audit(&operator(), "user suspend", &name, "cli")?;
            println!("suspended {name}: its sign-ins, API tokens and personal URLs no longer work");
        }
        UserCommand::Reinstate { name } => {
            let store = open_store(config)?;
            store.set_suspended(&name, false)?;
            store.audit(&operator(), "user reinstate", &name, "cli")?;
            println!("reinstated {name}");
        }
        UserCommand::Remove { name } => {
            let store = open_store(config)?;
            store.remove_user(&name)?;
            store.audit(&operator(), "user remove", &name, "cli")?;
            println!("removed {name}; its sessions and tokens no longer work");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn token(config: &Config, cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TokenCommand::Create { user } => {
            let store = open_store(config)?;
            let token = Secret::generate();
            store.add_api_token(&user, &token.hash())?;
            store.audit(
                &operator(),
                "token create",
                &format!("{user} ({})", token.hash().fingerprint()),
                "cli",
            )?;
            eprintln!("API token for {user} (shown once; send it as Authorization: Bearer …):");
            println!("{}", token.expose());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Copies a file into staging, with a progress bar for large files on a terminal.
fn stage_file(
    staging: &Staging,
    field: &str,
    path: &Path,
) -> Result<write::Uploaded, anyhow::Error> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("--{field} {}", path.display()))?;
    let size = file.metadata()?.len();
    let bar = if size >= 8 << 20 && std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(size);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_message(format!("copying {}", path.display()));
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut upload = staging.upload(field, u64::MAX)?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("--{field} {}", path.display()))?;
        if n == 0 {
            break;
        }
        upload.write(&buf[..n])?;
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    Ok(upload.finish()?)
}

pub fn episode(
    config: &Config,
    source: &Source,
    cache: &MeasureCache,
    cmd: EpisodeCommand,
) -> anyhow::Result<ExitCode> {
    let EpisodeCommand::Add {
        title,
        published,
        summary,
        guests,
        notes,
        resources,
        feeds,
        audio,
        transcript,
        chapters,
        slug,
    } = cmd;
    let published = write::parse_published("published", &published).map_err(anyhow::Error::msg)?;
    let guests = guests
        .iter()
        .map(|g| write::guest_from_spec(g))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let resources = resources
        .iter()
        .map(|r| write::resource_from_spec(r))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let notes = match &notes {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("--notes {}", p.display()))?
        }
        None => String::new(),
    };
    let summary = summary.unwrap_or_else(|| write::summary_from_notes(&notes));
    let summary = if summary.is_empty() {
        title.clone()
    } else {
        summary
    };
    for removed in write::remove_leftovers(&source.episodes_dir) {
        eprintln!(
            "removed {}, left by an add that did not finish",
            removed.display()
        );
    }
    let staging = Staging::new(&source.episodes_dir)?;
    let files = Attachments {
        audio: Some(stage_file(&staging, "audio", &audio)?),
        transcript: transcript
            .as_deref()
            .map(|t| stage_file(&staging, "transcript", t))
            .transpose()?,
        chapters: chapters
            .as_deref()
            .map(|c| stage_file(&staging, "chapters", c))
            .transpose()?,
    };
    let draft = Draft {
        slug,
        title,
        published,
        summary,
        guests,
        resources,
        feeds,
        notes,
        explicit: false,
    };
    let result = write::write_offline(source, cache, |catalog| {
        write::prepare_add(source, catalog, cache, staging, draft, files)
    });
    let (prepared, catalog) = match result {
        Ok(done) => done,
        Err(WriteError::Invalid(problems) | WriteError::Rejected(problems)) => {
            eprint!("{problems}");
            eprintln!("nothing was added");
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => bail!("{e}; nothing was added"),
    };
    if let Some(path) = &source.measure_cache {
        let _ = cache.save(path);
    }
    let ep = &prepared.episode;
    if let Ok(store) = open_store(config) {
        let _ = store.audit(&operator(), "episode add", &ep.slug, "cli");
    }
    println!("added {}", ep.slug);
    println!("duration {}s", ep.duration_secs());
    if ep.published > chrono::Utc::now().fixed_offset() {
        println!("scheduled for {}", ep.published.to_rfc3339());
    }
    for feed in catalog.feeds_of(ep) {
        println!("{}/feeds/{}.xml", config.public_url, feed.id);
    }
    println!("{}/episodes/{}", config.public_url, ep.slug);
    Ok(ExitCode::SUCCESS)
}

/// `rollcall stats`: the download report, as tables, JSON or CSV.
pub fn stats(
    config: &Config,
    source: &Source,
    cache: &MeasureCache,
    episode: Option<String>,
    since: Option<String>,
    json: bool,
    csv: bool,
) -> anyhow::Result<ExitCode> {
    if let Some(day) = &since {
        if chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").is_err() {
            bail!("--since {day:?} is not a date: write it as YYYY-MM-DD, for example 2026-11-01");
        }
    }
    let catalog = match rollcall::catalog::load(source, cache) {
        Ok(c) => c,
        Err(problems) => {
            eprint!("{problems}");
            bail!("the catalog has problems; fix them (rollcall check) and run stats again");
        }
    };
    let store = open_store(config)?;
    let query = rollcall::store::StatsQuery {
        since: since.clone(),
        episode: episode.clone(),
    };
    let counts = store.download_counts(&query)?;
    if let Some(slug) = &episode {
        if catalog.episode(slug).is_none() && counts.total == 0 {
            bail!("--episode {slug:?}: no such episode in the catalog, and no downloads recorded for it; the names are the folders in episodes/");
        }
    }
    let report = rollcall::stats::report::Report::new(counts, &catalog, since, episode);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if csv {
        print!("{}", report.to_csv());
    } else {
        print!("{}", table(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// The report as plain-text tables.
fn table(r: &rollcall::stats::report::Report) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let scope = match (&r.since, &r.episode) {
        (None, None) => "all time, all episodes".to_owned(),
        (Some(d), None) => format!("since {d}, all episodes"),
        (None, Some(e)) => format!("all time, episode {e}"),
        (Some(d), Some(e)) => format!("since {d}, episode {e}"),
    };
    let _ = writeln!(out, "Downloads: {} ({scope})", r.downloads);
    let _ = writeln!(out, "Method: {}", r.method);
    let section = |out: &mut String, title: &str, rows: Vec<(String, String)>| {
        if rows.is_empty() {
            return;
        }
        let width = rows
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        let _ = writeln!(out, "\n{title}");
        for (k, v) in rows {
            let _ = writeln!(out, "  {k:<width$}  {v:>8}");
        }
    };
    section(
        &mut out,
        "By episode (officers: distinct accounts, members-only episodes)",
        r.episodes
            .iter()
            .map(|e| {
                let officers = e
                    .officers
                    .map(|o| format!("  ({o} officers)"))
                    .unwrap_or_default();
                (e.slug.clone(), format!("{}{officers}", e.downloads))
            })
            .collect(),
    );
    let pairs = |rows: &[rollcall::stats::report::Row]| {
        rows.iter()
            .map(|r| (r.name.clone(), r.downloads.to_string()))
            .collect()
    };
    section(&mut out, "By day (UTC)", pairs(&r.days));
    section(&mut out, "By app", pairs(&r.apps));
    section(&mut out, "By device", pairs(&r.devices));
    section(
        &mut out,
        "By feed",
        r.feeds
            .iter()
            .map(|f| (format!("{} ({})", f.id, f.access), f.downloads.to_string()))
            .collect(),
    );
    section(
        &mut out,
        "By officer",
        r.officers
            .iter()
            .map(|o| {
                (
                    format!("{} / {}", o.officer, o.episode),
                    o.downloads.to_string(),
                )
            })
            .collect(),
    );
    section(
        &mut out,
        "Media requests, by what they counted as",
        r.requests
            .iter()
            .map(|v| (v.counted_as.clone(), v.requests.to_string()))
            .collect(),
    );
    out
}
