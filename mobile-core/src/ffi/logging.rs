//! Forwarding of the core's `tracing` records to the platform log through a foreign
//! `Logger`. Messages carry counts and states only — never features, samples or keys.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// Severity of a log record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, uniffi::Enum)]
pub enum LogLevel {
    /// Errors.
    Error,
    /// Warnings.
    Warn,
    /// Informational messages.
    Info,
    /// Debugging detail.
    Debug,
    /// Very verbose detail.
    Trace,
}

/// Receives the core's log records (implement it with `os_log` / `android.util.Log`).
#[uniffi::export(with_foreign)]
pub trait Logger: Send + Sync {
    /// One record: level, module target and formatted message with its fields.
    fn log(&self, level: LogLevel, target: String, message: String);
}

static LOGGER: RwLock<Option<Arc<dyn Logger>>> = RwLock::new(None);
static MAX_LEVEL: AtomicU8 = AtomicU8::new(0);
static INSTALLED: OnceLock<bool> = OnceLock::new();

fn level_of(l: &Level) -> LogLevel {
    match *l {
        Level::ERROR => LogLevel::Error,
        Level::WARN => LogLevel::Warn,
        Level::INFO => LogLevel::Info,
        Level::DEBUG => LogLevel::Debug,
        _ => LogLevel::Trace,
    }
}

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

struct ForwardLayer;

impl<S: Subscriber> Layer<S> for ForwardLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = level_of(event.metadata().level());
        if level as u8 > MAX_LEVEL.load(Ordering::Relaxed) {
            return;
        }
        let Ok(guard) = LOGGER.read() else { return };
        if let Some(logger) = guard.as_ref() {
            let mut f = Fields(String::new());
            event.record(&mut f);
            logger.log(level, event.metadata().target().to_string(), f.0);
        }
    }
}

/// Sends the core's log records at `level` or more severe to `logger`. Call once at
/// start-up; a later call replaces the logger and level.
#[uniffi::export]
pub fn set_logger(logger: Arc<dyn Logger>, level: LogLevel) {
    if let Ok(mut g) = LOGGER.write() {
        *g = Some(logger);
    }
    MAX_LEVEL.store(level as u8, Ordering::Relaxed);
    INSTALLED.get_or_init(|| {
        let subscriber = tracing_subscriber::registry().with(ForwardLayer);
        // Fails only if the host app installed its own global subscriber; then records
        // go there instead, which is what that app asked for.
        tracing::subscriber::set_global_default(subscriber).is_ok()
    });
}
