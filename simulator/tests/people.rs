//! Synthetic people through the phone's own code: walks are detected as walking and
//! give valid gait records, standing does not, phrase entries and free text give valid
//! keystroke records, and everything is reproducible from the seeds.

use ring::rand::SystemRandom;
use tacit_mobile_core::client::{Client, ClientConfig};
use tacit_mobile_core::factors::gait::{GaitConfig, GaitExtractor, extract_gait};
use tacit_mobile_core::factors::keystroke::{
    FreeTextExtractor, fixed_text_record, free_text_record, phrase_id,
};
use tacit_shared::hpke::RecipientKeyPair;
use tacit_simulator::training::EPOCH_NS;
use tacit_simulator::{CMU_KEYS, CMU_PHRASE, PopulationModel, SplitMix64};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("tacit-sim-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn client(name: &str) -> (Client, std::path::PathBuf) {
    let backend = RecipientKeyPair::generate(&SystemRandom::new()).expect("backend key");
    let dir = temp_dir(name);
    let cfg = ClientConfig::new(
        "http://127.0.0.1:9",
        backend.public_key().as_bytes(),
        &backend.key_id().to_hex(),
        dir.to_str().expect("utf-8 temp dir"),
        "sim-user",
    )
    .expect("client config");
    (Client::new(cfg, None).expect("client"), dir)
}

#[test]
fn walking_is_detected_and_gives_valid_records() {
    let model = PopulationModel::default();
    for index in 0..4 {
        let person = model.person(index);
        let mut rng = SplitMix64::new(index);
        let motion = person.walk(60.0, EPOCH_NS, index as u32, &mut rng);
        // Streaming, in uneven chunks, as an app delivers sensor batches.
        let mut ex = GaitExtractor::new(GaitConfig::default()).expect("extractor");
        let (mut windows, mut walking) = (0, Vec::new());
        for chunk in motion.chunks(37) {
            ex.push(chunk, |w| {
                windows += 1;
                if w.walking {
                    walking.push(w.clone());
                }
            });
        }
        assert_eq!(ex.report().dropped(), 0, "person {index}: samples dropped");
        assert!(windows >= 20, "person {index}: {windows} windows in 60 s");
        assert!(
            walking.len() * 10 >= windows * 9,
            "person {index}: only {}/{windows} windows are walking",
            walking.len()
        );
        let cadence = person.gait.session(person.seed, index as u32).cadence_hz;
        let mut cadences = Vec::new();
        for w in &walking {
            let rec = w.to_record(1_767_225_600_000);
            rec.validate().expect("gait record fits GAIT_V1");
            let c = w.feature("cadence_hz").expect("cadence");
            assert!(
                (c / cadence - 1.0).abs() < 0.25,
                "person {index}: window cadence {c:.3} vs the person's {cadence:.3}"
            );
            cadences.push(c);
        }
        cadences.sort_by(f64::total_cmp);
        let median = cadences[cadences.len() / 2];
        assert!(
            (median / cadence - 1.0).abs() < 0.08,
            "person {index}: median window cadence {median:.3} vs the person's {cadence:.3}"
        );
    }
}

#[test]
fn the_phone_client_records_walks_and_phrase_entries() {
    let (client, dir) = client("client");
    let person = PopulationModel::default().person(11);
    let mut rng = SplitMix64::new(11);
    let motion = person.walk(30.0, EPOCH_NS, 0, &mut rng);
    let mut records = 0;
    for chunk in motion.chunks(100) {
        let out = client.record_motion(chunk).expect("record_motion");
        assert_eq!(out.dropped, 0);
        records += out.feature_records;
    }
    assert!(records >= 8, "{records} gait records from 30 s of walking");
    let still = person.stand(20.0, EPOCH_NS + 40_000_000_000, 0, &mut rng);
    let out = client.record_motion(&still).expect("record_motion");
    assert!(out.windows > 0);
    assert_eq!(
        out.feature_records, 0,
        "standing still produced gait records"
    );
    for e in 0..5 {
        let events = person.type_phrase(CMU_KEYS, EPOCH_NS + e * 10_000_000_000, &mut rng);
        let out = client
            .record_phrase_entry(CMU_PHRASE, &events)
            .expect("record_phrase_entry");
        assert_eq!(out.feature_records, 1);
    }
    let free = person.type_free(250, EPOCH_NS + 100_000_000_000, &mut rng);
    let out = client.record_keys(&free).expect("record_keys");
    assert_eq!(out.feature_records, 2, "250 keys = 2 blocks of 100");
    let sealed = client.seal().expect("seal");
    assert!(sealed.records as u64 >= records + 7);
    drop(client);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn standing_is_not_walking() {
    let model = PopulationModel::default();
    for index in 0..3 {
        let still = model
            .person(index)
            .stand(30.0, EPOCH_NS, 0, &mut SplitMix64::new(index));
        let (windows, report) = extract_gait(&still, GaitConfig::default()).expect("gait");
        assert!(report.windows >= 9);
        assert!(windows.iter().all(|w| !w.walking), "person {index}");
    }
}

#[test]
fn timestamps_are_irregular_around_50_hz() {
    let person = PopulationModel::default().person(0);
    let motion = person.walk(120.0, EPOCH_NS, 0, &mut SplitMix64::new(9));
    let dt: Vec<i64> = motion.windows(2).map(|w| w[1].t_ns - w[0].t_ns).collect();
    assert!(dt.iter().all(|&d| d > 500_000 && d < 500_000_000));
    let mut sorted = dt.clone();
    sorted.sort_unstable();
    let median = sorted[sorted.len() / 2];
    assert!(
        (19_000_000..21_000_000).contains(&median),
        "median {median} ns"
    );
    assert!(sorted[sorted.len() / 20] < 19_000_000 && sorted[sorted.len() * 19 / 20] > 21_000_000);
    assert!(
        (5_800..6_200).contains(&motion.len()),
        "{} samples",
        motion.len()
    );
    assert_eq!(motion[0].t_ns, EPOCH_NS);
    // Gravity is there, in a pocket orientation: |a| averages about 9.81.
    let mean_norm = motion
        .iter()
        .map(|s| s.accel.iter().map(|a| a * a).sum::<f64>().sqrt())
        .sum::<f64>()
        / motion.len() as f64;
    assert!((9.3..10.8).contains(&mean_norm), "{mean_norm}");
}

#[test]
fn people_and_their_data_are_reproducible() {
    let a = PopulationModel::default();
    let b = PopulationModel::default();
    assert_eq!(a.person(5), b.person(5));
    let w1 = a.person(5).walk(6.0, 0, 2, &mut SplitMix64::new(1));
    let w2 = b.person(5).walk(6.0, 0, 2, &mut SplitMix64::new(1));
    assert_eq!(w1, w2);
    let w3 = a.person(5).walk(6.0, 0, 3, &mut SplitMix64::new(1));
    assert_ne!(w1, w3, "another session must differ");
    let k1 = a.person(5).type_phrase(11, 0, &mut SplitMix64::new(2));
    let k2 = b.person(5).type_phrase(11, 0, &mut SplitMix64::new(2));
    assert_eq!(k1, k2);
}

#[test]
fn phrase_entries_give_valid_53_value_records() {
    let model = PopulationModel::default();
    let id = phrase_id(b"salt", CMU_PHRASE);
    for index in 0..10 {
        let person = model.person(index);
        let mut rng = SplitMix64::new(100 + index);
        let mut session = person.typing_session(0);
        for e in 0..30 {
            let events = if e % 2 == 0 {
                person.type_phrase(CMU_KEYS, 5_000_000_000 * e, &mut rng)
            } else {
                session.entry(CMU_KEYS, 5_000_000_000 * e, &mut rng)
            };
            let rec = fixed_text_record(id, &events, CMU_KEYS, 0).expect("fixed-text record");
            // 31 timings, then 11 pressures and 11 areas: simulated keys carry touch.
            assert_eq!((rec.schema_version, rec.values.len()), (2, 53));
            rec.validate().expect("fits the fixed-text schema");
            let holds: Vec<f32> = rec.values[..31].iter().step_by(3).copied().collect();
            assert!(
                holds.iter().all(|&h| (0.005..=2.0).contains(&h)),
                "{holds:?}"
            );
        }
    }
    // Other phrase lengths, and out-of-range lengths give nothing.
    let p = model.person(0);
    let mut rng = SplitMix64::new(3);
    for keys in [2, 4, 20, 128] {
        let events = p.type_phrase(keys, 0, &mut rng);
        let rec = fixed_text_record(id, &events, keys, 0).expect("record");
        assert_eq!(rec.values.len(), 5 * keys - 2);
        rec.validate().expect("valid");
    }
    assert!(p.type_phrase(1, 0, &mut rng).is_empty());
    assert!(p.type_phrase(129, 0, &mut rng).is_empty());
}

#[test]
fn free_text_gives_valid_records() {
    let person = PopulationModel::default().person(4);
    let events = person.type_free(1000, 0, &mut SplitMix64::new(4));
    let mut ex = FreeTextExtractor::new(100).expect("extractor");
    let mut records = Vec::new();
    ex.push(&events, |f, start, end| {
        records.push(free_text_record(f, (start / 1_000_000) as u64, end - start))
    });
    assert_eq!(
        ex.report().dropped_invalid + ex.report().dropped_out_of_order,
        0
    );
    assert_eq!(records.len(), 10);
    for r in &records {
        r.validate().expect("fits KEYSTROKE_FREE_V1");
    }
}
