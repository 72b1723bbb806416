//! `tacit-test-server`: a small, real HTTP server standing in for the Tacit gateway in
//! the binding tests (until the backend's gateway exists).
//!
//! It implements `POST /v1/devices` and `POST /v1/uploads` exactly as `PROTOCOL.md`
//! ("HTTP API") and `tacit_shared::api` define them, keeps everything in memory, and
//! adds `GET /test/stats`. On start it prints one JSON line to stdout,
//! `{"url":"http://127.0.0.1:PORT","public_key":"<base64>","key_id":"<hex>"}`, then
//! serves until stdin closes (unless `--ignore-stdin`), SIGTERM or SIGINT.
//!
//! ```text
//! tacit-test-server --token enrol-1 --token enrol-2 [--user alice] [--port 0]
//! ```

mod gateway;
mod http;

use std::io::{Read, Write};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use clap::Parser;
use ring::rand::SystemRandom;
use tacit_shared::RecipientKeyPair;
use tacit_shared::api;

use crate::gateway::Gateway;

/// Command line.
#[derive(Debug, Parser)]
#[command(about = "Stand-in Tacit gateway for the binding tests")]
struct Args {
    /// Address to bind (use 0.0.0.0 to reach it from an emulator).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to bind; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// A single-use enrolment token (repeat for several).
    #[arg(long = "token")]
    tokens: Vec<String>,
    /// The user every enrolled device belongs to.
    #[arg(long, default_value = "test-user")]
    user: String,
    /// Largest request body accepted (bytes); larger ones get 413.
    #[arg(long, default_value_t = 64 << 20)]
    max_body_bytes: usize,
    /// Keep serving when stdin closes (stop with SIGTERM/SIGINT only).
    #[arg(long)]
    ignore_stdin: bool,
}

/// The one line printed on stdout once the server listens.
#[derive(serde::Serialize)]
struct Started {
    /// Base URL, e.g. `http://127.0.0.1:40123`.
    url: String,
    /// The HPKE (X25519) public key, base64.
    public_key: String,
    /// Its key id, hex.
    key_id: String,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("[tacit-test-server] ERROR: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let key = RecipientKeyPair::generate(&SystemRandom::new())
        .map_err(|e| format!("generating the HPKE key: {e}"))?;
    let gateway = Gateway::new(key, args.tokens, args.user);
    let public_key = api::b64_encode(gateway.key().public_key().as_bytes());
    let key_id = gateway.key().key_id().to_hex();
    let gateway = Arc::new(Mutex::new(gateway));
    let listener = tokio::net::TcpListener::bind((args.host, args.port)).await?;
    let addr = listener.local_addr()?;
    let app = http::router(gateway, args.max_body_bytes);

    let line = serde_json::to_string(&Started {
        url: format!("http://{addr}"),
        public_key,
        key_id,
    })?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    eprintln!("[tacit-test-server] listening on http://{addr}");

    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown(args.ignore_stdin))
        .await?;
    eprintln!("[tacit-test-server] stopped");
    Ok(())
}

/// Resolves on SIGTERM, SIGINT, or (unless `ignore_stdin`) end of stdin.
async fn shutdown(ignore_stdin: bool) {
    let (tx, stdin_closed) = tokio::sync::oneshot::channel::<()>();
    if !ignore_stdin {
        // A detached OS thread, not `tokio::io::stdin`: the runtime would wait for a
        // blocking read at exit.
        std::thread::spawn(move || {
            let mut sink = [0u8; 256];
            let mut stdin = std::io::stdin().lock();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            let _ = tx.send(());
        });
    }
    let stdin = async {
        if stdin_closed.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = stdin => eprintln!("[tacit-test-server] stdin closed"),
        _ = term => eprintln!("[tacit-test-server] SIGTERM"),
        _ = tokio::signal::ctrl_c() => eprintln!("[tacit-test-server] SIGINT"),
    }
}
