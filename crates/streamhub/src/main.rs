use std::process::ExitCode;
use std::sync::Arc;

use streamhub::config::{self, AdminTokenOptions, ConfigError, Invocation};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match config::parse(std::env::args_os()) {
        Ok(Invocation::Serve(c)) => *c,
        Ok(Invocation::AdminToken(options)) => return admin_token(&options),
        // --help, --version and flag errors, printed the way clap prints them.
        Err(ConfigError::Cli(e)) => e.exit(),
        Err(e) => {
            eprintln!("streamhub: {e}");
            return ExitCode::from(2);
        }
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = config.worker_threads {
        runtime.worker_threads(n);
    }
    match runtime.enable_all().build() {
        Ok(rt) => rt.block_on(serve(config)),
        Err(e) => {
            eprintln!("streamhub: cannot start the runtime: {e}");
            ExitCode::from(1)
        }
    }
}

/// `streamhub admin-token`: the token on stdout (alone, for scripts), notes on stderr.
fn admin_token(options: &AdminTokenOptions) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("streamhub: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(streamhub::admin_token::command(&options.db, options.action)) {
        Ok(outcome) => {
            if let Some(token) = outcome.token {
                println!("{token}");
            }
            if !outcome.note.is_empty() {
                eprintln!("{}", outcome.note);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("streamhub: {e}");
            ExitCode::from(1)
        }
    }
}

async fn serve(config: config::Config) -> ExitCode {
    let listener = match streamhub::listen(config.bind) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("streamhub: cannot listen on {}: {e}", config.bind);
            return ExitCode::from(1);
        }
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(on_signal(shutdown.clone()));
    let reload = Arc::new(Notify::new());
    on_hangup(&reload);
    match streamhub::run_with_reload(config, listener, shutdown, reload).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("streamhub: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Cancels `shutdown` on Ctrl-C or SIGTERM.
async fn on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "no SIGTERM handler; Ctrl-C only");
                    let _ = ctrl_c.await;
                    shutdown.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    shutdown.cancel();
}

/// SIGHUP notifies `reload` (the server reads its TLS certificate again). Installed before the
/// server starts: until a handler exists, SIGHUP's default action ends the process.
fn on_hangup(reload: &Arc<Notify>) {
    #[cfg(unix)]
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(mut hup) => {
            let reload = Arc::clone(reload);
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    // A permit is kept if the server is busy: no SIGHUP is lost.
                    reload.notify_one();
                }
            });
        }
        Err(e) => {
            tracing::warn!(error = %e, "no SIGHUP handler: the TLS certificate is read at start only")
        }
    }
    #[cfg(not(unix))]
    let _ = reload;
}
