// SPDX-License-Identifier: MIT OR Apache-2.0
//! The detector network: conv-BN-ReLU stages at strides 2, 4, 8, 16, 32, a top-down path (1 x 1 lateral
//! convolutions, nearest 2x upsampling, sums) back to stride 4, and a 1 x 1 head of 5 channels per cell: heatmap
//! logit, centre offset (x, y, in cells, from the cell's centre) and log box size (w, h, in cells).
//!
//! Every BatchNorm follows a convolution (it folds into it on export) and every layer keeps its shape, so that
//! [`super::export`] can walk the same structure.

use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

/// Convolution (no bias) + BatchNorm, with its geometry for the exporter.
pub struct ConvBn {
    pub conv: nn::Conv2D,
    pub bn: nn::BatchNorm,
    pub kernel: i64,
    pub stride: i64,
}

impl ConvBn {
    fn new(p: nn::Path, cin: i64, cout: i64, kernel: i64, stride: i64) -> ConvBn {
        let cfg = nn::ConvConfig { stride, padding: kernel / 2, bias: false, ..Default::default() };
        ConvBn {
            conv: nn::conv2d(&p / "conv", cin, cout, kernel, cfg),
            bn: nn::batch_norm2d(&p / "bn", cout, Default::default()),
            kernel,
            stride,
        }
    }

    /// conv, BN, ReLU.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.bn.forward_t(&self.conv.forward(x), train).relu()
    }
}

/// Channels of the five stages and of the top-down path.
pub const STAGES: [i64; 5] = [16, 24, 48, 64, 96];
pub const TOP_DOWN: [i64; 3] = [48, 32, 24];

pub struct DetNet {
    /// Stage i: a strided 3 x 3 (stage 0: only that), then a 3 x 3 at the same stride.
    pub stages: Vec<Vec<ConvBn>>,
    /// Top-down at strides 16, 8, 4: lateral 1 x 1 of the stage, 1 x 1 of the coarser level, then a 3 x 3 after the sum.
    pub lateral: Vec<ConvBn>,
    pub reduce: Vec<ConvBn>,
    pub smooth: Vec<ConvBn>,
    /// 5 outputs per cell, with bias.
    pub head: nn::Conv2D,
}

/// The heatmap logit's bias at start: sigmoid = 0.01, as CenterNet and RetinaNet start (few cells hold a sign).
pub const HEAT_PRIOR_BIAS: f64 = -4.6;

impl DetNet {
    pub fn new(p: &nn::Path) -> DetNet {
        let mut stages = Vec::new();
        let mut cin = 3;
        for (i, &c) in STAGES.iter().enumerate() {
            let s = p / format!("s{i}");
            let mut layers = vec![ConvBn::new(&s / "down", cin, c, 3, 2)];
            if i > 0 {
                layers.push(ConvBn::new(&s / "conv", c, c, 3, 1));
            }
            stages.push(layers);
            cin = c;
        }
        let (mut lateral, mut reduce, mut smooth) = (Vec::new(), Vec::new(), Vec::new());
        let mut coarse = STAGES[4];
        for (j, &c) in TOP_DOWN.iter().enumerate() {
            let t = p / format!("td{j}");
            lateral.push(ConvBn::new(&t / "lateral", STAGES[3 - j], c, 1, 1));
            reduce.push(ConvBn::new(&t / "reduce", coarse, c, 1, 1));
            smooth.push(ConvBn::new(&t / "smooth", c, c, 3, 1));
            coarse = c;
        }
        let head = nn::conv2d(p / "head", TOP_DOWN[2], 5, 1, Default::default());
        tch::no_grad(|| {
            if let Some(b) = &head.bs {
                let mut b = b.shallow_clone();
                let init = Tensor::from_slice(&[HEAT_PRIOR_BIAS as f32, 0.0, 0.0, 0.0, 0.0]);
                b.copy_(&init);
            }
            let mut w = head.ws.shallow_clone();
            let _ = w.normal_(0.0, 0.01);
        });
        DetNet { stages, lateral, reduce, smooth, head }
    }

    /// `[B, 3, H, W]` RGB in [0, 1] (H, W multiples of 32) to `[B, 5, H/4, W/4]` raw head outputs.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut feats = Vec::new();
        let mut y = x.shallow_clone();
        for layers in &self.stages {
            for l in layers {
                y = l.forward_t(&y, train);
            }
            feats.push(y.shallow_clone());
        }
        let mut top = feats[4].shallow_clone();
        for j in 0..TOP_DOWN.len() {
            let r = self.reduce[j].forward_t(&top, train);
            let (h, w) = (r.size()[2], r.size()[3]);
            let up = r.upsample_nearest2d([h * 2, w * 2], 2.0, 2.0);
            let sum = self.lateral[j].forward_t(&feats[3 - j], train) + up;
            top = self.smooth[j].forward_t(&sum, train);
        }
        self.head.forward(&top)
    }
}
