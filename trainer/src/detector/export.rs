// SPDX-License-Identifier: MIT OR Apache-2.0
//! The detector as ONNX, in the YOLOv8 layout: input `images` `[N, 3, H, W]` float32 RGB in [0, 1] (N dynamic),
//! output `output0` `[N, 5, H/4 * W/4]`: per cell cx, cy, w, h in input pixels and the sign score (sigmoid),
//! zero except at 3 x 3 heatmap peaks (CenterNet's decoding, in the graph). Metadata `names` = `{0: 'traffic-sign'}`
//! as Ultralytics writes it, plus `stride` and `imgsz`. BatchNorms are folded into their convolutions.
//!
//! [`reference`] computes the same output with tch, for the parity test.

use tch::{Kind, Tensor};

use super::net::{ConvBn, DetNet};
use super::STRIDE;
use crate::onnx::{Attr, Dim, GraphBuilder};

/// INT64 in onnx.proto's TensorProto.DataType.
const DATA_TYPE_INT64: i32 = 7;
/// Largest log size (in cells) the graph lets through before Exp: boxes stay finite.
const MAX_LOG_SIZE: f32 = 8.0;

fn values(t: &Tensor) -> Vec<f32> {
    let t = t.to_kind(Kind::Float).contiguous().view([-1]);
    Vec::<f32>::try_from(&t).expect("a float tensor converts")
}

/// Conv + BN folded: w' = w * g / sqrt(v + eps), b' = beta - mean * g / sqrt(v + eps).
fn folded(cb: &ConvBn) -> (Vec<f32>, Vec<i64>, Vec<f32>) {
    let bn = &cb.bn;
    let gamma = bn.ws.as_ref().map(values).unwrap_or_else(|| vec![1.0; bn.running_mean.size()[0] as usize]);
    let beta = bn.bs.as_ref().map(values).unwrap_or_else(|| vec![0.0; gamma.len()]);
    let (mean, var) = (values(&bn.running_mean), values(&bn.running_var));
    let w = values(&cb.conv.ws);
    let wd = cb.conv.ws.size();
    let per_out = w.len() / wd[0] as usize;
    let (mut wf, mut bf) = (Vec::with_capacity(w.len()), Vec::with_capacity(gamma.len()));
    for o in 0..gamma.len() {
        let s = gamma[o] / (var[o] + 1e-5).sqrt();
        wf.extend(w[o * per_out..(o + 1) * per_out].iter().map(|v| v * s));
        bf.push(beta[o] - mean[o] * s);
    }
    (wf, wd, bf)
}

fn conv(g: &mut GraphBuilder, name: &str, input: &str, w: &[f32], wd: &[i64], b: &[f32], stride: i64) -> String {
    let wn = g.weight(&format!("{name}.weight"), wd, w);
    let bn = g.weight(&format!("{name}.bias"), &[wd[0]], b);
    let pad = wd[2] / 2;
    g.node(
        "Conv",
        &[input, &wn, &bn],
        vec![
            Attr::Ints("kernel_shape", vec![wd[2], wd[3]]),
            Attr::Ints("strides", vec![stride, stride]),
            Attr::Ints("pads", vec![pad; 4]),
        ],
        None,
    )
}

fn conv_bn_relu(g: &mut GraphBuilder, name: &str, input: &str, cb: &ConvBn) -> String {
    let (w, wd, b) = folded(cb);
    let y = conv(g, name, input, &w, &wd, &b, cb.stride);
    g.node("Relu", &[&y], vec![], None)
}

/// The ONNX bytes of the detector for inputs of `hw` (multiples of 32).
pub fn onnx(net: &DetNet, hw: (i64, i64), doc: &str) -> Vec<u8> {
    let _guard = tch::no_grad_guard();
    let (h, w) = hw;
    let (gh, gw) = (h / STRIDE, w / STRIDE);
    let mut g = GraphBuilder::new("odm-sign-detector");
    let x = g.input("images", &[Dim::Named("N"), Dim::Fixed(3), Dim::Fixed(h), Dim::Fixed(w)]);
    let mut feats = Vec::new();
    let mut y = x;
    for (i, layers) in net.stages.iter().enumerate() {
        for (j, l) in layers.iter().enumerate() {
            y = conv_bn_relu(&mut g, &format!("s{i}.{j}"), &y, l);
        }
        feats.push(y.clone());
    }
    let scales = g.weight("up.scales", &[4], &[1.0, 1.0, 2.0, 2.0]);
    let mut top = feats[4].clone();
    for j in 0..net.lateral.len() {
        let r = conv_bn_relu(&mut g, &format!("td{j}.reduce"), &top, &net.reduce[j]);
        // Resize's defaults: nearest, half_pixel, round_prefer_floor — at 2x, each pixel copied into 2 x 2 as
        // tch's upsample_nearest2d does.
        let up = g.node("Resize", &[&r, "", &scales], vec![], None);
        let lat = conv_bn_relu(&mut g, &format!("td{j}.lateral"), &feats[3 - j], &net.lateral[j]);
        let sum = g.node("Add", &[&lat, &up], vec![], None);
        top = conv_bn_relu(&mut g, &format!("td{j}.smooth"), &sum, &net.smooth[j]);
    }
    let hw_ = values(&net.head.ws);
    let hb = net.head.bs.as_ref().map(values).unwrap_or_else(|| vec![0.0; 5]);
    let cin = net.head.ws.size()[1];
    let part = |from: usize, n: usize| -> (Vec<f32>, Vec<f32>) {
        (hw_[from * cin as usize..(from + n) * cin as usize].to_vec(), hb[from..from + n].to_vec())
    };
    // Score: sigmoid, kept only at 3 x 3 peaks.
    let (w0, b0) = part(0, 1);
    let logit = conv(&mut g, "head.heat", &top, &w0, &[1, cin, 1, 1], &b0, 1);
    let score = g.node("Sigmoid", &[&logit], vec![], None);
    let pool = g.node(
        "MaxPool",
        &[&score],
        vec![
            Attr::Ints("kernel_shape", vec![3, 3]),
            Attr::Ints("strides", vec![1, 1]),
            Attr::Ints("pads", vec![1, 1, 1, 1]),
        ],
        None,
    );
    let peak = g.node("Equal", &[&score, &pool], vec![], None);
    let peak = g.node("Cast", &[&peak], vec![Attr::Int("to", crate::onnx::proto::DATA_TYPE_FLOAT as i64)], None);
    let score = g.node("Mul", &[&score, &peak], vec![], None);
    // Centre: (cell + 0.5 + offset) * stride, with the offset scaled into the weights.
    let s = STRIDE as f32;
    let (w1, b1) = part(1, 2);
    let (w1, b1): (Vec<f32>, Vec<f32>) = (w1.iter().map(|v| v * s).collect(), b1.iter().map(|v| v * s).collect());
    let off = conv(&mut g, "head.offset", &top, &w1, &[2, cin, 1, 1], &b1, 1);
    let mut grid = vec![0.0f32; (2 * gh * gw) as usize];
    for yy in 0..gh {
        for xx in 0..gw {
            let k = (yy * gw + xx) as usize;
            grid[k] = (xx as f32 + 0.5) * s;
            grid[(gh * gw) as usize + k] = (yy as f32 + 0.5) * s;
        }
    }
    let grid = g.weight("grid", &[1, 2, gh, gw], &grid);
    let centre = g.node("Add", &[&off, &grid], vec![], None);
    // Size: exp(log size in cells + ln stride), clipped first so it stays finite.
    let (w2, mut b2) = part(3, 2);
    for b in b2.iter_mut() {
        *b += s.ln();
    }
    let logs = conv(&mut g, "head.size", &top, &w2, &[2, cin, 1, 1], &b2, 1);
    let lo = g.weight("size.min", &[], &[-MAX_LOG_SIZE]);
    let hi = g.weight("size.max", &[], &[MAX_LOG_SIZE + s.ln()]);
    let logs = g.node("Clip", &[&logs, &lo, &hi], vec![], None);
    let size = g.node("Exp", &[&logs], vec![], None);
    let all = g.node("Concat", &[&centre, &size, &score], vec![Attr::Int("axis", 1)], None);
    let shape = g.raw("shape", &[3], DATA_TYPE_INT64, [0i64, 5, -1].iter().flat_map(|v| v.to_le_bytes()).collect());
    g.node("Reshape", &[&all, &shape], vec![], Some("output0"));
    g.output("output0", &[Dim::Named("N"), Dim::Fixed(5), Dim::Fixed(gh * gw)]);
    let imgsz = format!("[{h}, {w}]");
    let stride = STRIDE.to_string();
    let names = format!("{{0: '{}'}}", super::CLASS);
    g.finish_with(
        doc,
        &[("names", &names), ("stride", &stride), ("imgsz", &imgsz), ("task", "detect"), ("author", "odm-train")],
    )
}

/// The exported graph's output computed with tch (eval mode): `[N, 5, H/4 * W/4]`.
pub fn reference(net: &DetNet, x: &Tensor) -> Tensor {
    let _guard = tch::no_grad_guard();
    let y = net.forward_t(x, false);
    let size = y.size();
    let (b, gh, gw) = (size[0], size[2], size[3]);
    let s = STRIDE as f64;
    let score = y.narrow(1, 0, 1).sigmoid();
    let pool = score.max_pool2d([3, 3], [1, 1], [1, 1], [1, 1], false);
    let score = &score * score.eq_tensor(&pool).to_kind(Kind::Float);
    let xs =
        (Tensor::arange(gw, (Kind::Float, tch::Device::Cpu)) + 0.5).view([1, 1, 1, gw]).expand([b, 1, gh, gw], false);
    let ys =
        (Tensor::arange(gh, (Kind::Float, tch::Device::Cpu)) + 0.5).view([1, 1, gh, 1]).expand([b, 1, gh, gw], false);
    let cx = (y.narrow(1, 1, 1) + xs) * s;
    let cy = (y.narrow(1, 2, 1) + ys) * s;
    let wh = (y.narrow(1, 3, 2) + s.ln()).clamp(-(MAX_LOG_SIZE as f64), MAX_LOG_SIZE as f64 + s.ln()).exp();
    Tensor::cat(&[cx, cy, wh, score], 1).view([b, 5, -1])
}
