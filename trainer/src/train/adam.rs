// SPDX-License-Identifier: MIT OR Apache-2.0
//! Adam whose moments can be saved and restored, so that `--resume` continues the same optimisation instead of
//! restarting Adam from zero (tch's `nn::Optimizer` keeps its state inside libtorch, out of reach).
//!
//! The update is libtorch's `torch.optim.Adam` without weight decay: `m ← β1·m + (1−β1)·g`, `v ← β2·v + (1−β2)·g²`,
//! `p ← p − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε)`.

use std::path::Path;

use tch::{nn::VarStore, Tensor};

pub struct Adam {
    beta1: f64,
    beta2: f64,
    eps: f64,
    /// Steps taken so far (the `t` of the bias corrections).
    t: i64,
    /// Trainable variables by name, sorted.
    params: Vec<(String, Tensor)>,
    /// First and second moments of all parameters, flattened in `params` order: one update is a handful of
    /// libtorch calls instead of several per parameter tensor.
    m: Tensor,
    v: Tensor,
}

impl Adam {
    /// Adam over the trainable variables of `vs`, with PyTorch's defaults (β1 0.9, β2 0.999, ε 1e-8).
    pub fn new(vs: &VarStore) -> Self {
        let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let n: i64 = params.iter().map(|(_, p)| p.numel() as i64).sum();
        let opts = params.first().map_or((tch::Kind::Float, tch::Device::Cpu), |(_, p)| (p.kind(), p.device()));
        Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            t: 0,
            params,
            m: Tensor::zeros([n], opts),
            v: Tensor::zeros([n], opts),
        }
    }

    /// Back-propagate `loss`, clear the gradients, update every parameter with learning rate `lr`.
    pub fn backward_step(&mut self, loss: &Tensor, lr: f64) {
        for (_, p) in &self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
        loss.backward();
        let _guard = tch::no_grad_guard();
        self.t += 1;
        let bias1 = 1.0 - self.beta1.powi(self.t as i32);
        let bias2 = 1.0 - self.beta2.powi(self.t as i32);
        // A parameter without a gradient this step contributes zeros (its moments still decay, as in PyTorch's
        // foreach path when a gradient is zero).
        let grads: Vec<Tensor> = self
            .params
            .iter()
            .map(|(_, p)| {
                let g = p.grad();
                if g.defined() {
                    g.view([-1])
                } else {
                    p.zeros_like().view([-1])
                }
            })
            .collect();
        let g = Tensor::cat(&grads, 0);
        let _ = self.m.lerp_(&g, 1.0 - self.beta1);
        let _ = self.v.lerp_(&(&g * &g), 1.0 - self.beta2);
        // lr/bias1 * m / (sqrt(v)/sqrt(bias2) + eps) == step * m / (sqrt(v) + eps*sqrt(bias2)).
        let mut denom = self.v.sqrt();
        let _ = denom.g_add_scalar_(self.eps * bias2.sqrt());
        let mut update = self.m.g_div(&denom);
        let _ = update.g_mul_scalar_(lr * bias2.sqrt() / bias1);
        let mut at = 0;
        for (_, p) in &mut self.params {
            let n = p.numel() as i64;
            let _ = p.g_sub_(&update.narrow(0, at, n).view_as(p));
            at += n;
        }
    }

    /// Save the moments (the step count goes into the run's `state.json`), with the parameter names and sizes so a
    /// checkpoint of another network is refused on load.
    pub fn save(&self, path: &Path) -> Result<(), tch::TchError> {
        let sizes = Tensor::from_slice(&self.params.iter().map(|(_, p)| p.numel() as i64).collect::<Vec<_>>());
        Tensor::save_multi(&[("m", &self.m), ("v", &self.v), ("sizes", &sizes)], path)
    }

    /// Restore moments written by [`Adam::save`] for the same network, and the step count.
    pub fn load(&mut self, path: &Path, steps: i64) -> Result<(), String> {
        let saved = Tensor::load_multi(path).map_err(|e| e.to_string())?;
        let get = |k: &str| saved.iter().find(|(n, _)| n == k).map(|(_, t)| t).ok_or(format!("no {k:?} in it"));
        let sizes: Vec<i64> = Vec::<i64>::try_from(get("sizes")?).map_err(|e: tch::TchError| e.to_string())?;
        let want: Vec<i64> = self.params.iter().map(|(_, p)| p.numel() as i64).collect();
        if sizes != want {
            return Err("the optimiser state is of another network".into());
        }
        let _guard = tch::no_grad_guard();
        self.m.copy_(get("m")?);
        self.v.copy_(get("v")?);
        self.t = steps;
        Ok(())
    }
}
