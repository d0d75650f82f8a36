// SPDX-License-Identifier: MIT OR Apache-2.0
//! Export parity: the ONNX file odm writes, run by ONNX Runtime, gives the training framework's eval-mode output.

use odm_trainer::export::net as export;
use odm_trainer::train::model::{Arch, Net};
use ort::session::Session;
use ort::value::TensorRef;
use tch::{nn, Device, Kind, Tensor};

fn ort_env() -> ort::environment::Environment {
    // The trainer's own lookup (ORT_DYLIB_PATH, ODM_ORT_DIR, the bootstrap folder).
    odm_trainer::eval::onnx::environment().expect("ONNX Runtime (run scripts/bootstrap.sh)")
}

fn parity(arch: Arch, size: i64, dim: i64, env: &ort::environment::Environment) {
    tch::manual_seed(3);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = Net::new(&vs.root(), arch, size, size, dim, None);
    // A few training-mode passes so BatchNorm's running statistics are not the identity.
    for _ in 0..3 {
        let _ = net.embed_t(&(Tensor::randn([8, 3, size, size], (Kind::Float, Device::Cpu)) * 2.0 + 0.3), true);
    }
    let x = Tensor::randn([5, 3, size, size], (Kind::Float, Device::Cpu));
    let want = tch::no_grad(|| net.embed_t(&x, false));
    let want = Vec::<f32>::try_from(&want.contiguous().view([-1])).unwrap();

    let bytes = export::onnx(&net, "parity", "input", "embedding");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    std::fs::write(&path, &bytes).unwrap();
    let mut session = Session::builder(env).unwrap().commit_from_file(&path).unwrap();
    let xs = Vec::<f32>::try_from(&x.contiguous().view([-1])).unwrap();
    let input = ndarray::Array4::from_shape_vec((5, 3, size as usize, size as usize), xs).unwrap();
    let out = session.run(ort::inputs!["input" => TensorRef::from_array_view(&input).unwrap()]).unwrap();
    let (shape, got) = out["embedding"].try_extract_tensor::<f32>().unwrap();
    assert_eq!(shape.iter().copied().collect::<Vec<_>>(), [5, dim]);
    let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    let scale = want.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-4 * scale.max(1.0), "{arch}: largest difference {worst} (values up to {scale})");
}

#[test]
fn exported_networks_match_tch_in_onnx_runtime() {
    let env = ort_env();
    parity(Arch::Wrn { depth: 10, width: 1 }, 32, 32, &env);
    parity(Arch::Wrn { depth: 16, width: 2 }, 24, 8, &env);
    parity(Arch::Lenet, 28, 5, &env);
}

/// Run an ONNX model on `x` (`[n,3,s,s]`) in ONNX Runtime; the embeddings.
fn run_onnx(env: &ort::environment::Environment, bytes: &[u8], x: &Tensor) -> Vec<f32> {
    let size = x.size();
    let mut session = Session::builder(env).unwrap().commit_from_memory(bytes).unwrap();
    let xs = Vec::<f32>::try_from(&x.contiguous().view([-1])).unwrap();
    let dims = (size[0] as usize, 3, size[2] as usize, size[3] as usize);
    let input = ndarray::Array4::from_shape_vec(dims, xs).unwrap();
    let out = session.run(ort::inputs!["input" => TensorRef::from_array_view(&input).unwrap()]).unwrap();
    out["embedding"].try_extract_tensor::<f32>().unwrap().1.to_vec()
}

#[test]
fn int8_export_runs_in_onnx_runtime_close_to_the_float_network() {
    // A WRN-10-1 with trained BatchNorm statistics, calibrated on one set of crops and compared on another: the int8
    // embeddings stay close to the float ones (relative error over the batch), and a LeNet is refused by name.
    let env = ort_env();
    tch::manual_seed(5);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = Net::new(&vs.root(), Arch::Wrn { depth: 10, width: 1 }, 32, 32, 32, None);
    for _ in 0..3 {
        let _ = net.embed_t(&(Tensor::rand([16, 3, 32, 32], (Kind::Float, Device::Cpu)) * 4.0 - 2.0), true);
    }
    let calib = Tensor::rand([64, 3, 32, 32], (Kind::Float, Device::Cpu)) * 4.0 - 2.0;
    let x = Tensor::rand([16, 3, 32, 32], (Kind::Float, Device::Cpu)) * 4.0 - 2.0;
    let fp32 = run_onnx(&env, &export::onnx(&net, "m", "input", "embedding"), &x);
    let int8 = export::onnx_int8(&net, "m", "input", "embedding", &calib).unwrap();
    let q = run_onnx(&env, &int8, &x);
    assert_eq!(q.len(), fp32.len());
    let err: f32 = q.iter().zip(&fp32).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt();
    let norm: f32 = fp32.iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!(err / norm < 0.1, "int8 embeddings are {:.1}% off the float ones", 100.0 * err / norm);
    eprintln!("int8 relative error {:.2}%", 100.0 * err / norm);

    let lenet_vs = nn::VarStore::new(Device::Cpu);
    let lenet = Net::new(&lenet_vs.root(), Arch::Lenet, 28, 28, 5, None);
    let e = export::onnx_int8(
        &lenet,
        "l",
        "input",
        "embedding",
        &Tensor::zeros([1, 3, 28, 28], (Kind::Float, Device::Cpu)),
    )
    .unwrap_err();
    assert!(e.contains("Wide-ResNets") && e.contains("lenet"), "{e}");
}

#[test]
fn fp16_export_runs_in_onnx_runtime_close_to_the_float_network() {
    // Float16 weights and activations (ONNX Runtime on CPU casts to float32 around nodes without a float16 kernel):
    // float32 in and out, embeddings within float16 rounding of the float ones, for both architectures.
    let env = ort_env();
    tch::manual_seed(6);
    for (arch, size) in [(Arch::Wrn { depth: 10, width: 1 }, 32), (Arch::Lenet, 28)] {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = Net::new(&vs.root(), arch, size, size, 16, None);
        for _ in 0..3 {
            let _ = net.embed_t(&(Tensor::rand([16, 3, size, size], (Kind::Float, Device::Cpu)) * 4.0 - 2.0), true);
        }
        let x = Tensor::rand([8, 3, size, size], (Kind::Float, Device::Cpu)) * 4.0 - 2.0;
        let fp32 = run_onnx(&env, &export::onnx(&net, "m", "input", "embedding"), &x);
        let half = export::onnx_fp16(&net, "m", "input", "embedding");
        let h = run_onnx(&env, &half, &x);
        assert_eq!(h.len(), fp32.len());
        let err: f32 = h.iter().zip(&fp32).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt();
        let norm: f32 = fp32.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!(err / norm < 0.01, "{arch}: fp16 embeddings are {:.2}% off the float ones", 100.0 * err / norm);
        assert!(err > 0.0, "{arch}: the fp16 network computed exactly the float one: not float16");
        eprintln!("{arch}: fp16 relative error {:.3}%", 100.0 * err / norm);
    }
}
