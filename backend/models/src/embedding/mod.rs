//! The population embedding network of a factor: an MLP from the transformed feature
//! vector to an L2-normalised embedding, trained with a metric-learning loss on many
//! people so that one person's vectors land close together and different people's
//! apart — including people the network has never seen.

mod artifact;
mod net;
mod train;

pub use artifact::{ARTIFACT_FORMAT, Calibration, ModelArtifact, ModelMeta, TrainingMeta};
pub use net::{DenseLayer, EmbeddingNet, NetShape, PlainNet, l2_normalize};
pub use train::{Loss, TrainConfig, TrainSet, TrainStats, train};
