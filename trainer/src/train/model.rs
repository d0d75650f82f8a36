// SPDX-License-Identifier: MIT OR Apache-2.0
//! The embedding networks: a Wide-ResNet family WRN-d-k (the paper uses WRN-28-10 for traffic signs) and LeNet (the
//! paper's MNIST experiment), each ending in a linear embedding layer of dimension D; plus an optional linear
//! classifier over the embedding for the cross-entropy baselines.
//!
//! The WRN blocks are post-activation (conv-BN-ReLU) so that every BatchNorm follows a convolution and folds into it
//! on export. Layers keep their own shapes and strides so that the ONNX exporter can walk them.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

/// Which network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Arch {
    /// WRN-depth-width: depth = 6n + 4 (n blocks per stage), stage widths 16k, 32k, 64k.
    Wrn {
        depth: u32,
        width: u32,
    },
    Lenet,
}

/// Run `f` holding libtorch's process-wide random generator, seeded first with `seed` when given. Whoever seeds it and
/// draws a network's initial weights, and whoever draws weights only to overwrite them (a network read back from its
/// file), must not interleave with another thread doing the same — parallel tests, an application that trains one
/// model while it loads another — or a seeded run's initial weights change with the timing.
pub fn with_torch_rng<T>(seed: Option<i64>, f: impl FnOnce() -> T) -> T {
    static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = RNG.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(seed) = seed {
        tch::manual_seed(seed);
    }
    f()
}

impl std::str::FromStr for Arch {
    type Err = String;
    /// `wrn-10-1`, `wrn-28-10`, `lenet`.
    fn from_str(s: &str) -> Result<Arch, String> {
        if s == "lenet" {
            return Ok(Arch::Lenet);
        }
        let parts: Vec<&str> = s.split('-').collect();
        match parts.as_slice() {
            ["wrn", d, k] => {
                let depth: u32 = d.parse().map_err(|_| format!("bad depth in {s:?}"))?;
                let width: u32 = k.parse().map_err(|_| format!("bad width in {s:?}"))?;
                if depth < 10 || !(depth - 4).is_multiple_of(6) || width == 0 {
                    return Err(format!("{s:?}: WRN depth must be 6n+4 (10, 16, 22, 28...) and width >= 1"));
                }
                Ok(Arch::Wrn { depth, width })
            }
            _ => Err(format!("unknown architecture {s:?} (wrn-D-K or lenet)")),
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Arch::Wrn { depth, width } => write!(f, "wrn-{depth}-{width}"),
            Arch::Lenet => write!(f, "lenet"),
        }
    }
}

/// Convolution (no bias) followed by BatchNorm.
pub struct ConvBn {
    pub conv: nn::Conv2D,
    pub bn: nn::BatchNorm,
    pub kernel: i64,
    pub stride: i64,
    pub padding: i64,
}

impl ConvBn {
    fn new(p: nn::Path, cin: i64, cout: i64, kernel: i64, stride: i64) -> ConvBn {
        let padding = kernel / 2;
        let cfg = nn::ConvConfig { stride, padding, bias: false, ..Default::default() };
        ConvBn {
            conv: nn::conv2d(&p / "conv", cin, cout, kernel, cfg),
            bn: nn::batch_norm2d(&p / "bn", cout, Default::default()),
            kernel,
            stride,
            padding,
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.bn.forward_t(&self.conv.forward(x), train)
    }
}

/// Residual block: relu(bn(conv(relu(bn(conv(x))))) + shortcut(x)).
pub struct Block {
    pub a: ConvBn,
    pub b: ConvBn,
    pub shortcut: Option<ConvBn>,
}

impl Block {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let y = self.a.forward_t(x, train).relu();
        let y = self.b.forward_t(&y, train);
        let s = match &self.shortcut {
            Some(sc) => sc.forward_t(x, train),
            None => x.shallow_clone(),
        };
        (y + s).relu()
    }
}

pub enum Backbone {
    Wrn { stem: ConvBn, blocks: Vec<Block>, channels: i64 },
    Lenet { c1: nn::Conv2D, c2: nn::Conv2D, fc: nn::Linear, flat: i64 },
}

/// The network: backbone, embedding layer, optional classifier (cross-entropy baselines).
pub struct Net {
    pub arch: Arch,
    pub backbone: Backbone,
    pub embed: nn::Linear,
    pub classifier: Option<nn::Linear>,
    pub input: (i64, i64),
    pub dim: i64,
}

impl Net {
    /// Build under `p` for `[N,3,h,w]` inputs and `dim`-dimensional embeddings; `classes` adds a classifier.
    pub fn new(p: &nn::Path, arch: Arch, h: i64, w: i64, dim: i64, classes: Option<i64>) -> Net {
        let (backbone, feat) = match arch {
            Arch::Wrn { depth, width } => {
                let n = ((depth - 4) / 6) as usize;
                let k = width as i64;
                let stem = ConvBn::new(p / "stem", 3, 16, 3, 1);
                let mut blocks = Vec::new();
                let mut cin = 16;
                for (stage, (cout, stride)) in [(16 * k, 1), (32 * k, 2), (64 * k, 2)].into_iter().enumerate() {
                    for i in 0..n {
                        let s = if i == 0 { stride } else { 1 };
                        let bp = p / format!("s{stage}b{i}");
                        let shortcut = (s != 1 || cin != cout).then(|| ConvBn::new(&bp / "short", cin, cout, 1, s));
                        blocks.push(Block {
                            a: ConvBn::new(&bp / "a", cin, cout, 3, s),
                            b: ConvBn::new(&bp / "b", cout, cout, 3, 1),
                            shortcut,
                        });
                        cin = cout;
                    }
                }
                (Backbone::Wrn { stem, blocks, channels: cin }, cin)
            }
            Arch::Lenet => {
                let c1 = nn::conv2d(p / "c1", 3, 20, 5, Default::default());
                let c2 = nn::conv2d(p / "c2", 20, 50, 5, Default::default());
                let (h2, w2) = (((h - 4) / 2 - 4) / 2, ((w - 4) / 2 - 4) / 2);
                let flat = 50 * h2.max(1) * w2.max(1);
                let fc = nn::linear(p / "fc", flat, 500, Default::default());
                (Backbone::Lenet { c1, c2, fc, flat }, 500)
            }
        };
        let embed = nn::linear(p / "embed", feat, dim, Default::default());
        let classifier = classes.map(|k| nn::linear(p / "classifier", dim, k, Default::default()));
        Net { arch, backbone, embed, classifier, input: (h, w), dim }
    }

    /// Embeddings `[N, dim]`.
    pub fn embed_t(&self, x: &Tensor, train: bool) -> Tensor {
        let f = match &self.backbone {
            Backbone::Wrn { stem, blocks, .. } => {
                // Channels last (NHWC strides, the same NCHW tensor): libtorch's oneDNN convolutions, batch norms and
                // the rest follow the input's layout, and run ~15-20% faster so on the CPU.
                let x = x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]);
                let mut y = stem.forward_t(&x, train).relu();
                for b in blocks {
                    y = b.forward_t(&y, train);
                }
                y.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
            }
            Backbone::Lenet { c1, c2, fc, flat } => {
                let y = c1.forward(x).relu().max_pool2d_default(2);
                let y = c2.forward(&y).relu().max_pool2d_default(2);
                fc.forward(&y.view([-1, *flat])).relu()
            }
        };
        self.embed.forward(&f)
    }

    /// Class logits (cross-entropy models only).
    pub fn logits(&self, embedding: &Tensor) -> Option<Tensor> {
        self.classifier.as_ref().map(|c| c.forward(embedding))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_weights(seed: Option<i64>) -> Vec<f32> {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        with_torch_rng(seed, || Net::new(&vs.root(), "wrn-10-1".parse().unwrap(), 8, 8, 4, None));
        let mut w = vs.variables().into_iter().collect::<Vec<_>>();
        w.sort_by(|a, b| a.0.cmp(&b.0));
        w.iter().flat_map(|(_, t)| Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()).collect()
    }

    #[test]
    fn a_seeded_network_is_the_same_while_other_threads_draw_weights() {
        // Threads that build networks only to load them (as eval does) draw from libtorch's one generator; without
        // the lock they land between a seed and its draws, and the seeded weights change (seen as a flaky resume test).
        let want = first_weights(Some(7));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let noise: Vec<_> = (0..3)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        first_weights(None);
                    }
                })
            })
            .collect();
        let same = (0..30).all(|_| first_weights(Some(7)) == want);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        noise.into_iter().for_each(|t| t.join().unwrap());
        assert!(same, "a seeded network's initial weights changed while other threads drew weights");
    }
}
