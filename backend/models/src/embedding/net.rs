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
                // A diverged training run's NaN would otherwise give NaN embeddings
                // (and the pass below skips zero inputs, which assumes finite weights).
                if !weight.iter().chain(&bias).all(|v| v.is_finite()) {
                    return Err(ModelError::Artifact(format!(
                        "layer {d_in}x{d_out}: weights that are not finite numbers"
                    )));
                }
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
    /// [`Self::output`] values of unit length, row after row. Above [`UNPACKED_ROWS`]
    /// rows, each layer is one matrix product over all the rows (matrixmultiply's
    /// kernels through ndarray): for the 8 rows of a typical request that is several
    /// times faster than a loop per row, which was a quarter of the serving CPU.
    pub fn forward_rows(&self, x: &[f32], n: usize) -> Result<Vec<f32>, ModelError> {
        if n <= UNPACKED_ROWS {
            return self.forward_unpacked(x, n);
        }
        self.forward_matmul(x, n)
    }

    /// [`Self::forward_rows`] as one matrix product per layer.
    fn forward_matmul(&self, x: &[f32], n: usize) -> Result<Vec<f32>, ModelError> {
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
            unit_length(row);
        }
        Ok(out)
    }

    /// [`Self::forward_rows`] for a few rows: each layer as a sum of the weight
    /// matrix's rows scaled by the inputs. matrixmultiply packs both operands on every
    /// call (the gait network's weights are 124 KB) and pads the rows to its kernel's 8,
    /// which made one row cost as much as eight (8 µs of a 47 µs infer call); and after
    /// a ReLU about half the inputs are zero, whose rows are skipped here.
    fn forward_unpacked(&self, x: &[f32], n: usize) -> Result<Vec<f32>, ModelError> {
        let d_in = self.input();
        if x.len() != n * d_in {
            return Err(ModelError::Artifact(format!(
                "plain pass: {} values for {n} rows of {d_in}",
                x.len()
            )));
        }
        let last = self.layers.len().saturating_sub(1);
        let mut out = Vec::with_capacity(n * self.output());
        let (mut a, mut y) = (Vec::new(), Vec::new());
        for row in x.chunks_exact(d_in.max(1)) {
            a.clear();
            a.extend_from_slice(row);
            for (k, l) in self.layers.iter().enumerate() {
                y.clear();
                y.extend_from_slice(&l.bias);
                for (&xi, w) in a.iter().zip(l.weight.chunks_exact(l.d_out.max(1))) {
                    // A zero input adds nothing (the weights are finite: `of`).
                    if xi == 0.0 {
                        continue;
                    }
                    for (yj, wj) in y.iter_mut().zip(w) {
                        *yj += xi * wj;
                    }
                }
                if k < last {
                    y.iter_mut().for_each(|v| *v = v.max(0.0));
                }
                std::mem::swap(&mut a, &mut y);
            }
            unit_length(&mut a);
            out.extend_from_slice(&a);
        }
        Ok(out)
    }
}

/// Rows up to which [`PlainNet::forward_rows`] runs without matrixmultiply. Measured on
/// the gait network (50 → 128 → 128 → 64), release build: 1 row 2.2 µs against 10.5,
/// 4 rows 8.5 against 11.1, 8 rows 17.5 against 11.4 (matrixmultiply's FMA kernels
/// win once its fixed cost of packing is shared by enough rows).
const UNPACKED_ROWS: usize = 4;

/// Scales a row to unit Euclidean length (a zero row stays zero).
fn unit_length(row: &mut [f32]) {
    let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    for v in row.iter_mut() {
        *v /= norm;
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
        // burn's pass over `n` rows of 5, the reference.
        let by_burn = |rows: Vec<f32>, n: usize| -> Vec<f32> {
            net.forward(Tensor::from_data(TensorData::new(rows, [n, 5]), &device))
                .into_data()
                .to_vec()
                .expect("read back")
        };
        let want = by_burn(x.to_vec(), 1);
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
        // A batch whose length is not a whole number of rows is an error, not a panic,
        // whichever way the pass runs.
        assert!(plain.forward_rows(&x[..4], 1).is_err());
        assert!(plain.forward_rows(&x, 3).is_err());
        // Batches of different rows, on both sides of the matrix-product threshold:
        // each row as burn computes it.
        let batch: Vec<f32> = (0..9)
            .flat_map(|r| {
                x.iter()
                    .map(move |v| v * (1.0 - 0.3 * r as f32) + 0.1 * r as f32)
            })
            .collect();
        let want = by_burn(batch.clone(), 9);
        for n in [1, 2, 3, 4, 5, 9] {
            let rows = plain.forward_rows(&batch[..n * 5], n).expect("rows");
            assert_eq!(rows.len(), n * 3);
            for (got, want) in rows.iter().zip(&want) {
                assert!((got - want).abs() < 1e-6, "{n} rows: {got} vs {want}");
            }
        }
        // Weights that are not finite are refused when the plain network is made.
        let mut bad = net.clone();
        let w = bad.l2.weight.val();
        let dims = w.dims();
        let mut weights: Vec<f32> = w.into_data().to_vec().expect("weights");
        weights[0] = f32::NAN;
        bad.l2.weight = burn::module::Param::from_tensor(Tensor::from_data(
            TensorData::new(weights, dims),
            &device,
        ));
        assert!(PlainNet::of(&bad).is_err());
        assert!(PlainNet::of(&net).is_ok());
    }
}
