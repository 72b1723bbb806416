//! `tacit-backend`: the Tacit server binary.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tacit_backend::keys::KeyRing;
use tacit_backend::server;
use tacit_backend::settings::Settings;
use tracing_subscriber::EnvFilter;

/// Tacit backend: gateway (device enrolment, encrypted ingest) and later the factor
/// services and models.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// TOML settings file (TACIT_* environment variables override it).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server until SIGTERM/SIGINT.
    Serve,
    /// Generate a new HPKE key pair in the key directory (several may be live).
    Keygen,
    /// Create or upgrade the database schema, then exit.
    Migrate,
}

fn init_logging() {
    let filter = EnvFilter::try_from_env("TACIT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("TACIT_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let settings = Settings::load(cli.config.as_deref()).map_err(|e| e.to_string())?;
    match cli.command {
        Command::Serve => server::serve(settings).await.map_err(|e| e.to_string()),
        Command::Keygen => {
            let dir = settings.keys_dir();
            let pair = KeyRing::generate(&dir).map_err(|e| e.to_string())?;
            println!("key_id={}", pair.key_id());
            println!(
                "public_key={}",
                tacit_shared::api::b64_encode(pair.public_key().as_bytes())
            );
            println!("dir={}", dir.display());
            Ok(())
        }
        Command::Migrate => {
            server::open_store(&settings)
                .await
                .map_err(|e| e.to_string())?;
            println!("migrated {}", settings.database_url());
            Ok(())
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tacit-backend: {e}");
            ExitCode::FAILURE
        }
    }
}
