//! The gateway's side of the factors: which factors it uses and how it reaches them
//! (in-process or over HTTP, through one [`FactorClient`] interface), enrolment of a
//! user's templates from their stored features, and the evidence and fusion behind
//! `POST /v1/authenticate`.
//!
//! # Layout
//! * `client.rs` — the [`FactorClient`] trait and its errors;
//! * `local.rs` / `remote.rs` — in-process and HTTP clients; `breaker.rs` — the
//!   remote client's circuit breaker;
//! * `evidence.rs` — a user's feature windows, read from the store;
//! * `stored.rs` — the stored template (the factor's template + enrolment facts);
//! * `enrol.rs` / `decide.rs` — enrolment and authentication.

mod breaker;
mod client;
mod decide;
mod enrol;
mod evidence;
mod local;
mod metered;
mod remote;
mod stored;

use std::sync::Arc;

use tacit_shared::payload::FactorKind;

pub use breaker::{Breaker, Call};
pub use client::{Embedded, Enrolled, FactorClient, FactorError, Scored};
pub use decide::{Assessment, Evidence, assess};
pub use enrol::{EnrolOutcome, EnrolStatus, RebuildReport, enrol_user, rebuild_stale};
pub use evidence::{GroupKey, Window, read_windows, windows_of};
pub use local::LocalFactor;
pub use metered::Metered;
pub use remote::RemoteFactor;
pub use stored::{STORED_TEMPLATE_FORMAT, StoredTemplate};

use crate::settings::AuthSettings;

/// A factor the gateway uses.
#[derive(Debug, Clone)]
pub struct ConfiguredFactor {
    /// Its name (in answers, templates and the OIP model name).
    pub name: String,
    /// The feature records it scores.
    pub records: FactorKind,
    /// Weight of its evidence, 0..=1.
    pub weight: f64,
    /// How to reach it.
    pub client: Arc<dyn FactorClient>,
}

/// The factors of a gateway, in configuration order.
#[derive(Debug, Clone, Default)]
pub struct Factors {
    list: Vec<ConfiguredFactor>,
}

/// Why the configured factors cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FactorConfigError {
    /// A remote factor whose name is no factor kind, without `records`.
    #[error("factor {0}: not a built-in factor, say which records it scores (name:records=url)")]
    RecordsUnknown(String),
    /// A weight outside 0..=1.
    #[error("factor {name}: weight {weight} outside 0..=1")]
    Weight {
        /// The factor.
        name: String,
        /// Its weight.
        weight: f64,
    },
    /// Two factors of one name.
    #[error("factor {0} configured twice")]
    Duplicate(String),
    /// The HTTP client of a remote factor could not be built (TLS roots, ...).
    #[error("factor {name}: HTTP client: {source}")]
    HttpClient {
        /// The factor.
        name: String,
        /// Cause.
        #[source]
        source: reqwest::Error,
    },
}

impl Factors {
    /// The remote factors of the settings.
    pub fn remote(
        s: &AuthSettings,
        token: Option<&Arc<crate::factor::auth::FactorToken>>,
    ) -> Result<Factors, FactorConfigError> {
        let mut f = Factors::default();
        for r in &s.factors {
            let records = match r.records {
                Some(kind) => kind,
                None => r
                    .name
                    .parse::<FactorKind>()
                    .map_err(|_| FactorConfigError::RecordsUnknown(r.name.clone()))?,
            };
            if !(0.0..=1.0).contains(&r.weight) {
                return Err(FactorConfigError::Weight {
                    name: r.name.clone(),
                    weight: r.weight,
                });
            }
            f.push(ConfiguredFactor {
                name: r.name.clone(),
                records,
                weight: r.weight,
                client: Arc::new(RemoteFactor::new(&r.name, &r.url, s, token.cloned())?),
            })?;
        }
        Ok(f)
    }

    /// Adds a factor; names are unique.
    pub fn push(&mut self, f: ConfiguredFactor) -> Result<(), FactorConfigError> {
        if self.get(&f.name).is_some() {
            return Err(FactorConfigError::Duplicate(f.name));
        }
        self.list.push(f);
        Ok(())
    }

    /// The same factors, every call counted and timed in `metrics`.
    pub fn metered(self, metrics: &std::sync::Arc<crate::metrics::Metrics>) -> Factors {
        Factors {
            list: self
                .list
                .into_iter()
                .map(|f| ConfiguredFactor {
                    client: Arc::new(Metered::new(f.client, f.name.clone(), metrics.clone())),
                    ..f
                })
                .collect(),
        }
    }

    /// A factor by name.
    pub fn get(&self, name: &str) -> Option<&ConfiguredFactor> {
        self.list.iter().find(|f| f.name == name)
    }

    /// All factors.
    pub fn iter(&self) -> impl Iterator<Item = &ConfiguredFactor> {
        self.list.iter()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::parse_factor_urls;

    fn remote(urls: &str) -> anyhow::Result<Factors> {
        let s = AuthSettings {
            factors: parse_factor_urls(urls)?,
            ..AuthSettings::default()
        };
        Ok(Factors::remote(&s, None)?)
    }

    #[test]
    fn remote_factors_take_their_records_from_the_name_or_the_url_list() {
        let f = remote("gait=http://g:8080,py:keystroke_fixed=http://p:9000/").expect("factors");
        let kinds: Vec<_> = f.iter().map(|f| (f.name.as_str(), f.records)).collect();
        assert_eq!(
            kinds,
            [
                ("gait", FactorKind::Gait),
                ("py", FactorKind::KeystrokeFixed)
            ]
        );
    }

    #[test]
    fn bad_remote_factor_lists_are_refused_with_the_reason() {
        for (urls, needle) in [
            (
                "py:keystrokes=http://p:9000",
                "unknown factor \"keystrokes\"",
            ),
            ("py=http://p:9000", "not a built-in factor"),
            ("gait=http://a,gait=http://b", "configured twice"),
            ("gait=ftp://a", "expected name[:records]=http(s)://"),
            ("gait", "expected name[:records]=http(s)://"),
        ] {
            let e = remote(urls).expect_err(urls).to_string();
            assert!(e.contains(needle), "{urls}: {e}");
        }
        let mut s = AuthSettings {
            factors: parse_factor_urls("gait=http://g").expect("urls"),
            ..AuthSettings::default()
        };
        s.factors[0].weight = 1.5;
        let e = Factors::remote(&s, None).expect_err("weight").to_string();
        assert!(e.contains("weight 1.5 outside 0..=1"), "{e}");
    }
}
