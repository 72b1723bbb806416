//! Feature extraction per behavioural factor, on top of [`crate::dsp`].

pub mod gait;
pub mod keystroke;
