//! Training sets from the store: the feature windows phones uploaded, of the users who
//! consented to training (`training_consent`), as a [`Population`] the model pipeline
//! trains on exactly as it trains on a research data set.
//!
//! Windows are read back through the store (decrypted at rest like any read) and never
//! leave this process: the population lives in memory for one training run. A user
//! deleted or withdrawn before the run is not in it; a model trained earlier keeps what
//! it learnt (SECURITY.md).

use std::collections::HashMap;

use tacit_models::data::{Person, Population, Sample};

use crate::scoring::{GroupKey, Window, read_windows, windows_of};
use crate::store::pack::PACK_SUFFIX;
use crate::store::{FeatureObjects, Store, StoreError};
use tacit_shared::payload::{FactorKind, Payload};

/// How a training set is read from the store.
#[derive(Debug, Clone)]
pub struct StoreTrainingOptions {
    /// The factor whose windows are read.
    pub factor: FactorKind,
    /// Newest envelopes read per user: bounds the memory and time one user can take.
    pub max_envelopes_per_user: u32,
    /// Windows further apart than this start a new session (device clock). Sessions
    /// matter to the pipeline: a person enrols on their first sessions and is judged
    /// on the later ones, as a user is.
    pub session_gap_ms: u64,
    /// Only envelopes created at or after this time (device clock, Unix ms).
    pub since_ms: u64,
    /// Most people read: with more consenting users, a sample of this many (drawn by
    /// `seed`) trains. With the per-person bound, this bounds the memory of a training
    /// run however many users consent (at the defaults about 5,000 × 300 windows).
    pub max_people: usize,
    /// Most windows kept per person, evenly spaced over their windows in time (a
    /// person's sessions all stay represented).
    pub max_windows_per_person: usize,
    /// Seed of the people sample.
    pub seed: u64,
}

impl StoreTrainingOptions {
    /// Defaults for a factor: 5,000 envelopes per user, sessions split at 30 minutes.
    pub fn for_factor(factor: FactorKind) -> Self {
        StoreTrainingOptions {
            factor,
            max_envelopes_per_user: 5_000,
            session_gap_ms: 30 * 60 * 1000,
            since_ms: 0,
            max_people: 5_000,
            max_windows_per_person: 300,
            seed: 1,
        }
    }
}

/// A training set read from the store, with what it is made of.
#[derive(Debug, Clone)]
pub struct StorePopulation {
    /// The people, one per consenting user with windows of the chosen group.
    pub population: Population,
    /// The window layout trained on: the schema version and width that most consenting
    /// users have windows of (a model reads one layout; `context` is `None`: fixed-text
    /// phrases are salted per device, and each person contributes their main phrase).
    pub group: GroupKey,
    /// Users who had consented when the set was read.
    pub consenting_users: usize,
    /// Windows in the set.
    pub windows: usize,
    /// The oldest and newest window start in the set (device clock, Unix ms).
    pub data_window_ms: Option<(u64, u64)>,
    /// When each consenting user's account was created (server clock, Unix ms), by
    /// user id (a person's `id`).
    pub account_created_ms: HashMap<String, u64>,
}

/// Why a training set could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TrainingSetError {
    /// The store failed.
    #[error("reading the training set: {0}")]
    Store(#[from] StoreError),
    /// A feature object named for training could not be read.
    #[error("{key}: {reason}")]
    File {
        /// The object's key.
        key: String,
        /// Why.
        reason: String,
    },
    /// No consenting user has windows of the factor.
    #[error(
        "no consenting user has {factor} windows ({consenting} consenting users): record \
         consent with PUT /v1/users/{{id}}/training-consent"
    )]
    Empty {
        /// The factor asked for.
        factor: FactorKind,
        /// Users who had consented.
        consenting: usize,
    },
}

/// Reads the training set of `opts.factor` from the store: every consenting user's
/// windows of the most common group, split into sessions.
pub async fn population_from_store(
    store: &dyn Store,
    opts: &StoreTrainingOptions,
    progress: &mut (dyn FnMut(usize, usize) + Send),
) -> Result<StorePopulation, TrainingSetError> {
    let mut users = store.training_users().await?;
    let consenting = users.len();
    if users.len() > opts.max_people {
        tacit_models::SplitMix64::new(opts.seed ^ 0x07ea_15e7).shuffle(&mut users);
        users.truncate(opts.max_people);
        users.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    }
    let mut per_user: Vec<(String, Vec<Window>)> = Vec::with_capacity(users.len());
    let created: HashMap<String, u64> = users
        .iter()
        .map(|u| (u.user_id.clone(), u.created_at_ms))
        .collect();
    for (i, user) in users.iter().map(|u| &u.user_id).enumerate() {
        let mut windows: Vec<Window> =
            read_windows(store, user, opts.since_ms, opts.max_envelopes_per_user)
                .await?
                .into_iter()
                .filter(|w| w.kind == opts.factor)
                .collect();
        thin(&mut windows, opts.max_windows_per_person);
        if !windows.is_empty() {
            per_user.push((user.clone(), windows));
        }
        progress(i + 1, users.len());
    }
    let mut set = population_of(opts.factor, per_user, opts.session_gap_ms, consenting)?;
    if consenting > users.len() {
        set.population.source.push_str(&format!(
            " (a sample of {} of {consenting} consenting users)",
            users.len()
        ));
    }
    set.account_created_ms = created;
    Ok(set)
}

/// Reads a training set from feature objects named by key (the factor job API's
/// `/train`): each object is one upload, `features/USER/DEVICE/SEQ-ENVELOPE.bin`, and a
/// person is a USER. The caller chose the files, and with them whose data trains (the
/// gateway's consent flag is applied by `tacit-backend retrain`, which reads the
/// store; a caller of the job API holds the factor token and answers for its list).
/// Objects are read (decrypted at rest) `READ_CONCURRENCY` at a time.
pub async fn population_from_files(
    objects: &FeatureObjects,
    keys: &[String],
    opts: &StoreTrainingOptions,
) -> Result<StorePopulation, TrainingSetError> {
    let factor = opts.factor;
    use futures::StreamExt;
    // Decoded as they arrive: at most READ_CONCURRENCY objects are held at once, so the
    // memory is that of the windows, not of every file named.
    let mut reads = futures::stream::iter(keys.to_vec())
        .map(|k| async move {
            let r = objects.read_entries(&k).await;
            (k, r)
        })
        .buffered(READ_CONCURRENCY);
    let mut by_user: HashMap<String, Vec<Window>> = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    while let Some((key, entries)) = reads.next().await {
        let entries = entries.map_err(|e: StoreError| TrainingSetError::File {
            key: key.clone(),
            reason: e.to_string(),
        })?;
        let user = key.split('/').nth(1).unwrap_or_default().to_string();
        for entry in entries {
            // Each envelope once (packs hold only stored envelopes; a safeguard).
            if key.ends_with(PACK_SUFFIX) && !seen.insert((user.clone(), entry.envelope_id)) {
                continue;
            }
            let payload = Payload::decode(&entry.payload).map_err(|e| TrainingSetError::File {
                key: key.clone(),
                reason: format!("not a feature payload: {e}"),
            })?;
            by_user.entry(user.clone()).or_default().extend(
                windows_of(payload, entry.envelope_id, u64::MAX).filter(|w| w.kind == factor),
            );
        }
    }
    for ws in by_user.values_mut() {
        thin(ws, opts.max_windows_per_person);
    }
    let users = by_user.len();
    let mut per_user: Vec<(String, Vec<Window>)> = by_user
        .into_iter()
        .filter(|(_, ws)| !ws.is_empty())
        .collect();
    // Hash order must not decide anything (the split draws on people by index).
    per_user.sort_by(|a, b| a.0.cmp(&b.0));
    let mut set = population_of(factor, per_user, opts.session_gap_ms, users)?;
    set.population.source = format!(
        "{} feature files: {} {factor} windows of {} users",
        keys.len(),
        set.windows,
        set.population.people.len()
    );
    Ok(set)
}

/// Keeps at most `max` of the windows, evenly spaced over them in time.
fn thin(windows: &mut Vec<Window>, max: usize) {
    if windows.len() <= max {
        return;
    }
    windows.sort_by(|a, b| (a.start_ms, &a.envelope_id).cmp(&(b.start_ms, &b.envelope_id)));
    let n = windows.len();
    let keep: Vec<usize> = (0..max).map(|i| i * n / max).collect();
    let mut k = 0;
    let mut i = 0;
    windows.retain(|_| {
        let kept = k < keep.len() && keep[k] == i;
        if kept {
            k += 1;
        }
        i += 1;
        kept
    });
}

/// Objects read at once.
const READ_CONCURRENCY: usize = 8;

/// The population of per-user windows: the group most users have, each person's
/// windows of it in sessions.
fn population_of(
    factor: FactorKind,
    mut per_user: Vec<(String, Vec<Window>)>,
    session_gap_ms: u64,
    users: usize,
) -> Result<StorePopulation, TrainingSetError> {
    for (_, ws) in &mut per_user {
        main_phrase_only(ws);
    }
    let Some(group) = common_group(&per_user) else {
        return Err(TrainingSetError::Empty {
            factor,
            consenting: users,
        });
    };
    let mut people = Vec::new();
    let mut skipped = Vec::new();
    let mut windows = 0;
    let mut span: Option<(u64, u64)> = None;
    for (user, mut ws) in per_user {
        ws.retain(|w| w.group == group);
        if ws.is_empty() {
            skipped.push(format!("user {user}: no windows of the trained group"));
            continue;
        }
        ws.sort_by_key(|w| (w.start_ms, w.envelope_id.clone()));
        ws.dedup_by(|a, b| a.start_ms == b.start_ms && a.values == b.values);
        windows += ws.len();
        let (first, last) = (ws[0].start_ms, ws[ws.len() - 1].start_ms);
        span = Some(span.map_or((first, last), |(a, b)| (a.min(first), b.max(last))));
        people.push(Person {
            id: user,
            samples: sessions(ws, session_gap_ms),
        });
    }
    let population = Population {
        factor,
        schema_version: group.schema_version,
        dim: group.dim,
        source: format!(
            "store: {} {} windows of {} consenting users",
            windows,
            factor,
            people.len()
        ),
        people,
        skipped,
    };
    Ok(StorePopulation {
        population,
        group,
        consenting_users: users,
        windows,
        data_window_ms: span,
        account_created_ms: HashMap::new(),
    })
}

/// Fixed-text contexts are salted per device: two users' phrases cannot be told apart,
/// only their layout. A population model reads any phrase of its layout, so people are
/// grouped by schema version and width: of each layout, a person keeps the windows of
/// the phrase they typed most (two phrases of one person are not one behaviour), and
/// the context is dropped.
fn main_phrase_only(ws: &mut Vec<Window>) {
    let mut by_context: HashMap<(u16, usize, Option<String>), usize> = HashMap::new();
    for w in ws.iter() {
        *by_context
            .entry((w.group.schema_version, w.group.dim, w.group.context.clone()))
            .or_default() += 1;
    }
    let main: HashMap<(u16, usize), Option<String>> = {
        let mut best: HashMap<(u16, usize), (usize, Option<String>)> = HashMap::new();
        for ((v, d, c), n) in by_context {
            let e = best.entry((v, d)).or_insert((0, None));
            // Most windows; ties to the smaller context, whatever the hash order.
            if n > e.0 || (n == e.0 && c < e.1) {
                *e = (n, c);
            }
        }
        best.into_iter().map(|(k, (_, c))| (k, c)).collect()
    };
    ws.retain(|w| main.get(&(w.group.schema_version, w.group.dim)) == Some(&w.group.context));
    for w in ws.iter_mut() {
        w.group.context = None;
    }
}

/// The group that most users have windows of (ties: more windows, then the smaller
/// schema version, so that the choice does not depend on hash order).
fn common_group(per_user: &[(String, Vec<Window>)]) -> Option<GroupKey> {
    let mut counts: HashMap<&GroupKey, (usize, usize)> = HashMap::new();
    for (_, ws) in per_user {
        let mut seen: Vec<&GroupKey> = Vec::new();
        for w in ws {
            let c = counts.entry(&w.group).or_default();
            c.1 += 1;
            if !seen.contains(&&w.group) {
                seen.push(&w.group);
                c.0 += 1;
            }
        }
    }
    counts
        .into_iter()
        .max_by(|(ga, a), (gb, b)| {
            a.cmp(b)
                .then(gb.schema_version.cmp(&ga.schema_version))
                .then(gb.context.cmp(&ga.context))
        })
        .map(|(g, _)| g.clone())
}

/// Windows (sorted by start) as samples, a new session wherever two windows are more
/// than `gap_ms` apart.
fn sessions(windows: Vec<Window>, gap_ms: u64) -> Vec<Sample> {
    let mut session = 0u32;
    let mut last_end: Option<u64> = None;
    windows
        .into_iter()
        .map(|w| {
            if last_end.is_some_and(|end| w.start_ms.saturating_sub(end) > gap_ms) {
                session += 1;
            }
            last_end = Some(last_end.map_or(w.end_ms, |e| e.max(w.end_ms)));
            Sample {
                group: session,
                vector: w.values,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(group: &GroupKey, start_ms: u64) -> Window {
        Window {
            kind: FactorKind::Gait,
            group: group.clone(),
            start_ms,
            end_ms: start_ms + 1000,
            values: vec![start_ms as f32; group.dim],
            envelope_id: "00".into(),
            received_at_ms: start_ms + 2000,
        }
    }

    fn key(schema_version: u16, dim: usize) -> GroupKey {
        GroupKey {
            schema_version,
            context: None,
            dim,
        }
    }

    #[test]
    fn thinning_keeps_windows_evenly_spread_in_time() {
        let g = key(1, 2);
        let mut ws: Vec<Window> = (0..1000).rev().map(|t| window(&g, t * 10)).collect();
        thin(&mut ws, 10);
        let starts: Vec<u64> = ws.iter().map(|w| w.start_ms).collect();
        assert_eq!(starts, (0..10).map(|i| i * 1000).collect::<Vec<u64>>());
        let mut few = vec![window(&g, 5), window(&g, 1)];
        thin(&mut few, 10);
        assert_eq!(few.len(), 2, "under the bound: untouched");
    }

    #[test]
    fn sessions_split_at_gaps() {
        let g = key(1, 2);
        let ws = vec![
            window(&g, 0),
            window(&g, 1_500),
            window(&g, 1_000_000),
            window(&g, 1_001_000),
            window(&g, 9_000_000),
        ];
        let s = sessions(ws, 60_000);
        let groups: Vec<u32> = s.iter().map(|s| s.group).collect();
        assert_eq!(groups, [0, 0, 1, 1, 2]);
    }

    #[test]
    fn phrases_of_one_layout_are_one_group_and_each_person_keeps_their_main_one() {
        let phrase = |c: &str| GroupKey {
            schema_version: 1,
            context: Some(c.into()),
            dim: 31,
        };
        let mut ws: Vec<Window> = [("aa", 0), ("bb", 1), ("bb", 2), ("aa", 3), ("bb", 4)]
            .iter()
            .map(|(c, t)| Window {
                kind: FactorKind::KeystrokeFixed,
                ..window(&phrase(c), *t)
            })
            .collect();
        ws.push(window(&key(1, 50), 9));
        main_phrase_only(&mut ws);
        let starts: Vec<u64> = ws.iter().map(|w| w.start_ms).collect();
        assert_eq!(
            starts,
            [1, 2, 4, 9],
            "phrase bb (3 entries) and the gait window"
        );
        assert!(ws.iter().all(|w| w.group.context.is_none()));
    }

    #[test]
    fn the_group_most_users_have_wins() {
        let (a, b) = (key(1, 4), key(2, 6));
        let per_user = vec![
            ("u1".to_string(), (0..50).map(|i| window(&b, i)).collect()),
            ("u2".to_string(), vec![window(&a, 0), window(&b, 1)]),
            ("u3".to_string(), vec![window(&a, 0)]),
            ("u4".to_string(), vec![window(&a, 5)]),
        ];
        // b has more windows, a more users: a model of b would serve fewer people.
        assert_eq!(common_group(&per_user), Some(a));
        assert_eq!(common_group(&[]), None);
    }
}
