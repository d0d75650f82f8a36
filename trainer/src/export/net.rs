// SPDX-License-Identifier: MIT OR Apache-2.0
//! ONNX export of a trained [`Net`]: the embedding network only (the classifier of the CE baselines is not part of
//! the bundle), input `[N,3,H,W]` float32 with a dynamic batch dimension, output `[N,D]`, every BatchNorm folded into
//! the convolution before it, opset 17. Written by odm's own protobuf writer; no Python involved.

use tch::{nn, Kind, Tensor};

use super::onnx::proto::{DATA_TYPE_FLOAT, DATA_TYPE_FLOAT16};
use super::onnx::{Attr, Dim, GraphBuilder};
use crate::train::model::{Backbone, ConvBn, Net};

pub(crate) fn values(t: &Tensor) -> Vec<f32> {
    let t = t.to_device(tch::Device::Cpu).to_kind(Kind::Float).contiguous().view([-1]);
    Vec::<f32>::try_from(&t).expect("a float tensor converts")
}

fn dims(t: &Tensor) -> Vec<i64> {
    t.size()
}

/// Conv + BN folded (see [`fold`]).
fn conv_bn(g: &mut GraphBuilder, name: &str, input: &str, cb: &ConvBn) -> String {
    let f = fold(cb);
    let wn = g.weight(&format!("{name}.weight"), &f.wd, &f.w);
    let bname = g.weight(&format!("{name}.bias"), &[f.wd[0]], &f.b);
    f.node(g, input, &wn, &bname)
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
    graph(net, name, input_name, output_name, false)
}

/// [`onnx`] with float16 weights and float16 computation (for GPUs), input and output still float32: a Cast after
/// the input and one before the output.
pub fn onnx_fp16(net: &Net, name: &str, input_name: &str, output_name: &str) -> Vec<u8> {
    graph(net, name, input_name, output_name, true)
}

fn graph(net: &Net, name: &str, input_name: &str, output_name: &str, half: bool) -> Vec<u8> {
    let _guard = tch::no_grad_guard();
    let mut g = if half { GraphBuilder::half(name) } else { GraphBuilder::new(name) };
    let (h, w) = net.input;
    let x = g.input(input_name, &[Dim::Named("N"), Dim::Fixed(3), Dim::Fixed(h), Dim::Fixed(w)]);
    let x = if half { g.node("Cast", &[&x], vec![Attr::Int("to", DATA_TYPE_FLOAT16 as i64)], None) } else { x };
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
    if half {
        let e = linear(&mut g, "embed", &features, &net.embed, None);
        g.node("Cast", &[&e], vec![Attr::Int("to", DATA_TYPE_FLOAT as i64)], Some(output_name));
    } else {
        linear(&mut g, "embed", &features, &net.embed, Some(output_name));
    }
    g.output(output_name, &[Dim::Named("N"), Dim::Fixed(net.dim)]);
    let precision = if half { ", fp16" } else { "" };
    g.finish(&format!("odm embedding network {} ({}){precision}", name, net.arch))
}

/// A Conv + BN folded for the int8 export: the float weights and bias, their shapes, and the tch tensors that run it.
struct Folded {
    w: Vec<f32>,
    wd: Vec<i64>,
    b: Vec<f32>,
    wt: Tensor,
    bt: Tensor,
    kernel: i64,
    stride: i64,
    padding: i64,
}

/// Conv + BN folded: w' = w * g / sqrt(v + eps), b' = beta - mean * g / sqrt(v + eps).
fn fold(cb: &ConvBn) -> Folded {
    let bn = &cb.bn;
    let eps = 1e-5;
    let gamma = bn.ws.as_ref().map(values).unwrap_or_else(|| vec![1.0; bn.running_mean.size()[0] as usize]);
    let beta = bn.bs.as_ref().map(values).unwrap_or_else(|| vec![0.0; gamma.len()]);
    let (mean, var) = (values(&bn.running_mean), values(&bn.running_var));
    let w = values(&cb.conv.ws);
    let wd = dims(&cb.conv.ws);
    let per_out = w.len() / wd[0] as usize;
    let (mut wf, mut bf) = (Vec::with_capacity(w.len()), Vec::with_capacity(gamma.len()));
    for o in 0..gamma.len() {
        let s = gamma[o] / (var[o] + eps).sqrt();
        wf.extend(w[o * per_out..(o + 1) * per_out].iter().map(|v| v * s));
        bf.push(beta[o] - mean[o] * s);
    }
    let wt = Tensor::from_slice(&wf).view(wd.as_slice());
    let bt = Tensor::from_slice(&bf);
    Folded { w: wf, wd, b: bf, wt, bt, kernel: cb.kernel, stride: cb.stride, padding: cb.padding }
}

impl Folded {
    fn run(&self, x: &Tensor) -> Tensor {
        x.conv2d(&self.wt, Some(&self.bt), [self.stride; 2], [self.padding; 2], [1, 1], 1)
    }

    /// The Conv node on `input` with the weight and bias values named (float, or dequantized int8).
    fn node(&self, g: &mut GraphBuilder, input: &str, weight: &str, bias: &str) -> String {
        g.node(
            "Conv",
            &[input, weight, bias],
            vec![
                Attr::Ints("kernel_shape", vec![self.kernel, self.kernel]),
                Attr::Ints("strides", vec![self.stride, self.stride]),
                Attr::Ints("pads", vec![self.padding; 4]),
            ],
            None,
        )
    }
}

/// The range of a tensor's values, widened to hold 0 (so 0 is exact after quantization).
pub(crate) fn range(t: &Tensor) -> (f32, f32) {
    (t.min().double_value(&[]).min(0.0) as f32, t.max().double_value(&[]).max(0.0) as f32)
}

/// Activations as uint8 (asymmetric, from the calibrated range): QuantizeLinear then DequantizeLinear. Returns the
/// dequantized value's name and its scale.
pub(crate) fn act(g: &mut GraphBuilder, name: &str, x: &str, (lo, hi): (f32, f32)) -> (String, f32) {
    let scale = ((hi - lo) / 255.0).max(1e-8);
    let zp = (-lo / scale).round().clamp(0.0, 255.0) as u8;
    let s = g.weight(&format!("{name}.scale"), &[], &[scale]);
    let z = g.raw(&format!("{name}.zero_point"), &[], super::onnx::proto::DATA_TYPE_UINT8, vec![zp]);
    let q = g.node("QuantizeLinear", &[x, &s, &z], vec![], None);
    (g.node("DequantizeLinear", &[&q, &s, &z], vec![], None), scale)
}

/// The largest quantized weight: 7 bits (see [`weights_q`]).
const W_Q_MAX: f32 = 63.0;

/// Weights as int8 with 7 bits of range ([-63, 63], symmetric per output channel, axis 0), and the bias as int32 at
/// scale input x weight, both dequantized; returns (weight, bias) names. Seven bits, not eight: on x86 CPUs with AVX2
/// but no VNNI (AMD Zen 3, Intel before Ice Lake) ONNX Runtime's uint8 x int8 kernels add two products in 16 bits
/// (VPMADDUBSW), which saturates past 32,767; 255 x 63 x 2 stays under it, 255 x 127 x 2 does not. Full 8-bit weights
/// put the embeddings 12.6% off the float network's on such a CPU (`int8_export_runs_in_onnx_runtime_close_to_the_
/// float_network`, on an AMD EPYC of family 25); the earlier VMs, on which it passed, kept under its 10%. ONNX
/// Runtime's own quantizer calls this `reduce_range`.
pub(crate) fn weights_q(
    g: &mut GraphBuilder,
    name: &str,
    w: &[f32],
    wd: &[i64],
    b: &[f32],
    x_scale: f32,
) -> (String, String) {
    use super::onnx::proto::{DATA_TYPE_INT32, DATA_TYPE_INT8};
    let c = wd[0] as usize;
    let per = w.len() / c;
    let scales: Vec<f32> = (0..c)
        .map(|o| (w[o * per..(o + 1) * per].iter().fold(0f32, |m, v| m.max(v.abs())) / W_Q_MAX).max(1e-12))
        .collect();
    let wq: Vec<u8> =
        w.iter().enumerate().map(|(i, v)| (v / scales[i / per]).round().clamp(-W_Q_MAX, W_Q_MAX) as i8 as u8).collect();
    let wq = g.raw(&format!("{name}.weight_q"), wd, DATA_TYPE_INT8, wq);
    let ws = g.weight(&format!("{name}.weight_scale"), &[c as i64], &scales);
    let wz = g.raw(&format!("{name}.weight_zero_point"), &[c as i64], DATA_TYPE_INT8, vec![0; c]);
    let wdq = g.node("DequantizeLinear", &[&wq, &ws, &wz], vec![Attr::Int("axis", 0)], None);
    let bs: Vec<f32> = scales.iter().map(|s| s * x_scale).collect();
    let bq: Vec<u8> = b
        .iter()
        .zip(&bs)
        .flat_map(|(v, s)| ((v / s).round().clamp(i32::MIN as f32, i32::MAX as f32) as i32).to_le_bytes())
        .collect();
    let bq = g.raw(&format!("{name}.bias_q"), &[c as i64], DATA_TYPE_INT32, bq);
    let bsn = g.weight(&format!("{name}.bias_scale"), &[c as i64], &bs);
    let bz = g.raw(&format!("{name}.bias_zero_point"), &[c as i64], DATA_TYPE_INT32, vec![0; 4 * c]);
    let bdq = g.node("DequantizeLinear", &[&bq, &bsn, &bz], vec![Attr::Int("axis", 0)], None);
    (wdq, bdq)
}

fn conv_q(g: &mut GraphBuilder, name: &str, x: &str, x_scale: f32, f: &Folded) -> String {
    let (w, b) = weights_q(g, name, &f.w, &f.wd, &f.b, x_scale);
    f.node(g, x, &w, &b)
}

/// The embedding network as an INT8 QDQ model: int8 weights per output channel, int32 biases, uint8 activations
/// with ranges calibrated on `calib` (training crops, `[N,3,H,W]`), float input and output. ONNX Runtime fuses the
/// QuantizeLinear/DequantizeLinear pairs around each Conv, Add and Gemm into its integer kernels. Wide-ResNets only.
pub fn onnx_int8(
    net: &Net,
    name: &str,
    input_name: &str,
    output_name: &str,
    calib: &Tensor,
) -> Result<Vec<u8>, String> {
    let _guard = tch::no_grad_guard();
    let Backbone::Wrn { stem, blocks, .. } = &net.backbone else {
        return Err(format!("int8 export is for Wide-ResNets; this run's network is {}", net.arch));
    };
    let x = calib.to_device(tch::Device::Cpu).to_kind(Kind::Float);
    // Calibration: the folded network run in tch, the range of every value that gets quantized.
    let stem_f = fold(stem);
    let blocks_f: Vec<(Folded, Folded, Option<Folded>)> =
        blocks.iter().map(|b| (fold(&b.a), fold(&b.b), b.shortcut.as_ref().map(fold))).collect();
    let mut ranges = vec![range(&x)];
    let mut y = stem_f.run(&x).relu();
    ranges.push(range(&y));
    for (a, b, short) in &blocks_f {
        let ya = a.run(&y).relu();
        let yb = b.run(&ya);
        let s = short.as_ref().map(|f| f.run(&y));
        ranges.push(range(&ya));
        ranges.push(range(&yb));
        if let Some(s) = &s {
            ranges.push(range(s));
        }
        y = (yb + s.unwrap_or(y)).relu();
        ranges.push(range(&y));
    }
    let pooled = y.adaptive_avg_pool2d([1, 1]).flatten(1, -1);
    ranges.push(range(&pooled));

    let mut r = ranges.into_iter();
    let mut next = || r.next().expect("one range per quantized value");
    let mut g = GraphBuilder::new(name);
    let (h, w) = net.input;
    let input = g.input(input_name, &[Dim::Named("N"), Dim::Fixed(3), Dim::Fixed(h), Dim::Fixed(w)]);
    let (xq, xs) = act(&mut g, "input", &input, next());
    let c = conv_q(&mut g, "stem", &xq, xs, &stem_f);
    let c = g.node("Relu", &[&c], vec![], None);
    let (mut y, mut ys) = act(&mut g, "stem.out", &c, next());
    for (i, (a, b, short)) in blocks_f.iter().enumerate() {
        let ca = conv_q(&mut g, &format!("b{i}.a"), &y, ys, a);
        let ca = g.node("Relu", &[&ca], vec![], None);
        let (ya, yas) = act(&mut g, &format!("b{i}.a.out"), &ca, next());
        let cb = conv_q(&mut g, &format!("b{i}.b"), &ya, yas, b);
        let (yb, _) = act(&mut g, &format!("b{i}.b.out"), &cb, next());
        let s = match short {
            Some(f) => {
                let cs = conv_q(&mut g, &format!("b{i}.short"), &y, ys, f);
                act(&mut g, &format!("b{i}.short.out"), &cs, next()).0
            }
            None => y.clone(),
        };
        let sum = g.node("Add", &[&yb, &s], vec![], None);
        let sum = g.node("Relu", &[&sum], vec![], None);
        (y, ys) = act(&mut g, &format!("b{i}.out"), &sum, next());
    }
    let p = g.node("GlobalAveragePool", &[&y], vec![], None);
    let p = g.node("Flatten", &[&p], vec![Attr::Int("axis", 1)], None);
    let (pq, ps) = act(&mut g, "pool.out", &p, next());
    let ew = values(&net.embed.ws);
    let ewd = dims(&net.embed.ws);
    let eb = net.embed.bs.as_ref().map(values).unwrap_or_else(|| vec![0.0; ewd[0] as usize]);
    let (wq, bq) = weights_q(&mut g, "embed", &ew, &ewd, &eb, ps);
    g.node("Gemm", &[&pq, &wq, &bq], vec![Attr::Int("transB", 1)], Some(output_name));
    g.output(output_name, &[Dim::Named("N"), Dim::Fixed(net.dim)]);
    Ok(g.finish(&format!("odm embedding network {} ({}), int8 QDQ", name, net.arch)))
}
