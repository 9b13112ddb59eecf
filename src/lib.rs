//! Rollcall: a podcast feed and media server for training programs.
//!
//! [`config`] says where the catalog is; [`catalog`] loads and measures it; [`render`] turns it into
//! feed bytes; [`snapshot`] holds the rendered, compressed state that requests read and reloads it
//! when files change; [`media`] decides range and conditional semantics; [`access`] decides who may
//! see what; [`site`] renders the website's pages; [`stats`] receives a record of what every
//! response delivered; [`http`] is the only layer that speaks HTTP; [`export`] writes a static copy.

pub mod access;
pub mod catalog;
pub mod config;
pub mod export;
/// Harnesses for the cargo-fuzz targets in `fuzz/`; nothing else uses them.
pub mod fuzzing;
pub mod http;
pub mod media;
pub mod render;
pub mod rope;
pub mod site;
pub mod snapshot;
pub mod stats;
pub mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

/// How to run [`serve`].
pub struct Options {
    pub listen: SocketAddr,
    /// Where to write the access log, if anywhere.
    pub access_log: Option<Box<dyn std::io::Write + Send>>,
}

/// What a started server offers its caller.
pub struct Ready {
    pub addr: SocketAddr,
    pub live: Arc<snapshot::Live>,
    /// Every response's delivery record; subscribe before sending requests.
    pub deliveries: Arc<stats::Deliveries>,
}

/// Loads the catalog, starts watching it, and serves until `shutdown` completes. Calls `ready`
/// once connections are accepted. Returns after the shutdown grace, once every connection is
/// closed and every delivery record is published (and logged).
pub async fn serve(
    config: config::Config,
    options: Options,
    shutdown: impl Future<Output = ()>,
    ready: impl FnOnce(Ready),
) -> anyhow::Result<()> {
    let source = catalog::Source::from(&config);
    let episodes_dir = source.episodes_dir.clone();
    let database = config.database.clone();
    let state_dir = config.state_dir.clone();
    let (removed, store) = tokio::task::spawn_blocking(move || {
        // Large rendered feeds are kept as unnamed files here, for `sendfile`; if the folder
        // cannot be made, they are kept in memory instead.
        if std::fs::create_dir_all(&state_dir).is_ok() {
            render::spool_in(state_dir);
        }
        (
            catalog::write::remove_leftovers(&episodes_dir),
            store::Store::open(&database),
        )
    })
    .await?;
    for dir in removed {
        tracing::warn!(dir = %dir.display(), "removed a staging folder left by a change that did not finish");
    }
    let store = Arc::new(store?);
    let live = tokio::task::spawn_blocking(move || snapshot::Live::load(source))
        .await?
        .map_err(|problems| anyhow::anyhow!("the catalog has problems:\n{problems}"))?;
    live.watch()?;
    let key_path = config.token_key.clone();
    let key =
        tokio::task::spawn_blocking(move || access::personal::TokenKey::load_or_create(&key_path))
            .await?
            .map_err(|e| {
                anyhow::anyhow!(
                    "{}: cannot read or create the token key: {e}",
                    config.token_key.display()
                )
            })?;
    let tokens = Arc::new(access::personal::Tokens::default());
    let token = CancellationToken::new();
    {
        let (tokens, store) = (Arc::clone(&tokens), Arc::clone(&store));
        tokio::task::spawn_blocking(move || tokens.reload(&store)).await??;
    }
    access::personal::watch(Arc::clone(&tokens), Arc::clone(&store), token.clone());
    let deliveries = Arc::new(stats::Deliveries::default());
    let access_log = match options.access_log {
        Some(out) => {
            let style = http::LogStyle {
                json: config.log_format == config::LogFormat::Json,
                client: config.log_client_address,
            };
            Some(http::AccessLog::start(&deliveries, out, style)?)
        }
        None => None,
    };
    let usage = stats::usage::Recorder::start(
        &deliveries,
        Arc::clone(&store),
        config.admin.sharing_alert_addresses,
    )?;
    let measurement = if config.measurement.enabled {
        let store = Arc::clone(&store);
        let settings = config.measurement.clone();
        let deliveries = Arc::clone(&deliveries);
        Some(
            tokio::task::spawn_blocking(move || {
                stats::measure::Measurement::start(&deliveries, store, &settings)
            })
            .await??,
        )
    } else {
        None
    };
    if let Some(m) = &measurement {
        deliveries.metrics.attach_measurement(Arc::clone(&m.status));
    }
    let shared = http::Shared::new(
        Arc::clone(&live),
        Arc::clone(&store),
        Arc::clone(&tokens),
        Arc::new(key),
        config.admin.attempts_per_minute,
    );
    let app = http::app(
        &shared,
        Arc::clone(&deliveries),
        &config.server.trusted_proxies,
        config.admin.clone(),
    );
    let listener = http::server::bind(options.listen).await?;
    ready(Ready {
        addr: listener.local_addr()?,
        live: Arc::clone(&live),
        deliveries: Arc::clone(&deliveries),
    });
    let server = http::server::run(listener, app, config.server, token.clone());
    tokio::pin!(server);
    tokio::select! {
        () = &mut server => {}
        () = shutdown => {
            token.cancel();
            server.await;
        }
    }
    if let Some(log) = access_log {
        log.finish();
    }
    usage.finish();
    if let Some(m) = measurement {
        tokio::task::spawn_blocking(move || m.finish()).await?;
    }
    Ok(())
}

/// The async runtime for [`serve`], for a process allowed to run on `cpus` CPUs (as
/// `std::thread::available_parallelism` counts them: affinity and cgroup quota included).
///
/// On one CPU it is tokio's single-thread scheduler. The work-stealing scheduler would still
/// run a single worker there, and pay on every wake-up for the cross-thread queues and parking
/// it cannot use: alternating runs measured about 3% more CPU per 304 and per 64 KiB range with
/// it (BENCHMARKS.md, "CPU per request"). On more CPUs, one worker per CPU.
/// `spawn_blocking` work (opening files, disk reads) gets its own threads either way.
pub fn runtime(cpus: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if cpus <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cpus)
            .enable_all()
            .build()
    }
}

#[cfg(test)]
mod tests {
    use tokio::runtime::RuntimeFlavor;

    #[test]
    fn one_cpu_gets_the_single_thread_scheduler_and_more_get_a_worker_each() {
        let one = super::runtime(1).unwrap();
        assert_eq!(one.handle().runtime_flavor(), RuntimeFlavor::CurrentThread);
        // Blocking work still leaves the async thread free.
        assert_eq!(
            one.block_on(async { tokio::task::spawn_blocking(|| 7).await.unwrap() }),
            7
        );
        let two = super::runtime(2).unwrap();
        assert_eq!(two.handle().runtime_flavor(), RuntimeFlavor::MultiThread);
        assert_eq!(two.metrics().num_workers(), 2);
    }
}
