//! Rollcall: a podcast feed and media server for training programs.
//!
//! A request or a command flows through these modules in order:
//! [`config`] says where the catalog is, [`catalog`] loads and measures it, [`render`] turns it into
//! feed bytes, and [`export`] writes a static copy.

pub mod catalog;
pub mod config;
pub mod export;
pub mod media;
pub mod render;
