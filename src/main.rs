//! The claude-proxy program: reads its settings, starts the app, serves until SIGTERM or
//! SIGINT. Everything it does goes through `claude_proxy::app` (ARCHITECTURE.md).

use std::process::ExitCode;

use claude_proxy::app::{self, App, Config, one_line_error};

fn main() -> ExitCode {
    app::serve_watchdog_if_asked();
    app::serve_relay_if_asked();
    let config = match Config::from_args(std::env::args_os()) {
        Ok(config) => config,
        Err(err) if !err.use_stderr() => {
            // --help and --version
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("{}", one_line_error(&err));
            return ExitCode::from(2);
        }
    };
    let (host, port, backlog, log_format) = (
        config.host.clone(),
        config.port,
        // As many waiting to be accepted as may be open at once.
        u32::try_from(config.max_connections).unwrap_or(u32::MAX),
        config.log_format,
    );
    let app = match App::build(config) {
        Ok(app) => app,
        Err(err) => {
            eprintln!("claude-proxy: {err}");
            return ExitCode::from(2);
        }
    };
    if let Err(err) = app::start_watchdog() {
        eprintln!("claude-proxy: cannot start the watchdog process: {err}");
        return ExitCode::FAILURE;
    }
    let telemetry = match app::init_logging(log_format) {
        Ok(telemetry) => telemetry,
        Err(err) => {
            eprintln!("claude-proxy: {err}");
            return ExitCode::from(2);
        }
    };
    app::raise_open_files_limit();

    let runtime = tokio::runtime::Runtime::new().expect("the tokio runtime starts");
    let exit = runtime.block_on(async move {
        let listener = match app::bind(&host, port, backlog).await {
            Ok(listener) => listener,
            Err(err) => {
                eprintln!(
                    "claude-proxy: cannot listen on {host}:{port}: {err} (set PROXY_HOST and PROXY_PORT)"
                );
                return ExitCode::FAILURE;
            }
        };
        // Handled from here on: a SIGTERM as soon as the address is known is a graceful stop.
        let shutdown = shutdown_signal();
        match listener.local_addr() {
            Ok(addr) => tracing::info!("listening on http://{addr}"),
            Err(err) => tracing::warn!(%err, "listening, on an address that cannot be read"),
        }
        match app.serve(listener, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                tracing::error!(%err, "the server failed");
                ExitCode::FAILURE
            }
        }
    });
    // Every agent has ended: their spans are in the batch, sent now.
    telemetry.shutdown();
    exit
}

/// SIGTERM (docker stop, systemd) or SIGINT (Ctrl-C). The handlers are installed when this is
/// called, not when the future is first polled: a signal in between would otherwise kill the
/// process as if it had no handler.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM can be handled");
    let mut interrupt = signal(SignalKind::interrupt()).expect("SIGINT can be handled");
    async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = interrupt.recv() => tracing::info!("SIGINT received"),
        }
    }
}
