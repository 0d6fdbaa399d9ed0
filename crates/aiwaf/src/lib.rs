//! aiwaf's proxy and operator CLI as a library: the `aiwaf` binary is [`cli::main`]. The
//! modules are public so the fuzz targets (and embedders) can reach the config loader.

pub mod access_log;
pub mod admin;
pub mod cli;
pub mod config;
pub mod conn;
pub mod pool;
pub mod proxy;
pub mod serve;
pub mod timer;
pub mod tls;
pub mod train;
pub mod upstream;
pub mod views;
pub mod workers;
