//! The days of a simulated world.

use std::collections::BTreeMap;
use std::time::Instant;

use futures::StreamExt;
use tacit_shared::api::{AuthDecision, AuthenticateResponse, FactorStatus};

use super::attacks;
use super::backend::SimBackend;
use super::cohort::{self, Cohort, FactorNames, Holder, Outcome};
use super::network::FaultyNetwork;
use super::phone::{SimPhone, enrol_templates};
use super::report::{CohortCost, Envelopes, FactorRates, Report, quantile, resources};
use super::{AttackStats, WorldConfig};
use crate::rng::Draw;
use crate::{PopulationModel, SplitMix64};
use tacit_models::eval::metrics::{Judged, operating_points};

/// Progress callback: `(stage, done, total)`.
pub type Progress<'a> = &'a (dyn Fn(&str, u64, u64) + Sync);

impl Outcome {
    fn of(
        holder: Holder,
        answer: AuthenticateResponse,
        latency_ms: f64,
        names: &FactorNames,
    ) -> Outcome {
        Outcome {
            holder,
            decision: answer.decision,
            llr: answer.llr,
            judged: (answer.estimated_far, answer.far_floor),
            factors: answer
                .factors
                .into_iter()
                .filter_map(|f| match (f.status, f.llr) {
                    (FactorStatus::Scored, Some(l)) => Some((names.id(&f.factor), l)),
                    _ => None,
                })
                .collect(),
            latency_ms,
        }
    }
}

/// Runs a world and reports what it measured: its people in one go, or cohort after
/// cohort ([`WorldConfig::cohort`]; `cohort.rs`), pooled into one report.
pub async fn run(cfg: &WorldConfig, progress: Progress<'_>) -> anyhow::Result<Report> {
    cfg.check()?;
    // Both folders checked before either is emptied: a refused --phones-dir must not
    // cost the previous world in --dir.
    let mut folders = vec![(&cfg.dir, "--dir")];
    folders.extend(cfg.phones_dir.iter().map(|p| (p, "--phones-dir")));
    for (dir, flag) in &folders {
        super::workdir::check_as(dir, flag)?;
    }
    let plan = cohort::plan(cfg.people, cfg.cohort);
    // Every saved cohort is read before anything runs or is emptied: one of another
    // world must stop the run now, not after hours of the cohorts before it.
    let mut saved = if cfg.resume {
        Cohort::load_all(cfg, plan.len())?
    } else {
        // Hours of saved cohorts are not emptied by a run that forgot --resume.
        let kept = cohort::saved_count(&cfg.dir);
        if kept > 0 {
            return Err(anyhow::anyhow!(
                "--dir {}: holds {kept} saved cohorts of an earlier run; --resume continues \
                 it (with the same settings), or remove {} to start over",
                cfg.dir.display(),
                cfg.dir.join("cohorts").display()
            ));
        }
        Vec::new()
    };
    saved.resize_with(plan.len(), || None);
    for (dir, flag) in &folders {
        if cfg.resume && *flag == "--dir" {
            // The cohorts finished before stay; the rest of the folder is remade below.
            super::workdir::keep_as(dir, flag)?;
        } else {
            super::workdir::prepare_as(dir, flag)?;
        }
    }
    let world = PopulationModel::with_seed(cfg.seed);
    let faces = match &cfg.faces {
        Some(f) => Some(std::sync::Arc::new(crate::faces::FaceSet::load(&f.data)?)),
        None => None,
    };
    let names = std::sync::Arc::new(FactorNames::default());
    let build = if cfg.cohort.is_some() {
        cohort::build_id()
    } else {
        String::new()
    };
    let mut cohorts = Vec::with_capacity(plan.len());
    for ((index, people), saved) in plan.iter().enumerate().zip(saved) {
        if let Some(mut done) = saved {
            done.renumbered(&names);
            cohorts.push(done);
            continue;
        }
        let staged = |stage: &str, done: u64, total: u64| {
            if plan.len() == 1 {
                progress(stage, done, total);
            } else {
                progress(
                    &format!("cohort {}/{}: {stage}", index + 1, plan.len()),
                    done,
                    total,
                );
            }
        };
        let mut done = run_cohort(
            cfg,
            &world,
            faces.clone(),
            index,
            people.clone(),
            &names,
            &staged,
        )
        .await?;
        done.factor_names = names.all();
        done.build = build.clone();
        // The attempts outlive their cohort. Made on the phones' threads, each one's
        // factor scores sit among that thread's short-lived allocations, and a few
        // scattered survivors keep whole stretches of those threads' heaps from being
        // reused: the process grew by ~60 MB with every cohort of 25,000 people. Copied
        // here, together, they leave the cohort's heaps free for the next one.
        done.outcomes = done.outcomes.to_vec();
        if cfg.cohort.is_some() {
            done.save(&cfg.dir)?;
        }
        cohorts.push(done);
    }
    Ok(pooled(cfg, cohorts, &names))
}

/// Empties what a cohort leaves behind in the folders the next one uses: the backend's
/// folder and the phones'. (The phones delete their own folders when retired; what is
/// left is a stopped run's.)
fn fresh_cohort_folders(cfg: &WorldConfig) -> anyhow::Result<()> {
    let remove = |path: &std::path::Path| match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(anyhow::anyhow!("emptying {}: {e}", path.display()))
        }
        _ => Ok(()),
    };
    remove(&cfg.dir.join("backend"))?;
    match &cfg.phones_dir {
        Some(p) => super::workdir::prepare_as(p, "--phones-dir"),
        None => remove(&cfg.dir.join("phones")),
    }
}

/// The people `people` of the population living the world's days against a backend
/// of their own; what they did, for the report.
async fn run_cohort(
    cfg: &WorldConfig,
    world: &PopulationModel,
    faces: Option<std::sync::Arc<crate::faces::FaceSet>>,
    index: usize,
    people: std::ops::Range<usize>,
    names: &std::sync::Arc<FactorNames>,
    progress: Progress<'_>,
) -> anyhow::Result<Cohort> {
    let started = Instant::now();
    let (cpu_at_start, _) = resources();
    fresh_cohort_folders(cfg)?;
    let index64 = index as u64;
    progress("training the models on other synthetic people", 0, 1);
    let backend = SimBackend::start(
        &cfg.backend,
        &cfg.dir.join("backend"),
        world,
        cfg.training_people,
        cfg.training_steps,
        cfg.seed,
        cfg.faces.as_ref().map(|f| f.factor_url.as_str()),
    )
    .await?;
    if cfg.learn {
        let store = backend
            .store()
            .ok_or_else(|| anyhow::anyhow!("--learn needs the backend's storage"))?;
        super::learn::register_research(&*store).await?;
    }
    let setup_s = started.elapsed().as_secs_f64();
    let mut timeline = vec![("setup".to_string(), setup_s, 0u64)];
    // A stage's end: its time since the start and the envelopes stored by then.
    macro_rules! mark {
        ($stage:expr) => {
            timeline.push((
                $stage.to_string(),
                started.elapsed().as_secs_f64(),
                backend.stored_so_far().await,
            ))
        };
    }
    let url = backend.url();
    let network = FaultyNetwork::start(
        &url,
        cfg.faults,
        crate::rng::derive(cfg.seed, 0x7e7, index64),
    )
    .await?;
    let phone_url = network.url();
    let http = reqwest::Client::new();
    let token = backend.admin_token.clone();
    let phones_dir = cfg
        .phones_dir
        .clone()
        .unwrap_or_else(|| cfg.dir.join("phones"));

    // Phones: one user, one registered device each.
    let total = people.len() as u64;
    let mut phones = Vec::with_capacity(people.len());
    let mut registering = futures::stream::iter(people.clone())
        .map(|i| {
            SimPhone::enrol_device(
                &http,
                &url,
                &phone_url,
                &token,
                &backend.key,
                &phones_dir,
                i,
                cfg.seed,
            )
        })
        // As many as the days run at once: each registration waits on the network
        // (its delays and retries), not on the CPU.
        .buffer_unordered(cfg.parallel);
    while let Some(p) = registering.next().await {
        let mut p = p?;
        // Closed until the phone is used: an open core holds its outbox, its HTTP
        // clients and its signal buffers (~0.5 MiB), which a world of many phones
        // must not keep for all of them at once.
        p.close();
        phones.push(p);
        progress("registering phones", phones.len() as u64, total);
    }
    drop(registering);
    phones.sort_by_key(|p| p.index);
    mark!("registration");

    // Day 0: enrolment activity, uploads, templates.
    let handle = tokio::runtime::Handle::current();
    let mut done = 0;
    let mut phones = {
        let mut out = Vec::with_capacity(phones.len());
        let mut days = futures::stream::iter(phones)
            .map(|mut phone| {
                let owner = world.person(phone.index as u64);
                let h = handle.clone();
                let sessions = cfg.day0_sessions.max(1);
                // One long session, or several shorter ones an hour apart.
                let (seconds, entries) = if sessions == 1 {
                    (150.0, 30)
                } else {
                    (90.0, 20)
                };
                let faces = faces.clone();
                tokio::task::spawn_blocking(move || -> anyhow::Result<SimPhone> {
                    // The enrolment images, taken with the first session's activity.
                    if let Some(face) = faces.as_deref().and_then(|f| f.of(phone.index)) {
                        for frame in face.enrolment() {
                            phone.face(frame)?;
                        }
                    }
                    for s in 0..sessions {
                        if s > 0 {
                            phone.pause(3600);
                        }
                        phone.activity(&owner, 0, seconds, entries)?;
                    }
                    h.block_on(phone.upload())?;
                    phone.close();
                    Ok(phone)
                })
            })
            .buffer_unordered(cfg.parallel);
        while let Some(p) = days.next().await {
            out.push(p??);
            done += 1;
            progress("day 0: enrolment data", done, total);
        }
        out
    };
    phones.sort_by_key(|p| p.index);
    mark!("day 0: enrolment data");
    let mut learning = Vec::new();
    if cfg.learn {
        progress("day 0: models trained from the uploads", 0, 1);
        let store = backend
            .store()
            .ok_or_else(|| anyhow::anyhow!("--learn needs the backend's storage"))?;
        let (records, promoted) = super::learn::retrain_factors(
            &*store,
            "day 0 uploads",
            cfg,
            &[
                tacit_backend::commands::FactorChoice::Gait,
                tacit_backend::commands::FactorChoice::KeystrokeFixed,
            ],
        )
        .await?;
        learning.extend(records);
        backend.models_loaded(&promoted).await;
        mark!("day 0: models trained from the uploads");
    }
    let mut enrolled_fully = 0;
    let mut enrolling = futures::stream::iter(&phones)
        .map(|p| enrol_templates(&http, &url, &token, &p.user_id))
        .buffer_unordered(cfg.parallel);
    let mut done = 0;
    while let Some(r) = enrolling.next().await {
        let statuses = r?;
        enrolled_fully +=
            usize::from(!statuses.is_empty() && statuses.iter().all(|(_, s)| s == "enrolled"));
        done += 1;
        progress("day 0: templates", done, total);
    }
    drop(enrolling);
    mark!("day 0: templates");

    // Days 1..=days.
    let mut outcomes: Vec<Outcome> = Vec::new();
    for day in 1..=cfg.days {
        let mut out = Vec::with_capacity(phones.len());
        let mut running = futures::stream::iter(phones)
            .map(|phone| {
                let h = handle.clone();
                let (world, cfg, http, url, token, faces, people, names) = (
                    world.clone(),
                    cfg.clone(),
                    http.clone(),
                    url.clone(),
                    token.clone(),
                    faces.clone(),
                    people.clone(),
                    names.clone(),
                );
                tokio::task::spawn_blocking(move || {
                    let day_of = Day {
                        world: &world,
                        cfg: &cfg,
                        faces: faces.as_deref(),
                        people,
                        names: &names,
                    };
                    live_day(phone, day, &day_of, &h, &http, &url, &token)
                })
            })
            .buffer_unordered(cfg.parallel);
        let mut done = 0;
        while let Some(r) = running.next().await {
            let (phone, o) = r??;
            outcomes.extend(o);
            out.push(phone);
            done += 1;
            progress(&format!("day {day}"), done, total);
            // Midway through the day the backend is redeployed while the other
            // phones keep uploading and authenticating.
            if cfg.restarts && backend.can_restart() && done == total / 2 {
                backend.restart().await?;
            }
        }
        drop(running);
        phones = out;
        phones.sort_by_key(|p| p.index);
        mark!(&format!("day {day}"));
    }

    if cfg.learn && cfg.poison_accounts > 0 {
        progress("retraining on poisoned uploads", 0, 1);
        let store = backend
            .store()
            .ok_or_else(|| anyhow::anyhow!("--learn needs the backend's storage"))?;
        super::learn::poison(
            &*store,
            cfg.poison_accounts,
            cfg.seed,
            tacit_backend::state::now_ms(),
        )
        .await?;
        let stage = format!(
            "after day {}, with {} crafted accounts",
            cfg.days, cfg.poison_accounts
        );
        let (records, promoted) = super::learn::retrain_factors(
            &*store,
            &stage,
            cfg,
            &[tacit_backend::commands::FactorChoice::Gait],
        )
        .await?;
        learning.extend(records);
        backend.models_loaded(&promoted).await;
        mark!("retraining on poisoned uploads");
    }

    // Attacks on a sample of phones: traffic attacks first, cloned phones last (a
    // caught clone revokes its victim's device).
    let mut attacks = AttackStats::default();
    let mut clones = Vec::new();
    let mut rng = SplitMix64::new(crate::rng::derive(cfg.seed, 0xa77a, index64));
    let victims = people.len().min(10);
    let n_phones = phones.len();
    let victim_of = |v: usize| v * n_phones / victims;
    let day = cfg.days + 1;
    let mut captures = Vec::new();
    for v in 0..victims {
        progress("attacks", v as u64, 2 * victims as u64);
        let idx = victim_of(v);
        let owner = world.person(phones[idx].index as u64);
        let phone = &mut phones[idx];
        phone.activity(&owner, day, 30.0, 2)?;
        let captured = attacks::capture(phone)?;
        phone.upload().await?;
        if let Some(c) = captured {
            let a = attacks::replay_envelope(&http, &url, &c).await?;
            attacks.count("replayed envelope", a.success);
            let a = attacks::tamper_envelope(&http, &url, &c).await?;
            attacks.count("tampered envelope", a.success);
            captures.push((idx, c));
        }
        let a = attacks::replay_request(&http, &url, phone).await?;
        attacks.count("replayed request", a.success);
    }

    // The stolen key presenting a captured envelope, once the gateway no longer takes
    // it for a client's retry (a remote backend's window is not known: not run there).
    if let Some(window) = backend.fresh_retry() {
        tokio::time::sleep(window + std::time::Duration::from_millis(300)).await;
        for (idx, c) in &captures {
            let a = attacks::stolen_key_replay(&http, &url, &phones[*idx], c).await?;
            attacks.count("stolen key + captured envelope", a.success);
        }
    }

    // Cloned phones (device key and state copied), used by another person. Half are
    // used after the owner's phone has uploaded again: the reused sequence numbers give
    // the clone away at once. The other half race the owner: only the behaviour stands
    // against them until the owner's next upload, which then gives them away.
    for v in 0..victims {
        progress("attacks", (victims + v) as u64, 2 * victims as u64);
        let idx = victim_of(v);
        let owner = world.person(phones[idx].index as u64);
        let attacker = world.person(other_person(&mut rng, phones[idx].index, &people) as u64);
        let phone = &mut phones[idx];
        let mut clone = attacks::clone_phone(phone)?;
        if v % 2 == 0 {
            phone.activity(&owner, day, 30.0, 2)?;
            phone.upload().await?;
            let a = attacks::use_clone(&mut clone, &attacker, day).await?;
            attacks.count("cloned phone, after the owner's next upload", a.success);
        } else {
            let a = attacks::use_clone(&mut clone, &attacker, day).await?;
            attacks.count_measured("cloned phone, before the owner's next upload", a.success);
            phone.activity(&owner, day, 30.0, 2)?;
            phone.upload().await?;
            let a = attacks::use_clone(&mut clone, &attacker, day).await?;
            attacks.count("cloned phone, once the owner uploaded", a.success);
        }
        phone.close();
        // What the refused clone still holds is refused too (its app keeps trying).
        clone.upload().await?;
        clones.push(clone);
    }

    // What the cohort keeps on disk at its fullest: every phone still there, the
    // backend holding everything they sent.
    let (backend_disk_bytes, phones_disk_bytes) = (
        cohort::disk_bytes(&cfg.dir.join("backend")),
        cohort::disk_bytes(&phones_dir),
    );

    // Accounting, from the phones and from the server.
    let mut env = Envelopes::default();
    let counted = phones.len() + clones.len();
    // A cloned phone's user is its victim's: the users are the phones' owners.
    let users: Vec<String> = phones.iter().map(|p| p.user_id.clone()).collect();
    let mut accounting = futures::stream::iter(phones.into_iter().chain(clones))
        .map(|p| {
            tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let (sealed, base, in_attack) = (p.sealed, p.counters_base, p.in_attack);
                // The phone's last use: its counters, then its files go.
                let s = p.retire()?;
                Ok((sealed, base, in_attack, s))
            })
        })
        .buffer_unordered(cfg.parallel);
    let mut done = 0;
    while let Some(r) = accounting.next().await {
        let (sealed, [a, r, e], in_attack, s) = r??;
        env.created += sealed;
        env.acknowledged += s.acknowledged_total - a;
        if in_attack {
            env.rejected_in_attacks += s.rejected_total - r;
        } else {
            env.rejected += s.rejected_total - r;
        }
        env.evicted += s.evicted_total - e;
        env.queued += s.envelopes;
        done += 1;
        progress("accounting", done, counted as u64);
    }
    drop(accounting);
    env.stored = backend.stored_by(&users).await?;
    env.lost = env.created.saturating_sub(
        env.acknowledged + env.rejected + env.rejected_in_attacks + env.evicted + env.queued,
    );
    env.duplicated = env.stored.saturating_sub(env.acknowledged);

    mark!("attacks");
    let network_counts = network.counts();
    network.stop().await;
    let restarts = backend.restarts();
    backend.stop().await?;
    let (cpu_s, peak_rss_mib) = resources();
    Ok(Cohort {
        world: cohort::fingerprint(cfg),
        build: String::new(),
        loaded: false,
        index,
        people,
        factor_names: Vec::new(),
        outcomes,
        attacks,
        envelopes: env,
        enrolled_fully,
        network: network_counts,
        restarts,
        learning,
        timeline,
        wall_s: started.elapsed().as_secs_f64(),
        setup_s,
        cpu_s: cpu_s - cpu_at_start,
        peak_rss_mib,
        backend_disk_bytes,
        phones_disk_bytes,
    })
}

/// Someone of `people` other than `me` (one of them).
fn other_person(rng: &mut SplitMix64, me: usize, people: &std::ops::Range<usize>) -> usize {
    let n = people.len();
    people.start + (me - people.start + 1 + rng.below(n - 1)) % n
}

/// What every phone's day shares.
struct Day<'a> {
    world: &'a PopulationModel,
    cfg: &'a WorldConfig,
    faces: Option<&'a crate::faces::FaceSet>,
    /// The cohort's people: impostors and mimics are among them.
    people: std::ops::Range<usize>,
    names: &'a FactorNames,
}

/// One phone's day: its owner uses it and authenticates `auths_per_day` times; someone
/// else may pick it up (zero-effort impostor), or a mimic may try. After a genuine
/// answer other than `accept` the app's own step-up succeeds and clears the lock.
///
/// With faces, every authentication takes a picture of whoever holds the phone: the
/// owner's probe images in turn, an impostor's own face, and for the mimic a photo of
/// the owner, an enrolment image presented again (a replay).
fn live_day(
    mut phone: SimPhone,
    day: u32,
    d: &Day<'_>,
    h: &tokio::runtime::Handle,
    http: &reqwest::Client,
    url: &str,
    token: &str,
) -> anyhow::Result<(SimPhone, Vec<Outcome>)> {
    let (world, cfg) = (d.world, d.cfg);
    let owner = world.person(phone.index as u64);
    let own_face = d.faces.and_then(|f| f.of(phone.index));
    let mut probes = day as usize * 8;
    let mut outcomes = Vec::new();
    let mut attempt = |phone: &mut SimPhone,
                       holder: Holder,
                       person: &crate::Person,
                       face: Option<&tacit_mobile_core::client::face::CameraFrame>|
     -> anyhow::Result<()> {
        if let Some(frame) = face {
            phone.face(frame)?;
        }
        phone.activity(person, day, 60.0, 5)?;
        let (answer, latency_ms) = h.block_on(phone.authenticate())?;
        if holder == Holder::Owner && answer.decision != AuthDecision::Accept {
            let path = format!("/v1/users/{}/unlock", phone.user_id);
            h.block_on(super::phone::admin(http, url, token, &path, None))?;
        }
        outcomes.push(Outcome::of(holder, answer, latency_ms, d.names));
        Ok(())
    };
    let mut owner_face = || {
        probes += 1;
        own_face.map(|f| f.probe(probes))
    };
    for _ in 0..cfg.auths_per_day {
        attempt(&mut phone, Holder::Owner, &owner, owner_face())?;
    }
    if Draw::uniform(&mut phone.rng) < cfg.impostor_rate {
        let j = other_person(&mut phone.rng, phone.index, &d.people);
        let face = own_face
            .and(d.faces)
            .map(|f| f.other_than(phone.index, j).probe(j));
        attempt(&mut phone, Holder::Impostor, &world.person(j as u64), face)?;
        // The owner gets the phone back.
        attempt(&mut phone, Holder::Owner, &owner, owner_face())?;
    }
    if Draw::uniform(&mut phone.rng) < cfg.mimic_rate {
        let j = other_person(&mut phone.rng, phone.index, &d.people);
        let mimic = world.person(j as u64).mimic(&owner, cfg.mimic_strength);
        let photo = own_face.map(|f| &f.enrolment()[j % crate::faces::ENROL_FACES]);
        attempt(&mut phone, Holder::Mimic, &mimic, photo)?;
        attempt(&mut phone, Holder::Owner, &owner, owner_face())?;
    }
    h.block_on(phone.upload())?;
    phone.close();
    Ok((phone, outcomes))
}

/// The report of a world from its cohorts: every attempt of every cohort pooled (one
/// threshold for everyone), the totals added up, the costs per cohort.
fn pooled(cfg: &WorldConfig, cohorts: Vec<Cohort>, names: &FactorNames) -> Report {
    let names = names.all();
    let mut attacks = AttackStats::default();
    let mut envelopes = Envelopes::default();
    let mut network = super::FaultCounts::default();
    let (mut enrolled_fully, mut restarts) = (0, 0);
    let (mut wall_s, mut setup_s, mut cpu_s, mut peak_rss_mib) = (0.0, 0.0, 0.0, 0.0f64);
    let (mut timeline, mut learning, mut costs) = (Vec::new(), Vec::new(), Vec::new());
    let mut outcomes = Vec::with_capacity(cohorts.iter().map(|c| c.outcomes.len()).sum());
    let single = cohorts.len() == 1;
    for c in cohorts {
        attacks.add(&c.attacks);
        envelopes.add(&c.envelopes);
        network.add(&c.network);
        enrolled_fully += c.enrolled_fully;
        restarts = c.restarts.saturating_add(restarts);
        // The timeline runs on: a cohort's stages after the ones before it.
        let stored_before = envelopes.stored.saturating_sub(c.envelopes.stored);
        timeline.extend(c.timeline.iter().map(|(stage, t, stored)| {
            let stage = if single {
                stage.clone()
            } else {
                format!("cohort {}: {stage}", c.index + 1)
            };
            (stage, wall_s + t, stored_before.saturating_add(*stored))
        }));
        wall_s += c.wall_s;
        setup_s += c.setup_s;
        // This process's own CPU and memory are read at the end, pooling included;
        // saved cohorts bring those of the runs before.
        if c.loaded {
            cpu_s += c.cpu_s;
            peak_rss_mib = peak_rss_mib.max(c.peak_rss_mib);
        }
        learning.extend(c.learning);
        costs.push(CohortCost {
            people: c.people.len(),
            wall_s: c.wall_s,
            cpu_s: c.cpu_s,
            peak_rss_mib: c.peak_rss_mib,
            backend_disk_mb: c.backend_disk_bytes as f64 / 1e6,
            phones_disk_mb: c.phones_disk_bytes as f64 / 1e6,
            stored: c.envelopes.stored,
            lost: c.envelopes.lost,
            duplicated: c.envelopes.duplicated,
            build: c.build,
        });
        outcomes.extend(c.outcomes);
    }
    let mut report = summarise(cfg, &outcomes, &names);
    drop(outcomes);
    let (cpu_here, rss_here) = resources();
    let (cpu_s, peak_rss_mib) = (cpu_s + cpu_here, peak_rss_mib.max(rss_here));
    Report {
        enrolled_fully,
        attacks,
        ingest_per_s: envelopes.stored as f64 / (wall_s - setup_s).max(1e-9),
        envelopes,
        wall_s,
        setup_s,
        cpu_s,
        peak_rss_mib,
        network,
        restarts,
        timeline,
        learning,
        cohorts: costs,
        ..std::mem::take(&mut report)
    }
}

/// The rates and latencies of `outcomes` (the rest of the report left empty).
fn summarise(cfg: &WorldConfig, outcomes: &[Outcome], names: &[String]) -> Report {
    let mut counts = [[0u64; 4]; 3];
    // Scores of genuine, zero-effort and mimicry attempts.
    let mut fused: [Vec<f64>; 3] = Default::default();
    let mut per_factor: BTreeMap<String, [Vec<f64>; 3]> = BTreeMap::new();
    let mut latency = Vec::with_capacity(outcomes.len());
    let mut judged: [Vec<Judged>; 3] = Default::default();
    for o in outcomes {
        latency.push(o.latency_ms);
        let k = match o.holder {
            Holder::Owner => 0,
            Holder::Impostor => 1,
            Holder::Mimic => 2,
        };
        counts[k][0] += 1;
        counts[k][match o.decision {
            AuthDecision::Accept => 1,
            AuthDecision::StepUp => 2,
            AuthDecision::Reject => 3,
        }] += 1;
        fused[k].push(o.llr);
        judged[k].push(o.judged);
        for (factor, l) in &o.factors {
            let name = names.get(usize::from(*factor)).map_or("?", String::as_str);
            match per_factor.get_mut(name) {
                Some(scores) => scores[k].push(*l),
                None => per_factor.entry(name.to_string()).or_default()[k].push(*l),
            }
        }
    }
    let rates_against = |k: usize| -> Vec<FactorRates> {
        per_factor
            .iter()
            .map(|(f, s)| FactorRates::new(f, &s[0], &s[k]))
            .chain(std::iter::once(FactorRates::new(
                "fused", &fused[0], &fused[k],
            )))
            .collect()
    };
    let (rates, mimic_rates) = (rates_against(1), rates_against(2));
    let p50 = quantile(&mut latency, 0.5);
    let p99 = quantile(&mut latency, 0.99);
    let max = latency.last().copied().unwrap_or(0.0);
    Report {
        people: cfg.people,
        days: cfg.days,
        seed: cfg.seed,
        genuine: counts[0],
        impostor: counts[1],
        mimic: counts[2],
        operating_points: operating_points(&judged[0], &judged[1]),
        mimic_operating_points: operating_points(&judged[0], &judged[2]),
        rates,
        mimic_rates,
        auth_latency_ms: [p50, p99, max],
        scores: per_factor
            .into_iter()
            .map(|(f, [g, i, _])| (f, g, i))
            .chain(std::iter::once((
                "fused".to_string(),
                fused[0].clone(),
                fused[1].clone(),
            )))
            .collect(),
        day0_sessions: cfg.day0_sessions,
        ..Report::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Draw;

    /// The report of a million people in 40 cohorts, from made-up attempts (3.5 per
    /// person, as the default day makes): what pooling, the table, the HTML and the
    /// JSON cost in time and memory. A measurement, run on demand:
    /// `cargo test --release -p tacit-simulator --lib pooling_a_million -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement of a million people's report (about 3.5 million attempts)"]
    fn pooling_a_million_people() {
        let cfg = WorldConfig {
            people: 1_000_000,
            cohort: Some(25_000),
            days: 1,
            ..WorldConfig::default()
        };
        let names = FactorNames::default();
        let mut rng = SplitMix64::new(3);
        let (before_cpu, _) = resources();
        let started = Instant::now();
        let cohorts: Vec<Cohort> = cohort::plan(cfg.people, cfg.cohort)
            .into_iter()
            .enumerate()
            .map(|(index, people)| {
                let outcomes = (0..people.len() * 7 / 2)
                    .map(|k| {
                        let holder = match k % 14 {
                            0..=1 => Holder::Impostor,
                            2 => Holder::Mimic,
                            _ => Holder::Owner,
                        };
                        let shift = if holder == Holder::Owner { 4.0 } else { 0.0 };
                        let llr = shift + 2.0 * (Draw::uniform(&mut rng) - 0.5);
                        Outcome {
                            holder,
                            decision: AuthDecision::Accept,
                            llr,
                            judged: (Draw::uniform(&mut rng), 1e-4),
                            factors: vec![
                                (names.id("gait"), llr * 0.7),
                                (names.id("keystroke"), llr * 0.3),
                            ],
                            latency_ms: 100.0 * Draw::uniform(&mut rng),
                        }
                    })
                    .collect();
                Cohort {
                    world: String::new(),
                    build: "b".into(),
                    loaded: false,
                    index,
                    people,
                    factor_names: names.all(),
                    outcomes,
                    attacks: AttackStats::default(),
                    envelopes: Envelopes::default(),
                    enrolled_fully: 0,
                    network: Default::default(),
                    restarts: 1,
                    learning: Vec::new(),
                    timeline: vec![("setup".into(), 1.0, 0)],
                    wall_s: 600.0,
                    setup_s: 1.0,
                    cpu_s: 1000.0,
                    peak_rss_mib: 0.0,
                    backend_disk_bytes: 1,
                    phones_disk_bytes: 1,
                }
            })
            .collect();
        let made = started.elapsed().as_secs_f64();
        let report = pooled(&cfg, cohorts, &names);
        let pooled_s = started.elapsed().as_secs_f64() - made;
        let table = report.table();
        let html = report.html();
        let json_at =
            std::env::temp_dir().join(format!("tacit-million-{}.json", std::process::id()));
        {
            let mut out = std::io::BufWriter::new(std::fs::File::create(&json_at).unwrap());
            serde_json::to_writer_pretty(&mut out, &report).unwrap();
        }
        let json_bytes = std::fs::metadata(&json_at).map_or(0, |m| m.len());
        let _ = std::fs::remove_file(&json_at);
        let (cpu, rss) = resources();
        println!("{table}");
        println!(
            "attempts {}: made in {made:.1} s, pooled in {pooled_s:.1} s, all in {:.1} s \
             ({:.1} CPU-s); HTML {} bytes, JSON {json_bytes} bytes; peak RSS {rss:.0} MiB",
            report.genuine[0] + report.impostor[0] + report.mimic[0],
            started.elapsed().as_secs_f64(),
            cpu - before_cpu,
            html.len(),
        );
        assert_eq!(report.cohorts.len(), 40);
        assert!(html.len() < 2_000_000, "{} bytes of HTML", html.len());
    }
}
