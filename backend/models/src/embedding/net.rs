use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

/// Layer sizes of the embedding MLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetShape {
    /// Input features.
    pub input: usize,
    /// Width of the two hidden layers.
    pub hidden: usize,
    /// Embedding dimension.
    pub output: usize,
}

/// `input → hidden → hidden → output`, ReLU between, L2-normalised output.
#[derive(Module, Debug)]
pub struct EmbeddingNet<B: Backend> {
    l1: Linear<B>,
    l2: Linear<B>,
    l3: Linear<B>,
}

impl<B: Backend> EmbeddingNet<B> {
    /// A freshly initialised network (initialisation follows the backend's seed).
    pub fn new(shape: NetShape, device: &B::Device) -> Self {
        EmbeddingNet {
            l1: LinearConfig::new(shape.input, shape.hidden).init(device),
            l2: LinearConfig::new(shape.hidden, shape.hidden).init(device),
            l3: LinearConfig::new(shape.hidden, shape.output).init(device),
        }
    }

    /// Embeddings of a batch `[n, input]` → `[n, output]`, each of unit length.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let h = relu(self.l1.forward(x));
        let h = relu(self.l2.forward(h));
        l2_normalize(self.l3.forward(h))
    }
}

/// Scales every row to unit Euclidean length.
pub fn l2_normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x
        .clone()
        .powf_scalar(2.0)
        .sum_dim(1)
        .sqrt()
        .clamp_min(1e-12);
    x / norm
}
