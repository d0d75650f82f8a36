// SPDX-License-Identifier: MIT OR Apache-2.0
//! ONNX export of a trained [`Net`]: the embedding network only (the classifier of the CE baselines is not part of
//! the bundle), input `[N,3,H,W]` float32 with a dynamic batch dimension, output `[N,D]`, every BatchNorm folded into
//! the convolution before it, opset 17. Written by odm's own protobuf writer; no Python involved.

use tch::{nn, Kind, Tensor};

use super::model::{Backbone, ConvBn, Net};
use crate::onnx::{Attr, Dim, GraphBuilder};

fn values(t: &Tensor) -> Vec<f32> {
    let t = t.to_device(tch::Device::Cpu).to_kind(Kind::Float).contiguous().view([-1]);
    Vec::<f32>::try_from(&t).expect("a float tensor converts")
}

fn dims(t: &Tensor) -> Vec<i64> {
    t.size()
}

/// Conv + BN folded: w' = w * g / sqrt(v + eps), b' = beta - mean * g / sqrt(v + eps).
fn conv_bn(g: &mut GraphBuilder, name: &str, input: &str, cb: &ConvBn) -> String {
    let bn = &cb.bn;
    let eps = 1e-5;
    let gamma = bn.ws.as_ref().map(values).unwrap_or_else(|| vec![1.0; bn.running_mean.size()[0] as usize]);
    let beta = bn.bs.as_ref().map(values).unwrap_or_else(|| vec![0.0; gamma.len()]);
    let mean = values(&bn.running_mean);
    let var = values(&bn.running_var);
    let w = values(&cb.conv.ws);
    let wd = dims(&cb.conv.ws);
    let per_out = w.len() / wd[0] as usize;
    let mut wf = Vec::with_capacity(w.len());
    let mut bf = Vec::with_capacity(gamma.len());
    for o in 0..gamma.len() {
        let s = gamma[o] / (var[o] + eps).sqrt();
        wf.extend(w[o * per_out..(o + 1) * per_out].iter().map(|v| v * s));
        bf.push(beta[o] - mean[o] * s);
    }
    let wn = g.weight(&format!("{name}.weight"), &wd, &wf);
    let bname = g.weight(&format!("{name}.bias"), &[wd[0]], &bf);
    let k = cb.kernel;
    g.node(
        "Conv",
        &[input, &wn, &bname],
        vec![
            Attr::Ints("kernel_shape", vec![k, k]),
            Attr::Ints("strides", vec![cb.stride, cb.stride]),
            Attr::Ints("pads", vec![cb.padding; 4]),
        ],
        None,
    )
}

fn conv(g: &mut GraphBuilder, name: &str, input: &str, c: &nn::Conv2D) -> String {
    let wd = dims(&c.ws);
    let wn = g.weight(&format!("{name}.weight"), &wd, &values(&c.ws));
    let bias = c.bs.as_ref().map(values).unwrap_or_else(|| vec![0.0; wd[0] as usize]);
    let bn = g.weight(&format!("{name}.bias"), &[wd[0]], &bias);
    g.node("Conv", &[input, &wn, &bn], vec![Attr::Ints("kernel_shape", vec![wd[2], wd[3]])], None)
}

/// Gemm with `transB=1`: tch stores Linear weights `[out, in]`.
fn linear(g: &mut GraphBuilder, name: &str, input: &str, l: &nn::Linear, out: Option<&str>) -> String {
    let wd = dims(&l.ws);
    let wn = g.weight(&format!("{name}.weight"), &wd, &values(&l.ws));
    let bias = l.bs.as_ref().map(values).unwrap_or_else(|| vec![0.0; wd[0] as usize]);
    let bn = g.weight(&format!("{name}.bias"), &[wd[0]], &bias);
    g.node("Gemm", &[input, &wn, &bn], vec![Attr::Int("transB", 1)], out)
}

/// The ONNX bytes of the embedding network, with input `input_name` and output `output_name`.
pub fn onnx(net: &Net, name: &str, input_name: &str, output_name: &str) -> Vec<u8> {
    let _guard = tch::no_grad_guard();
    let mut g = GraphBuilder::new(name);
    let (h, w) = net.input;
    let x = g.input(input_name, &[Dim::Named("N"), Dim::Fixed(3), Dim::Fixed(h), Dim::Fixed(w)]);
    let features = match &net.backbone {
        Backbone::Wrn { stem, blocks, .. } => {
            let y = conv_bn(&mut g, "stem", &x, stem);
            let mut y = g.node("Relu", &[&y], vec![], None);
            for (i, b) in blocks.iter().enumerate() {
                let a = conv_bn(&mut g, &format!("b{i}.a"), &y, &b.a);
                let a = g.node("Relu", &[&a], vec![], None);
                let bb = conv_bn(&mut g, &format!("b{i}.b"), &a, &b.b);
                let s = match &b.shortcut {
                    Some(sc) => conv_bn(&mut g, &format!("b{i}.short"), &y, sc),
                    None => y.clone(),
                };
                let sum = g.node("Add", &[&bb, &s], vec![], None);
                y = g.node("Relu", &[&sum], vec![], None);
            }
            let p = g.node("GlobalAveragePool", &[&y], vec![], None);
            g.node("Flatten", &[&p], vec![Attr::Int("axis", 1)], None)
        }
        Backbone::Lenet { c1, c2, fc, .. } => {
            let pool = || vec![Attr::Ints("kernel_shape", vec![2, 2]), Attr::Ints("strides", vec![2, 2])];
            let y = conv(&mut g, "c1", &x, c1);
            let y = g.node("Relu", &[&y], vec![], None);
            let y = g.node("MaxPool", &[&y], pool(), None);
            let y = conv(&mut g, "c2", &y, c2);
            let y = g.node("Relu", &[&y], vec![], None);
            let y = g.node("MaxPool", &[&y], pool(), None);
            let y = g.node("Flatten", &[&y], vec![Attr::Int("axis", 1)], None);
            let y = linear(&mut g, "fc", &y, fc, None);
            g.node("Relu", &[&y], vec![], None)
        }
    };
    linear(&mut g, "embed", &features, &net.embed, Some(output_name));
    g.output(output_name, &[Dim::Named("N"), Dim::Fixed(net.dim)]);
    g.finish(&format!("odm embedding network {} ({})", name, net.arch))
}
