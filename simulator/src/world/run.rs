//! The days of a simulated world.

use std::collections::BTreeMap;
use std::time::Instant;

use futures::StreamExt;
use tacit_shared::api::{AuthDecision, AuthenticateResponse, FactorStatus};

use super::attacks;
use super::backend::SimBackend;
use super::network::FaultyNetwork;
use super::phone::{SimPhone, enrol_templates};
use super::report::{Envelopes, FactorRates, Report, quantile, resources};
use super::{AttackStats, WorldConfig};
use crate::rng::Draw;
use crate::{PopulationModel, SplitMix64};
use tacit_models::eval::metrics::{Judged, operating_points};

/// Progress callback: `(stage, done, total)`.
pub type Progress<'a> = &'a (dyn Fn(&str, u64, u64) + Sync);

/// Who was holding the phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holder {
    Owner,
    Impostor,
    Mimic,
}

/// One authentication as the phone saw it: only what the report counts (the scores and
/// the decision), not the whole answer with its signed verdict, so that a world of many
/// people keeps a few dozen bytes per attempt.
#[derive(Debug, Clone)]
struct Outcome {
    holder: Holder,
    decision: AuthDecision,
    /// The fused log-likelihood ratio.
    llr: f64,
    /// The FAR estimated for the attempt and the floor of that estimate.
    judged: Judged,
    /// Each scored factor's LLR.
    factors: Vec<(String, f64)>,
    latency_ms: f64,
}

impl Outcome {
    fn of(holder: Holder, answer: AuthenticateResponse, latency_ms: f64) -> Outcome {
        Outcome {
            holder,
            decision: answer.decision,
            llr: answer.llr,
            judged: (answer.estimated_far, answer.far_floor),
            factors: answer
                .factors
                .into_iter()
                .filter_map(|f| match (f.status, f.llr) {
                    (FactorStatus::Scored, Some(l)) => Some((f.factor, l)),
                    _ => None,
                })
                .collect(),
            latency_ms,
        }
    }
}

/// Runs a world and reports what it measured.
pub async fn run(cfg: &WorldConfig, progress: Progress<'_>) -> anyhow::Result<Report> {
    cfg.check()?;
    let started = Instant::now();
    // Both folders checked before either is emptied: a refused --phones-dir must not
    // cost the previous world in --dir.
    let mut folders = vec![(&cfg.dir, "--dir")];
    folders.extend(cfg.phones_dir.iter().map(|p| (p, "--phones-dir")));
    for (dir, flag) in &folders {
        super::workdir::check_as(dir, flag)?;
    }
    for (dir, flag) in &folders {
        super::workdir::prepare_as(dir, flag)?;
    }
    let world = PopulationModel::with_seed(cfg.seed);
    let faces = match &cfg.faces {
        Some(f) => Some(std::sync::Arc::new(crate::faces::FaceSet::load(&f.data)?)),
        None => None,
    };

    progress("training the models on other synthetic people", 0, 1);
    let backend = SimBackend::start(
        &cfg.backend,
        &cfg.dir.join("backend"),
        &world,
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
    let network =
        FaultyNetwork::start(&url, cfg.faults, crate::rng::derive(cfg.seed, 0x7e7, 0)).await?;
    let phone_url = network.url();
    let http = reqwest::Client::new();
    let token = backend.admin_token.clone();
    let phones_dir = cfg
        .phones_dir
        .clone()
        .unwrap_or_else(|| cfg.dir.join("phones"));

    // Phones: one user, one registered device each.
    let total = cfg.people as u64;
    let mut phones = Vec::with_capacity(cfg.people);
    let mut registering = futures::stream::iter(0..cfg.people)
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
                let (world, cfg, http, url, token, faces) = (
                    world.clone(),
                    cfg.clone(),
                    http.clone(),
                    url.clone(),
                    token.clone(),
                    faces.clone(),
                );
                tokio::task::spawn_blocking(move || {
                    let day_of = Day {
                        world: &world,
                        cfg: &cfg,
                        faces: faces.as_deref(),
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
    let mut rng = SplitMix64::new(crate::rng::derive(cfg.seed, 0xa77a, 0));
    let victims = cfg.people.min(10);
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
        let attacker = world.person(other_person(&mut rng, phones[idx].index, cfg.people) as u64);
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

    let mut report = summarise(
        cfg,
        outcomes,
        attacks,
        env,
        enrolled_fully,
        started,
        setup_s,
    );
    mark!("attacks");
    report.network = network.counts();
    report.timeline = timeline;
    report.learning = learning;
    network.stop().await;
    report.restarts = backend.restarts();
    backend.stop().await?;
    Ok(report)
}

fn other_person(rng: &mut SplitMix64, me: usize, people: usize) -> usize {
    (me + 1 + rng.below(people - 1)) % people
}

/// What every phone's day shares.
struct Day<'a> {
    world: &'a PopulationModel,
    cfg: &'a WorldConfig,
    faces: Option<&'a crate::faces::FaceSet>,
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
        outcomes.push(Outcome::of(holder, answer, latency_ms));
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
        let j = other_person(&mut phone.rng, phone.index, cfg.people);
        let face = own_face
            .and(d.faces)
            .map(|f| f.other_than(phone.index, j).probe(j));
        attempt(&mut phone, Holder::Impostor, &world.person(j as u64), face)?;
        // The owner gets the phone back.
        attempt(&mut phone, Holder::Owner, &owner, owner_face())?;
    }
    if Draw::uniform(&mut phone.rng) < cfg.mimic_rate {
        let j = other_person(&mut phone.rng, phone.index, cfg.people);
        let mimic = world.person(j as u64).mimic(&owner, cfg.mimic_strength);
        let photo = own_face.map(|f| &f.enrolment()[j % crate::faces::ENROL_FACES]);
        attempt(&mut phone, Holder::Mimic, &mimic, photo)?;
        attempt(&mut phone, Holder::Owner, &owner, owner_face())?;
    }
    h.block_on(phone.upload())?;
    phone.close();
    Ok((phone, outcomes))
}

fn summarise(
    cfg: &WorldConfig,
    outcomes: Vec<Outcome>,
    attacks: AttackStats,
    envelopes: Envelopes,
    enrolled_fully: usize,
    started: Instant,
    setup_s: f64,
) -> Report {
    let mut counts = [[0u64; 4]; 3];
    // Scores of genuine, zero-effort and mimicry attempts.
    let mut fused: [Vec<f64>; 3] = Default::default();
    let mut per_factor: BTreeMap<String, [Vec<f64>; 3]> = BTreeMap::new();
    let mut latency = Vec::with_capacity(outcomes.len());
    let mut judged: [Vec<Judged>; 3] = Default::default();
    for o in &outcomes {
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
            per_factor.entry(factor.clone()).or_default()[k].push(*l);
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
    let wall_s = started.elapsed().as_secs_f64();
    let (cpu_s, peak_rss_mib) = resources();
    let p50 = quantile(&mut latency, 0.5);
    let p99 = quantile(&mut latency, 0.99);
    let max = latency.last().copied().unwrap_or(0.0);
    Report {
        people: cfg.people,
        days: cfg.days,
        seed: cfg.seed,
        enrolled_fully,
        genuine: counts[0],
        impostor: counts[1],
        mimic: counts[2],
        operating_points: operating_points(&judged[0], &judged[1]),
        mimic_operating_points: operating_points(&judged[0], &judged[2]),
        rates,
        mimic_rates,
        attacks,
        ingest_per_s: envelopes.stored as f64 / (wall_s - setup_s).max(1e-9),
        envelopes,
        auth_latency_ms: [p50, p99, max],
        wall_s,
        setup_s,
        cpu_s,
        peak_rss_mib,
        scores: per_factor
            .into_iter()
            .map(|(f, [g, i, _])| (f, g, i))
            .chain(std::iter::once((
                "fused".to_string(),
                fused[0].clone(),
                fused[1].clone(),
            )))
            .collect(),
        timeline: Vec::new(),
        network: Default::default(),
        restarts: 0,
        day0_sessions: cfg.day0_sessions,
        learning: Vec::new(),
    }
}
