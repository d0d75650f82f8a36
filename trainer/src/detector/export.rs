// SPDX-License-Identifier: MIT OR Apache-2.0
//! The detector as ONNX, in the YOLOv8 layout: input `images` `[N, 3, H, W]` float32 RGB in [0, 1] (N dynamic),
//! output `output0` `[N, 5, H/4 * W/4]`: per cell cx, cy, w, h in input pixels and the sign score (sigmoid),
//! zero except at 3 x 3 heatmap peaks (CenterNet's decoding, in the graph). Metadata `names` = `{0: 'traffic-sign'}`
//! as Ultralytics writes it, plus `stride` and `imgsz`. BatchNorms are folded into their convolutions.
//!
//! [`onnx_int8`] writes the same graph with the backbone and the top-down path in INT8 QDQ (int8 weights per output
//! channel, uint8 activations calibrated on training images), the head and the decoding in float.
//!
//! [`reference`] computes the same output with tch, for the parity test.

use tch::{Kind, Tensor};

use super::net::{ConvBn, DetNet};
use super::STRIDE;
use crate::export::onnx::{Attr, Dim, GraphBuilder};

/// INT64 in onnx.proto's TensorProto.DataType.
const DATA_TYPE_INT64: i32 = 7;
/// Largest log size (in cells) the graph lets through before Exp: boxes stay finite.
const MAX_LOG_SIZE: f32 = 8.0;

use crate::export::net::{act, range, values, weights_q};

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

fn conv_node(g: &mut GraphBuilder, input: &str, weight: &str, bias: &str, wd: &[i64], stride: i64) -> String {
    let pad = wd[2] / 2;
    g.node(
        "Conv",
        &[input, weight, bias],
        vec![
            Attr::Ints("kernel_shape", vec![wd[2], wd[3]]),
            Attr::Ints("strides", vec![stride, stride]),
            Attr::Ints("pads", vec![pad; 4]),
        ],
        None,
    )
}

fn conv(g: &mut GraphBuilder, name: &str, input: &str, w: &[f32], wd: &[i64], b: &[f32], stride: i64) -> String {
    let wn = g.weight(&format!("{name}.weight"), wd, w);
    let bn = g.weight(&format!("{name}.bias"), &[wd[0]], b);
    conv_node(g, input, &wn, &bn, wd, stride)
}

/// How the backbone and the top-down path are written: in float, or in INT8 QDQ with the calibrated range of each
/// quantized value, in the order the graph is built.
enum Precision {
    Float,
    Int8(std::vec::IntoIter<(f32, f32)>),
}

/// A value of the graph, and in INT8 the scale it was quantized at (the bias of the convolution reading it is
/// quantized at that scale times the weight's).
type Value = (String, f32);

impl Precision {
    /// Quantize `x` (QuantizeLinear, DequantizeLinear) at the next calibrated range; unchanged in float.
    fn act(&mut self, g: &mut GraphBuilder, name: &str, x: String) -> Value {
        match self {
            Precision::Float => (x, 1.0),
            Precision::Int8(ranges) => {
                act(g, name, &x, ranges.next().expect("one calibrated range per quantized value"))
            }
        }
    }

    /// Conv (BatchNorm folded) and ReLU, the output quantized in INT8.
    fn conv_bn_relu(&mut self, g: &mut GraphBuilder, name: &str, (x, xs): &Value, cb: &ConvBn) -> Value {
        let (w, wd, b) = folded(cb);
        let y = match self {
            Precision::Float => conv(g, name, x, &w, &wd, &b, cb.stride),
            Precision::Int8(_) => {
                let (wq, bq) = weights_q(g, name, &w, &wd, &b, *xs);
                conv_node(g, x, &wq, &bq, &wd, cb.stride)
            }
        };
        let y = g.node("Relu", &[&y], vec![], None);
        self.act(g, &format!("{name}.out"), y)
    }
}

/// The ONNX bytes of the detector for inputs of `hw` (multiples of 32).
pub fn onnx(net: &DetNet, hw: (i64, i64), doc: &str) -> Vec<u8> {
    graph(net, hw, doc, Precision::Float)
}

/// The ONNX bytes of the detector with its backbone and top-down path in INT8 (QDQ: ONNX Runtime fuses them into
/// integer convolutions), activation ranges calibrated on `calib` (`[N, 3, H, W]` training images in [0, 1]); the
/// head, the sigmoid and the peak decoding stay in float.
pub fn onnx_int8(net: &DetNet, hw: (i64, i64), doc: &str, calib: &Tensor) -> Vec<u8> {
    let _guard = tch::no_grad_guard();
    let x = calib.to_device(tch::Device::Cpu).to_kind(Kind::Float);
    // The ranges in the order `graph` quantizes: the input, each stage's layers, then per top-down level the reduce,
    // its upsampling (the same values), the lateral, the sum and the smoothing.
    let mut ranges = vec![range(&x)];
    let mut feats = Vec::new();
    let mut y = x;
    for layers in &net.stages {
        for l in layers {
            y = l.forward_t(&y, false);
            ranges.push(range(&y));
        }
        feats.push(y.shallow_clone());
    }
    let mut top = feats[4].shallow_clone();
    for j in 0..net.lateral.len() {
        let r = net.reduce[j].forward_t(&top, false);
        ranges.push(range(&r));
        ranges.push(range(&r));
        let (h, w) = (r.size()[2], r.size()[3]);
        let up = r.upsample_nearest2d([h * 2, w * 2], 2.0, 2.0);
        let lat = net.lateral[j].forward_t(&feats[3 - j], false);
        ranges.push(range(&lat));
        let sum = lat + up;
        ranges.push(range(&sum));
        top = net.smooth[j].forward_t(&sum, false);
        ranges.push(range(&top));
    }
    graph(net, hw, &format!("{doc}, int8 QDQ"), Precision::Int8(ranges.into_iter()))
}

fn graph(net: &DetNet, hw: (i64, i64), doc: &str, mut p: Precision) -> Vec<u8> {
    let _guard = tch::no_grad_guard();
    let (h, w) = hw;
    let (gh, gw) = (h / STRIDE, w / STRIDE);
    let mut g = GraphBuilder::new("odm-sign-detector");
    let x = g.input("images", &[Dim::Named("N"), Dim::Fixed(3), Dim::Fixed(h), Dim::Fixed(w)]);
    let mut feats = Vec::new();
    let mut y = p.act(&mut g, "images", x);
    for (i, layers) in net.stages.iter().enumerate() {
        for (j, l) in layers.iter().enumerate() {
            y = p.conv_bn_relu(&mut g, &format!("s{i}.{j}"), &y, l);
        }
        feats.push(y.clone());
    }
    let scales = g.weight("up.scales", &[4], &[1.0, 1.0, 2.0, 2.0]);
    let mut top = feats[4].clone();
    for j in 0..net.lateral.len() {
        let r = p.conv_bn_relu(&mut g, &format!("td{j}.reduce"), &top, &net.reduce[j]);
        // Resize's defaults: nearest, half_pixel, round_prefer_floor — at 2x, each pixel copied into 2 x 2 as
        // tch's upsample_nearest2d does.
        let up = g.node("Resize", &[&r.0, "", &scales], vec![], None);
        let up = p.act(&mut g, &format!("td{j}.up"), up);
        let lat = p.conv_bn_relu(&mut g, &format!("td{j}.lateral"), &feats[3 - j], &net.lateral[j]);
        let sum = g.node("Add", &[&lat.0, &up.0], vec![], None);
        let sum = p.act(&mut g, &format!("td{j}.sum"), sum);
        top = p.conv_bn_relu(&mut g, &format!("td{j}.smooth"), &sum, &net.smooth[j]);
    }
    let top = top.0;
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
    let peak =
        g.node("Cast", &[&peak], vec![Attr::Int("to", crate::export::onnx::proto::DATA_TYPE_FLOAT as i64)], None);
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
