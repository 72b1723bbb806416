//! # tacit-simulator
//!
//! Synthetic people for the end-to-end simulator: seeded, reproducible
//! people who walk with a phone in the pocket and type, producing exactly the inputs the
//! phone's core receives ([`MotionSample`]s and [`KeyEvent`]s), and the training
//! populations for the backend's models built through the phone's own feature code.
//!
//! * [`people`] — [`PopulationModel`] (a seed and the distributions) and [`Person`]
//!   (walk, stand, type a phrase or free text, mimic someone else);
//! * [`gait`] — the walking model (stride harmonics, thigh swing, pocket orientation,
//!   irregular 50 Hz timestamps), fitted to the Hoang et al. pocket recordings;
//! * [`typing`] — the typing model (log-normal holds and latencies with personal
//!   rhythm, practice, fatigue, hesitations), fitted to the CMU keystroke benchmark;
//! * [`training`] — gait and keystroke [`tacit_models::data::Population`]s, a small
//!   model training and a verification (EER) check;
//! * [`rng`] — the seeded generator ([`SplitMix64`]) and seed derivation;
//! * [`world`] — a simulated world: phones with the real client, a real backend in this
//!   process, days of genuine use, impostors and attacks, and the [`world::Report`].
//!
//! ```
//! use tacit_simulator::{PopulationModel, SplitMix64};
//!
//! let alice = PopulationModel::default().person(0);
//! let mut rng = SplitMix64::new(1);
//! let motion = alice.walk(10.0, 1_767_225_600_000_000_000, 0, &mut rng);
//! assert!(motion.len() > 450);
//! let entry = alice.type_phrase(11, 0, &mut rng);
//! assert_eq!(entry.len(), 11);
//! ```
//!
//! The binary `tacit-sim` (the protocol demo) is independent of this library.

#![forbid(unsafe_code)]
#![warn(clippy::unwrap_used)]

pub mod faces;
pub mod gait;
pub mod people;
pub mod rng;
pub mod training;
pub mod typing;
pub mod world;

pub use people::{Person, PopulationModel};
pub use rng::SplitMix64;
pub use tacit_features::dsp::{KeyClass, KeyEvent, MotionSample};
pub use typing::{CMU_KEYS, CMU_PHRASE, TypingSession};
