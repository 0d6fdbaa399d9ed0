//! The `aiwaf` binary: the reverse proxy and the operator CLI.

use std::process::ExitCode;

/// mimalloc: the proxy allocates small, short-lived buffers on every request, from two
/// runtime threads; glibc's malloc spent ~10 % of block-mode CPU there (bench/proxy.sh, perf).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AIWAF_LOG").unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    match aiwaf::cli::main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
