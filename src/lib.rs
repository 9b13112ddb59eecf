//! Rollcall: a podcast feed and media server for training programs.
//!
//! [`config`] says where the catalog is; [`catalog`] loads and measures it; [`render`] turns it into
//! feed bytes; [`snapshot`] holds the rendered, compressed state that requests read and reloads it
//! when files change; [`media`] decides range and conditional semantics; [`access`] decides who may
//! fetch what; [`site`] renders the website's pages; [`http`] is the only layer that speaks HTTP;
//! [`export`] writes a static copy.

pub mod access;
pub mod catalog;
pub mod config;
pub mod export;
pub mod http;
pub mod media;
pub mod render;
pub mod rope;
pub mod site;
pub mod snapshot;

use std::future::Future;
use std::net::SocketAddr;

/// Loads the catalog, starts watching it, and serves until `shutdown` completes. Calls `ready` with
/// the bound address once connections are accepted.
pub async fn serve(
    config: config::Config,
    listen: SocketAddr,
    shutdown: impl Future<Output = ()>,
    ready: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    let source = catalog::Source::from(&config);
    let live = tokio::task::spawn_blocking(move || snapshot::Live::load(source))
        .await?
        .map_err(|problems| anyhow::anyhow!("the catalog has problems:\n{problems}"))?;
    live.watch()?;
    let listener = http::server::bind(listen).await?;
    ready(listener.local_addr()?);
    http::server::run(listener, http::app(live), config.server, shutdown).await;
    http::flush_access_log();
    Ok(())
}
