// SPDX-License-Identifier: MIT OR Apache-2.0
//! Adam whose moments can be saved and restored, so that `--resume` continues the same optimisation instead of
//! restarting Adam from zero (tch's `nn::Optimizer` keeps its state inside libtorch, out of reach).
//!
//! The update is libtorch's `torch.optim.Adam` without weight decay: `m ← β1·m + (1−β1)·g`, `v ← β2·v + (1−β2)·g²`,
//! `p ← p − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε)`.

use std::path::Path;

use tch::{nn::VarStore, Tensor};

pub struct Adam {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    /// Steps taken so far (the `t` of the bias corrections).
    t: i64,
    /// Trainable variables by name, sorted, with their first and second moments.
    params: Vec<(String, Tensor, Tensor, Tensor)>,
}

impl Adam {
    /// Adam over the trainable variables of `vs`, with PyTorch's defaults (β1 0.9, β2 0.999, ε 1e-8).
    pub fn new(vs: &VarStore, lr: f64) -> Self {
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let params = vars
            .into_iter()
            .map(|(name, p)| {
                let m = p.zeros_like();
                let v = p.zeros_like();
                (name, p, m, v)
            })
            .collect();
        Adam { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, t: 0, params }
    }

    /// Steps taken so far.
    pub fn steps(&self) -> i64 {
        self.t
    }

    /// Back-propagate `loss`, update every parameter, clear the gradients.
    pub fn backward_step(&mut self, loss: &Tensor) {
        for (_, p, _, _) in &mut self.params {
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
        for (_, p, m, v) in &mut self.params {
            let g = p.grad();
            if !g.defined() {
                continue;
            }
            let _ = m.g_mul_scalar_(self.beta1);
            let _ = m.g_add_(&(&g * (1.0 - self.beta1)));
            let _ = v.g_mul_scalar_(self.beta2);
            let _ = v.g_add_(&(&g * &g * (1.0 - self.beta2)));
            let denom = v.sqrt() / bias2.sqrt() + self.eps;
            let _ = p.g_sub_(&(m.g_div(&denom) * (self.lr / bias1)));
        }
    }

    /// Save the moments (the step count goes into the run's `state.json`).
    pub fn save(&self, path: &Path) -> Result<(), tch::TchError> {
        let named: Vec<(String, &Tensor)> =
            self.params.iter().flat_map(|(n, _, m, v)| [(format!("m.{n}"), m), (format!("v.{n}"), v)]).collect();
        Tensor::save_multi(&named, path)
    }

    /// Restore moments written by [`Adam::save`] for the same network, and the step count.
    pub fn load(&mut self, path: &Path, steps: i64) -> Result<(), String> {
        let saved = Tensor::load_multi(path).map_err(|e| e.to_string())?;
        let _guard = tch::no_grad_guard();
        for (n, p, m, v) in &mut self.params {
            for (prefix, dst) in [("m.", &mut *m), ("v.", &mut *v)] {
                let key = format!("{prefix}{n}");
                let src = saved
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, t)| t)
                    .ok_or_else(|| format!("no optimiser state for {n}: the checkpoint is of another network"))?;
                if src.size() != p.size() {
                    return Err(format!(
                        "optimiser state for {n} has shape {:?}, the network {:?}",
                        src.size(),
                        p.size()
                    ));
                }
                dst.copy_(&src.to_device(p.device()));
            }
        }
        self.t = steps;
        Ok(())
    }
}
