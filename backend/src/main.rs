//! `tacit-backend`: the Tacit server binary.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tacit_backend::keys::KeyRing;
use tacit_backend::server;
use tacit_backend::settings::Settings;

/// Tacit backend: the gateway (device enrolment, encrypted ingest, authentication), the
/// factor services, and the commands that train and evaluate the factor models.
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
    /// Generate a new HPKE key pair in the key directory (several may be live), the
    /// at-rest key (`KEYS_DIR/at-rest.key`) if encryption at rest has none yet, the
    /// factor bearer token (`KEYS_DIR/factor.token`) if there is none yet, and a
    /// verdict signing key (`KEYS_DIR/verdict-<kid>.key`) if there is none yet.
    Keygen,
    /// Key rotation: the offline root key and the signed key list phones learn keys from.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Print the settings in force (defaults, then `--config`, then `TACIT_*`) as TOML,
    /// secrets redacted; fails like `serve` would on a bad value.
    Config,
    /// Train a factor model (embedding network, background, calibration) on a data set,
    /// or with `--from-store` on the uploads of users who consented to training, and
    /// write the artifact.
    Train(tacit_backend::commands::TrainArgs),
    /// Measure error rates on a data set under the published protocols.
    Eval(tacit_backend::commands::EvalArgs),
    /// Train a candidate on the uploads of users who consented to training, judge it
    /// and the model in service on people held out from training (the gate), register
    /// it as the next version and promote it when the gate passes. Factor services
    /// load a promoted model at their next check; the gateway then rebuilds the
    /// templates of the old one in the background.
    Retrain(tacit_backend::commands::RetrainArgs),
    /// The model registry: list versions, add an artifact, promote, roll back.
    #[command(subcommand)]
    Models(tacit_backend::commands::ModelsCommand),
    /// Write a model artifact as plain JSON (transform, network weights, calibration)
    /// for scoring in another runtime.
    ModelExport(tacit_backend::commands::ExportArgs),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Generate the Ed25519 root key (keep it offline); prints the public key apps pin.
    RootKeygen {
        /// Where to write the PKCS#8 private key (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign the list of the key directory's HPKE keys with the root key and write
    /// `keylist.json` there (served at `GET /v1/keys`).
    Publish {
        /// The root key file (from `keys root-keygen`).
        #[arg(long)]
        root: PathBuf,
        /// Hours until a key new to the list becomes valid (let phones learn it first).
        #[arg(long, default_value_t = 0)]
        activate_in_hours: u64,
        /// Days an old key stays valid after its successor became valid: the longest an
        /// envelope may wait in an outbox and still be opened.
        #[arg(long, default_value_t = 30)]
        overlap_days: u64,
        /// Days a key without successor stays valid.
        #[arg(long, default_value_t = 400)]
        lifetime_days: u64,
    },
    /// Add a verdict signing key to the key directory (mode 0600): published in the
    /// JWKS as soon as the gateways restart, it signs from its start on. Delete the old
    /// key once its last token expired (the new key's start + `verdict.ttl_s`).
    VerdictKeygen {
        /// Hours until the new key signs: longer than relying parties cache the JWKS
        /// (the gateway says 5 minutes), plus the time to restart every gateway.
        #[arg(long, default_value_t = 1)]
        activate_in_hours: u64,
    },
    /// Generate a key for encrypting templates and features at rest (64 hex characters,
    /// mode 0600); point `TACIT_AT_REST_KEY_FILE` (`at_rest.key_file`) at it.
    AtRestKeygen {
        /// Where to write it (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
}

fn keys_command(settings: &Settings, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::RootKeygen { out } => {
            let public = tacit_backend::keys::generate_root(&out)
                .with_context(|| format!("writing the root key {}", out.display()))?;
            println!("root_public_key={}", tacit_shared::api::b64_encode(&public));
            println!("file={}", out.display());
        }
        KeysCommand::Publish {
            root,
            activate_in_hours,
            overlap_days,
            lifetime_days,
        } => {
            const HOUR: u64 = 3_600_000;
            let policy = tacit_backend::keys::PublishPolicy {
                activate_in_ms: activate_in_hours.saturating_mul(HOUR),
                overlap_ms: overlap_days.saturating_mul(24 * HOUR),
                lifetime_ms: lifetime_days.saturating_mul(24 * HOUR),
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .context("the system clock is before 1970")?
                .as_millis() as u64;
            let dir = settings.keys_dir();
            let list = tacit_backend::keys::publish(&dir, &root, now, policy)
                .with_context(|| format!("publishing the key list of {}", dir.display()))?;
            println!("serial={}", list.serial);
            for k in &list.keys {
                println!(
                    "key_id={} not_before_ms={} not_after_ms={}",
                    k.key_id, k.not_before_ms, k.not_after_ms
                );
            }
            println!(
                "file={}",
                dir.join(tacit_backend::keys::KEY_LIST_FILE).display()
            );
        }
        KeysCommand::VerdictKeygen { activate_in_hours } => {
            let now_s = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .context("the system clock is before 1970")?
                .as_secs();
            let dir = settings.keys_dir();
            let kid = tacit_backend::verdict::VerdictKeys::generate(
                &dir,
                now_s.saturating_add(activate_in_hours.saturating_mul(3600)),
            )
            .with_context(|| format!("writing a verdict signing key into {}", dir.display()))?;
            println!("verdict_kid={kid}");
            println!(
                "file={}",
                tacit_backend::verdict::key_path(&dir, &kid).display()
            );
        }
        KeysCommand::AtRestKeygen { out } => {
            tacit_backend::store::at_rest::AtRestKeys::generate(&out)
                .with_context(|| format!("writing the at-rest key {}", out.display()))?;
            println!("file={}", out.display());
        }
    }
    Ok(())
}

/// The model registry of the settings: the object store's `factor.models_prefix`.
fn registry_of(
    settings: &Settings,
    store: &dyn tacit_backend::store::Store,
) -> tacit_backend::registry::Registry {
    tacit_backend::registry::Registry::new(store.objects().clone(), &settings.factor.models_prefix)
}

/// Factor services that read a fixed file (`factor.model_url`) do not follow the
/// registry's promotions.
fn warn_model_url(settings: &Settings) {
    if let Some(url) = &settings.factor.model_url {
        tracing::warn!(model_url = %url, "factor.model_url is set: factor services with these settings serve that file, not the registry's promoted model");
    }
}

/// Runs a command; `settings` is what `main` loaded (the model commands need none, so a
/// bad settings file fails only the commands that use it).
async fn run(
    cli: Cli,
    settings: Result<Settings, tacit_backend::settings::SettingsError>,
) -> anyhow::Result<()> {
    match cli.command {
        Command::Train(args) if args.from_store => {
            let settings = settings.context("settings")?;
            let store = server::open_store(&settings)
                .await
                .context("opening the store")?;
            return tacit_backend::commands::train_from_store(&*store, args)
                .await
                .map(|_| ())
                .context("train --from-store");
        }
        Command::Train(args) => {
            return tokio::task::spawn_blocking(move || tacit_backend::commands::train(args))
                .await?
                .context("train");
        }
        Command::Eval(args) => {
            let line = std::env::args().collect::<Vec<_>>().join(" ");
            return tokio::task::spawn_blocking(move || tacit_backend::commands::eval(args, line))
                .await?
                .map(|_| ())
                .context("eval");
        }
        Command::ModelExport(args) => {
            return tokio::task::spawn_blocking(move || tacit_backend::commands::export(args))
                .await?
                .context("model-export");
        }
        _ => {}
    }
    let settings = settings.context("settings")?;
    match cli.command {
        Command::Retrain(args) => {
            warn_model_url(&settings);
            let store = server::open_store(&settings)
                .await
                .context("opening the store")?;
            let registry = registry_of(&settings, &*store);
            tacit_backend::commands::retrain(&*store, &registry, args)
                .await
                .map(|_| ())
                .context("retrain")
        }
        Command::Models(command) => {
            warn_model_url(&settings);
            let store = server::open_store(&settings)
                .await
                .context("opening the store")?;
            let registry = registry_of(&settings, &*store);
            tacit_backend::commands::models(&registry, command)
                .await
                .context("models")
        }
        Command::Serve { role } => server::serve_role(settings, role).await.context("serve"),
        Command::Keygen => {
            let dir = settings.keys_dir();
            let pair = KeyRing::generate(&dir)
                .with_context(|| format!("writing an HPKE key pair into {}", dir.display()))?;
            println!("key_id={}", pair.key_id());
            println!(
                "public_key={}",
                tacit_shared::api::b64_encode(pair.public_key().as_bytes())
            );
            println!("dir={}", dir.display());
            // Encryption at rest is on by default: its key goes beside the HPKE keys
            // unless one exists (a second keygen adds an HPKE key, never replaces the
            // key the stored data is encrypted with).
            if let Some(file) = settings.at_rest_key_file() {
                if !file.exists() {
                    tacit_backend::store::at_rest::AtRestKeys::generate(&file)
                        .with_context(|| format!("writing the at-rest key {}", file.display()))?;
                    eprintln!(
                        "tacit-backend: created a NEW at-rest key {} (keep it: the data it \
                         encrypts cannot be read without it)",
                        file.display()
                    );
                }
                println!("at_rest_key={}", file.display());
            }
            // The factor bearer token, on by default like encryption at rest: the
            // gateway and factor services of one deployment share it.
            if let Some(file) = settings.factor_token_file() {
                if !file.exists() {
                    tacit_backend::factor::auth::FactorToken::generate(&file)
                        .with_context(|| format!("writing the factor token {}", file.display()))?;
                }
                println!("factor_token={}", file.display());
            }
            // The key that signs verdicts: one is enough (`keys verdict-keygen` rotates).
            let now_s = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .context("the system clock is before 1970")?
                .as_secs();
            let (keys, _) = tacit_backend::verdict::VerdictKeys::load_or_create(&dir, now_s)
                .with_context(|| format!("verdict signing keys in {}", dir.display()))?;
            for kid in keys.kids() {
                println!("verdict_kid={kid}");
            }
            Ok(())
        }
        Command::Keys(command) => keys_command(&settings, command),
        Command::Train(_) | Command::Eval(_) | Command::ModelExport(_) => Ok(()),
        Command::Config => {
            print!("{}", settings.shown().context("showing the settings")?);
            Ok(())
        }
        Command::Migrate => {
            server::migrate_store(&settings).await.context("migrate")?;
            // Redacted: the URL may carry the database password.
            println!("migrated {}", settings.database_url());
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Settings, then logging, outside the runtime (the OTLP exporter's HTTP client is
    // blocking); `run` reports a settings error for the commands that need settings.
    let settings = Settings::load(cli.config.as_deref());
    let otlp = settings
        .as_ref()
        .ok()
        .and_then(|s| s.telemetry.otlp_endpoint.clone());
    let service = match &cli.command {
        Command::Serve { role } => format!("tacit-{role}").replace(':', "-"),
        _ => "tacit-backend".to_owned(),
    };
    let telemetry = match tacit_backend::telemetry::init(otlp.as_deref(), &service) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("tacit-backend: {}", tacit_backend::error::Chain(&e));
            return ExitCode::FAILURE;
        }
    };
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .and_then(|rt| rt.block_on(run(cli, settings)));
    // Flushes the spans still buffered, after the runtime is gone.
    drop(telemetry);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The whole cause chain: "storage unavailable" alone hides whether the
            // port was closed, TLS failed or the password was wrong.
            eprintln!("tacit-backend: {}", tacit_backend::error::Chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
