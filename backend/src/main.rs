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
    Serve {
        /// `all` (the embedded default: gateway with the built-in factors in-process),
        /// `gateway` (factors only by URL, TACIT_FACTOR_URLS) or `factor:gait` /
        /// `factor:keystroke-fixed` (one factor service, docs/factor-api.md).
        #[arg(long, default_value = "all")]
        role: tacit_backend::server::Role,
    },
    /// Generate a new HPKE key pair in the key directory (several may be live).
    Keygen,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Train a factor model (embedding network, background, calibration) on a data set
    /// and write the artifact.
    Train(tacit_backend::commands::TrainArgs),
    /// Measure error rates on a data set under the published protocols.
    Eval(tacit_backend::commands::EvalArgs),
    /// Write a model artifact as plain JSON (transform, network weights, calibration)
    /// for scoring in another runtime.
    ModelExport(tacit_backend::commands::ExportArgs),
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
    match cli.command {
        Command::Train(args) => {
            return tokio::task::spawn_blocking(move || tacit_backend::commands::train(args))
                .await
                .map_err(|e| e.to_string())?;
        }
        Command::Eval(args) => {
            let line = std::env::args().collect::<Vec<_>>().join(" ");
            return tokio::task::spawn_blocking(move || tacit_backend::commands::eval(args, line))
                .await
                .map_err(|e| e.to_string())?
                .map(|_| ());
        }
        Command::ModelExport(args) => {
            return tokio::task::spawn_blocking(move || tacit_backend::commands::export(args))
                .await
                .map_err(|e| e.to_string())?;
        }
        _ => {}
    }
    let settings = Settings::load(cli.config.as_deref()).map_err(|e| e.to_string())?;
    match cli.command {
        Command::Serve { role } => server::serve_role(settings, role)
            .await
            .map_err(|e| e.to_string()),
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
        Command::Train(_) | Command::Eval(_) | Command::ModelExport(_) => Ok(()),
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
