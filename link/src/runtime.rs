//! The async runtime both daemons run on, their logging, and how they are told to stop.
//!
//! A single-threaded runtime: every hop of a byte (device fd, actor queue, QUIC stream, UDP
//! socket) is a task wake-up, and on one thread these cost a function call instead of a
//! cross-core handoff. Measured on the serial round trip (docs/BENCHMARKS.md), it is the
//! difference between meeting the latency target and missing it. `XOQ_THREADS=N` (N > 1)
//! selects a multi-threaded runtime for hosts that serve many busy devices.

use std::io;

use tokio::runtime::{Builder, Runtime};

pub fn build() -> io::Result<Runtime> {
    let rt = match std::env::var("XOQ_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        Some(n) if n > 1 => Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
        _ => Builder::new_current_thread().enable_all().build(),
    }?;
    if let Some(window) = crate::busy_poll::window_from_env() {
        rt.spawn(crate::busy_poll::run(window));
    }
    Ok(rt)
}

/// Logs to stderr with `tracing`; `XOQ_LOG` takes an `EnvFilter` (default `info`). Colours
/// only on a terminal: the journal and log files get plain `key=value` text.
pub fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("XOQ_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
