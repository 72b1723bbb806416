use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2};

use crate::ModelError;

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

/// One dense layer as plain numbers, for other runtimes: `y = W·x + b` with
/// `weight[o][i]` (output-major, PyTorch's `nn.Linear` layout; burn stores the transpose).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DenseLayer {
    /// `[output][input]` weights.
    pub weight: Vec<Vec<f32>>,
    /// `[output]` bias.
    pub bias: Vec<f32>,
}

impl<B: Backend> EmbeddingNet<B> {
    /// The three dense layers in forward order: ReLU after the first two, none after
    /// the last, whose output is then L2-normalised (as [`EmbeddingNet::forward`]).
    pub fn dense_layers(&self) -> Result<Vec<DenseLayer>, ModelError> {
        [&self.l1, &self.l2, &self.l3]
            .into_iter()
            .map(|l| dense(l))
            .collect()
    }
}

/// The network as plain arrays, for passes of a few rows: burn's per-call overhead
/// (tensor allocation and dispatch, ~40 µs for 8 rows on the serving machine) costs
/// more than their arithmetic. Computes what [`EmbeddingNet::forward`] computes, in
/// f32, summing in another order (results agree to float rounding).
#[derive(Debug, Clone)]
pub struct PlainNet {
    layers: Vec<PlainLayer>,
}

#[derive(Debug, Clone)]
struct PlainLayer {
    d_in: usize,
    d_out: usize,
    /// `[d_in][d_out]` (burn's layout): the right-hand matrix of `x · W`.
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl PlainNet {
    /// The network's three layers.
    pub fn of<B: Backend>(net: &EmbeddingNet<B>) -> Result<Self, ModelError> {
        let layers = [&net.l1, &net.l2, &net.l3]
            .into_iter()
            .map(|l| {
                let (d_in, d_out, weight, bias) = raw(l)?;
                Ok(PlainLayer {
                    d_in,
                    d_out,
                    weight,
                    bias,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(PlainNet { layers })
    }

    /// Input features.
    pub fn input(&self) -> usize {
        self.layers.first().map_or(0, |l| l.d_in)
    }

    /// Embedding dimension.
    pub fn output(&self) -> usize {
        self.layers.last().map_or(0, |l| l.d_out)
    }

    /// Embeds `n` rows of [`Self::input`] values (`x`, row after row) into `n` rows of
    /// [`Self::output`] values of unit length, row after row. Each layer is one matrix
    /// product over all the rows (matrixmultiply's kernels through ndarray): for the
    /// 8 rows of a typical request that is several times faster than a loop per row,
    /// which was a quarter of the serving CPU.
    pub fn forward_rows(&self, x: &[f32], n: usize) -> Result<Vec<f32>, ModelError> {
        let shape = |e: ndarray::ShapeError| ModelError::Artifact(format!("plain pass: {e}"));
        let mut a = Array2::from_shape_vec((n, self.input()), x.to_vec()).map_err(shape)?;
        let last = self.layers.len().saturating_sub(1);
        for (k, l) in self.layers.iter().enumerate() {
            let w = ArrayView2::from_shape((l.d_in, l.d_out), &l.weight).map_err(shape)?;
            let mut y = Array2::from_shape_fn((n, l.d_out), |(_, j)| l.bias[j]);
            general_mat_mul(1.0, &a, &w, 1.0, &mut y);
            if k < last {
                y.mapv_inplace(|v| v.max(0.0));
            }
            a = y;
        }
        let mut out = a.into_raw_vec_and_offset().0;
        for row in out.chunks_mut(self.output().max(1)) {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            for v in row.iter_mut() {
                *v /= norm;
            }
        }
        Ok(out)
    }
}

/// A layer's `(d_in, d_out, weight [d_in][d_out], bias)`, as burn holds them.
fn raw<B: Backend>(l: &Linear<B>) -> Result<(usize, usize, Vec<f32>, Vec<f32>), ModelError> {
    let read = |e: burn::tensor::DataError| ModelError::Artifact(format!("weights: {e:?}"));
    let w = l.weight.val();
    let [d_in, d_out] = w.dims();
    let w: Vec<f32> = w.into_data().to_vec().map_err(read)?;
    let bias: Vec<f32> = match &l.bias {
        Some(b) => b.val().into_data().to_vec().map_err(read)?,
        None => vec![0.0; d_out],
    };
    if w.len() != d_in * d_out || bias.len() != d_out {
        return Err(ModelError::Artifact(format!(
            "layer {d_in}x{d_out}: {} weights, {} biases",
            w.len(),
            bias.len()
        )));
    }
    Ok((d_in, d_out, w, bias))
}

fn dense<B: Backend>(l: &Linear<B>) -> Result<DenseLayer, ModelError> {
    let (d_in, d_out, w, bias) = raw(l)?;
    // burn: `[d_in, d_out]` row-major, `y = x·W + b`.
    let weight = (0..d_out)
        .map(|o| (0..d_in).map(|i| w[i * d_out + o]).collect())
        .collect();
    Ok(DenseLayer { weight, bias })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::CpuBackend;

    #[test]
    fn dense_layers_reproduce_the_forward_pass() {
        let device = Default::default();
        let shape = NetShape {
            input: 5,
            hidden: 7,
            output: 3,
        };
        let net = EmbeddingNet::<CpuBackend>::new(shape, &device);
        let x = [0.3f32, -1.2, 0.8, 2.0, -0.1];
        let want: Vec<f32> = net
            .forward(Tensor::from_data(
                TensorData::new(x.to_vec(), [1, 5]),
                &device,
            ))
            .into_data()
            .to_vec()
            .expect("read back");
        let layers = net.dense_layers().expect("layers");
        assert_eq!(layers.len(), 3);
        let mut h: Vec<f32> = x.to_vec();
        for (i, l) in layers.iter().enumerate() {
            assert_eq!(l.weight[0].len(), h.len());
            h = l
                .weight
                .iter()
                .zip(&l.bias)
                .map(|(row, b)| row.iter().zip(&h).map(|(w, x)| w * x).sum::<f32>() + b)
                .map(|y| if i < 2 { y.max(0.0) } else { y })
                .collect();
        }
        let norm = h.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert_eq!(h.len(), 3);
        for (got, want) in h.iter().map(|v| v / norm).zip(&want) {
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        }
        // The plain pass for small batches computes the same.
        let plain = PlainNet::of(&net).expect("plain");
        assert_eq!((plain.input(), plain.output()), (5, 3));
        let out = plain.forward_rows(&x, 1).expect("one row");
        assert_eq!(out.len(), 3);
        for (got, want) in out.iter().zip(&want) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
        // A batch whose length is not a whole number of rows is an error, not a panic.
        assert!(plain.forward_rows(&x[..4], 1).is_err());
        // And for each row of a batch.
        let batch: Vec<f32> = x.iter().chain(&x).copied().collect();
        let rows = plain.forward_rows(&batch, 2).expect("rows");
        assert_eq!(rows.len(), 6);
        for (got, want) in rows.iter().zip(want.iter().chain(&want)) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }
}
