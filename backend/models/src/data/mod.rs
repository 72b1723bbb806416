//! Evaluation and training data sets, turned into feature vectors by the same
//! `tacit-mobile-core` code that runs on the phone.

mod gait;
mod keystroke;

pub use gait::read_gait_folder;
pub use keystroke::{key_class, read_cmu, read_key_csv};

use crate::FactorKind;

/// One feature vector with the recording session it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Session (or other recording group) within the person, in recording order.
    pub group: u32,
    /// The features.
    pub vector: Vec<f32>,
}

/// One person's vectors in recording order.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    /// Identifier from the data set.
    pub id: String,
    /// Vectors, ordered by group then recording order.
    pub samples: Vec<Sample>,
}

impl Person {
    /// The enrolment half and the test half: the first half of the person's sessions
    /// when there are at least two, else the first half of the vectors.
    pub fn halves(&self) -> (Vec<&Sample>, Vec<&Sample>) {
        let mut groups: Vec<u32> = self.samples.iter().map(|s| s.group).collect();
        groups.dedup();
        if groups.len() >= 2 {
            let cut = groups[groups.len() / 2];
            self.samples.iter().partition(|s| s.group < cut)
        } else {
            let h = self.samples.len() / 2;
            (
                self.samples[..h].iter().collect(),
                self.samples[h..].iter().collect(),
            )
        }
    }

    /// The vectors of the given groups.
    pub fn vectors(samples: &[&Sample]) -> Vec<Vec<f32>> {
        samples.iter().map(|s| s.vector.clone()).collect()
    }
}

/// A data set: people with vectors of one factor.
#[derive(Debug, Clone, PartialEq)]
pub struct Population {
    /// The factor.
    pub factor: FactorKind,
    /// Feature schema version of the vectors.
    pub schema_version: u16,
    /// Vector dimension.
    pub dim: usize,
    /// People, in the data set's order.
    pub people: Vec<Person>,
    /// What was read (for reports).
    pub source: String,
    /// Inputs that produced no vectors, with the reason (reported, never silently lost).
    pub skipped: Vec<String>,
}

impl Population {
    /// Removes the people with too few vectors to be evaluated — fewer than
    /// `min_enrol` in the enrolment half (by sessions, or the first half of the vectors
    /// for the one-class protocol) or none left to test — and lists each in `skipped`
    /// with the reason. One short person (typos, a cut-off session) never aborts the
    /// evaluation of the others. Returns how many were removed.
    pub fn retain_enrollable(&mut self, min_enrol: usize) -> usize {
        let min_enrol = min_enrol.max(2);
        let before = self.people.len();
        let mut skipped = Vec::new();
        self.people.retain(|p| {
            let (enrol, test) = p.halves();
            let n = p.samples.len();
            let enrol_n = enrol.len().min(n / 2);
            let test_n = test.len().min(n - n / 2);
            if enrol_n >= min_enrol && test_n >= 1 {
                return true;
            }
            skipped.push(format!(
                "person {}: {n} usable entries ({enrol_n} to enrol, {test_n} to test); \
                 enrolment needs at least {min_enrol} and testing at least 1",
                p.id
            ));
            false
        });
        self.skipped.extend(skipped);
        before - self.people.len()
    }

    /// Total number of vectors.
    pub fn samples(&self) -> usize {
        self.people.iter().map(|p| p.samples.len()).sum()
    }
}

/// Groups sorted `(person, group, vector)` triples into people, keeping first-seen order
/// of people and stable order within a group.
pub(crate) fn group_people(rows: Vec<(String, u32, Vec<f32>)>) -> Vec<Person> {
    let mut people: Vec<Person> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for (id, group, vector) in rows {
        let i = *index.entry(id.clone()).or_insert_with(|| {
            people.push(Person {
                id: id.clone(),
                samples: Vec::new(),
            });
            people.len() - 1
        });
        people[i].samples.push(Sample { group, vector });
    }
    for p in &mut people {
        p.samples.sort_by_key(|s| s.group);
    }
    people
}

/// `n` synthetic gait people × 60 vectors (4 sessions of 15), each around a personal
/// centre and inside the `GAIT_V1` schema's ranges (so that the records encode), drawn
/// from a fixed seed: the same people in every test and benchmark that uses them (the
/// first `k` of `n` are those of `k`).
pub fn synthetic_gait(n: usize) -> Population {
    let mut rng = crate::SplitMix64::new(11);
    let schema = tacit_shared::schema::GAIT_V1;
    let people = (0..n)
        .map(|p| {
            let centre: Vec<f64> = (0..schema.len()).map(|_| rng.normal()).collect();
            Person {
                id: format!("p{p}"),
                samples: (0..60)
                    .map(|i| Sample {
                        group: (i / 15) as u32,
                        vector: centre
                            .iter()
                            .zip(schema)
                            .map(|(c, d)| {
                                let top = d.max.min(d.min + 10.0);
                                let (mid, span) = (0.5 * (d.min + top), (top - d.min) / 8.0);
                                (mid + span * (c + 0.4 * rng.normal()) as f32).clamp(d.min, d.max)
                            })
                            .collect(),
                    })
                    .collect(),
            }
        })
        .collect();
    Population {
        factor: FactorKind::Gait,
        schema_version: 1,
        dim: schema.len(),
        people,
        source: "synthetic".into(),
        skipped: vec![],
    }
}
