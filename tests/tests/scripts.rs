// SPDX-License-Identifier: MIT OR Apache-2.0
//! The scripts as a user runs them, from their own folders, with paths holding spaces, with bad input: they check it
//! before touching any output, leave earlier results as they were when a run fails, and leave no temporary file.
//! And odmexport under gst-launch with a file size limit (`ulimit -f`): an error naming the file, whole lines only.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use odm_e2e::*;

fn odm_train() -> PathBuf {
    let t = target_dir().join("odm-train");
    assert!(t.exists(), "{} missing: cargo build --workspace first", t.display());
    t
}

fn model() -> PathBuf {
    repo().join("models/signs/signs.onnx")
}

/// A 10-frame clip (160x120, 10 fps, H.264 in MP4) and a ROI file with one box on every frame, under `dir`.
fn footage(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    fs::create_dir_all(dir).unwrap();
    let clip = dir.join(format!("{name}.mp4"));
    let out = gst_tool("gst-launch-1.0", &dir.join("make.registry.bin"))
        .args(["-q", "videotestsrc", "num-buffers=10", "!", "video/x-raw,width=160,height=120,framerate=10/1"])
        .args(["!", "x264enc", "!", "mp4mux", "!", "filesink", &format!("location={}", clip.display())])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let rois = dir.join(format!("{name}.rois.jsonl"));
    let lines: String = (0..10)
        .map(|f| format!("{{\"frame\": {f}, \"rois\": [{{\"x\": 20, \"y\": 20, \"w\": 40, \"h\": 40, \"id\": 1}}]}}\n"))
        .collect();
    fs::write(&rois, lines).unwrap();
    (clip, rois)
}

/// A script of the checkout run from `cwd` with the built plugin and odm-train (nothing built).
fn script(name: &str, cwd: &Path, registry: &Path) -> Command {
    let mut c = gst_tool(repo().join(name), registry);
    c.current_dir(cwd).env("ODM_TRAIN", odm_train()).env("MODEL", model());
    c
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// Files a run left in a temporary folder. ONNX Runtime keeps a `.ses` file of its own there: not the script's.
fn left_in(tmp: &Path) -> Vec<String> {
    files_in(tmp).into_iter().filter(|f| f != ".ses").collect()
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

#[test]
fn classify_clip_takes_paths_with_spaces_and_a_failed_run_keeps_the_earlier_results() {
    let dir = tempfile::tempdir().unwrap();
    let foot = dir.path().join("my footage");
    let (clip, rois) = footage(&foot, "drive 1");
    let out_dir = dir.path().join("out put");
    let registry = dir.path().join("registry.bin");
    let classify = |args: &[&str]| {
        script("pipelines/classify-clip.sh", &foot, &registry).env("OUT", &out_dir).args(args).output().unwrap()
    };
    let results = out_dir.join("drive 1.results.jsonl");
    let video = out_dir.join("drive 1.annotated.mp4");

    // Run from the footage folder, relative names with spaces.
    let out = classify(&["drive 1.mp4", "drive 1.rois.jsonl"]);
    assert!(out.status.success(), "{}", text(&out));
    let lines = fs::read_to_string(&results).unwrap();
    assert_eq!(lines.lines().count(), 10, "{lines}");
    assert!(lines.lines().all(|l| l.contains("\"verdict\"")), "every frame's box classified: {lines}");
    let before = (fs::read(&results).unwrap(), fs::read(&video).unwrap());
    assert!(!before.1.is_empty());
    let kept = || {
        assert_eq!(fs::read(&results).unwrap(), before.0, "the earlier results are kept");
        assert_eq!(fs::read(&video).unwrap(), before.1, "the earlier video is kept");
        assert_eq!(files_in(&out_dir), ["drive 1.annotated.mp4", "drive 1.results.jsonl"], "no file left behind");
    };

    // A missing ROI file, clip or model: refused before anything is written (it used to truncate both outputs).
    let out = classify(&["drive 1.mp4", "missing.jsonl"]);
    assert_eq!(code(&out), Some(2), "{}", text(&out));
    assert!(text(&out).contains("missing.jsonl: no such file"), "{}", text(&out));
    kept();
    let out = classify(&["nothing here.mp4"]);
    assert_eq!(code(&out), Some(2), "{}", text(&out));
    assert!(text(&out).contains("nothing here.mp4: no such file"), "{}", text(&out));
    kept();
    let out = script("pipelines/classify-clip.sh", &foot, &registry)
        .env("OUT", &out_dir)
        .env("MODEL", foot.join("none.onnx"))
        .args([&clip, &rois])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(2), "{}", text(&out));
    assert!(text(&out).contains("none.onnx: no such file"), "{}", text(&out));
    kept();

    // A run that fails in the pipeline (a bad ROI line): the error is said, nothing is left, no 0-byte file.
    let bad = foot.join("bad rois.jsonl");
    fs::write(&bad, "{\"frame\": 0, \"rois\": [{\"x\": \"a\", \"y\": 1, \"w\": 4, \"h\": 4}]}\n").unwrap();
    let out = classify(&["drive 1.mp4", "bad rois.jsonl"]);
    assert_eq!(code(&out), Some(1), "{}", text(&out));
    assert!(text(&out).contains("bad rois.jsonl:1: rois[0].x: expected a number"), "{}", text(&out));
    assert!(text(&out).contains("earlier results"), "{}", text(&out));
    kept();

    // Without ROIs: a detector and odmtrack on the same clip, replacing the results. By default odmdetect with the
    // shipped detector (its start is logged: the file and the layout), with DETECTOR=proposals odmproposals; another
    // DETECTOR is refused before anything is written.
    let without_rois = |detector: Option<&str>| {
        let mut c = script("pipelines/classify-clip.sh", &foot, &registry);
        c.env("OUT", &out_dir).env("GST_DEBUG", "odmdetect:4").env("GST_DEBUG_NO_COLOR", "1").arg("drive 1.mp4");
        if let Some(d) = detector {
            c.env("DETECTOR", d);
        }
        c.output().unwrap()
    };
    let detector_started = "models/detector/detector.onnx (yolov8 layout";
    for detector in [None, Some("proposals")] {
        let out = without_rois(detector);
        assert!(out.status.success(), "{detector:?}: {}", text(&out));
        let said = text(&out);
        assert_eq!(said.contains(detector_started), detector.is_none(), "{detector:?}: {said}");
        assert_eq!(fs::read_to_string(&results).unwrap().lines().count(), 10);
        assert_eq!(files_in(&out_dir), ["drive 1.annotated.mp4", "drive 1.results.jsonl"]);
    }
    let after = fs::read(&results).unwrap();
    let out = without_rois(Some("yolo"));
    assert_eq!(code(&out), Some(2), "{}", text(&out));
    assert!(text(&out).contains("DETECTOR must be detect or proposals, not yolo"), "{}", text(&out));
    assert_eq!(fs::read(&results).unwrap(), after, "a refused run leaves the results as they were");
}

#[test]
fn classify_clip_builds_from_a_folder_outside_the_checkout() {
    // cargo reads .cargo/config.toml (LIBTORCH for torch-sys) from the folder it runs in: run from elsewhere, the
    // script's build used to fail with "Cannot find a libtorch install". ODM_TRAIN unset: the script builds (the
    // debug build, which the tests have made already, so the build has nothing to do when the config is read).
    let dir = tempfile::tempdir().unwrap();
    let (_, _) = footage(dir.path(), "drive");
    let registry = dir.path().join("registry.bin");
    let out = gst_tool(repo().join("pipelines/classify-clip.sh"), &registry)
        .current_dir(dir.path())
        .env_remove("ODM_TRAIN")
        .env("ODM_PROFILE", "debug")
        .env("MODEL", model())
        .env("OUT", dir.path().join("out"))
        .args(["drive.mp4", "drive.rois.jsonl"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fs::read_to_string(dir.path().join("out/drive.results.jsonl")).unwrap().lines().count(), 10);
}

#[test]
fn regress_checks_its_inputs_first_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let (clip, rois) = footage(&dir.path().join("clip"), "drive");
    let expected = dir.path().join("expected.jsonl");
    let out = classify_clip(&clip, &rois, &model(), "NV12", &expected);
    assert!(out.status.success(), "{}", text(&out));
    let scratch = dir.path().join("tmp");
    fs::create_dir(&scratch).unwrap();
    let registry = dir.path().join("registry.bin");
    let regress = |expected: &Path| {
        script("pipelines/regress.sh", dir.path(), &registry)
            .env("TMPDIR", &scratch)
            .args([&clip, &rois, &expected.to_owned()])
            .output()
            .unwrap()
    };
    let out = regress(&expected);
    assert!(out.status.success(), "{}", text(&out));
    assert!(left_in(&scratch).is_empty(), "temporary files left: {:?}", left_in(&scratch));

    let changed = dir.path().join("changed.jsonl");
    fs::write(&changed, fs::read_to_string(&expected).unwrap().replace("\"id\":1,", "\"id\":7,")).unwrap();
    let out = regress(&changed);
    assert_eq!(code(&out), Some(1), "{}", text(&out));
    assert!(left_in(&scratch).is_empty(), "temporary files left: {:?}", left_in(&scratch));

    // Missing inputs are named before the pipeline runs.
    let out = regress(&dir.path().join("no expected.jsonl"));
    assert_eq!(code(&out), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no expected.jsonl: no such file"), "{}", text(&out));
    let out = script("pipelines/regress.sh", dir.path(), &registry).args([&clip, &rois]).output().unwrap();
    assert_eq!(code(&out), Some(2), "{}", text(&out));
    assert!(text(&out).contains("usage"), "{}", text(&out));
    assert!(left_in(&scratch).is_empty());
}

#[test]
fn peer_says_which_system_package_is_missing() {
    // A Python without numpy and gi: a virtual environment that does not see the system's packages.
    let dir = tempfile::tempdir().unwrap();
    let venv = dir.path().join("bare");
    let made = Command::new("/usr/bin/python3").args(["-m", "venv", "--without-pip"]).arg(&venv).output().unwrap();
    assert!(made.status.success(), "{}", text(&made));
    let out = Command::new(repo().join("scripts/peer.sh")).env("PYTHON", venv.join("bin/python3")).output().unwrap();
    assert_eq!(code(&out), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("cannot import numpy, gi") && t.contains("apt-get install python3-numpy python3-gi"), "{t}");
}

#[test]
fn export_under_a_file_size_limit_is_an_error_naming_the_file_and_leaves_whole_lines() {
    // A write that crosses RLIMIT_FSIZE writes part of a line, and the next one is killed by SIGXFSZ: gst-launch
    // died (exit 153) leaving a torn last line. The registry is made beforehand and not updated under the limit, and
    // ORC runs its C code, because both write files of their own (the registry, ORC's code file) larger than the
    // limit: what is tested is odmexport's file alone.
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry.bin");
    let made = gst_tool("gst-inspect-1.0", &registry).arg("odmexport").output().unwrap();
    assert!(made.status.success(), "{}", text(&made));
    // 9 KiB: 150 lines (about 9.9 KB) are written at EOS, 3000 lines first in 64 KiB chunks while playing.
    for buffers in [150, 3000] {
        let file = dir.path().join(format!("results {buffers}.jsonl"));
        let launch = format!(
            "ulimit -f 9; exec gst-launch-1.0 -q videotestsrc num-buffers={buffers} ! video/x-raw,width=16,height=16 ! \
             odmexport location=\"{}\" ! fakesink",
            file.display()
        );
        let out = gst_tool("bash", &registry)
            .args(["-c", &launch])
            .env("GST_REGISTRY_UPDATE", "no")
            .env("ORC_CODE", "backup")
            .output()
            .unwrap();
        let t = text(&out);
        assert_eq!(code(&out), Some(1), "{buffers} buffers: an error, not a signal: {t}");
        assert!(t.contains(&format!("cannot write {}: the file size limit", file.display())), "{t}");
        let bytes = fs::read(&file).unwrap();
        assert!(!bytes.is_empty() && bytes.len() <= 9 * 1024, "{} bytes", bytes.len());
        assert_eq!(bytes.last(), Some(&b'\n'), "the file ends at a whole line");
        let lines: Vec<serde_json::Value> = std::str::from_utf8(&bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect();
        assert!(lines.len() < buffers, "{buffers} buffers, {} lines", lines.len());
        assert!(lines.iter().enumerate().all(|(i, l)| l["frame"] == i), "every line in order, none torn");
        assert!(t.contains(&format!("{} lines were not written", buffers - lines.len())) || buffers > 150, "{t}");
    }
}

/// Whether a script's command line names cargo's output folder itself instead of taking it from CARGO_TARGET_DIR.
fn names_the_target_folder(code: &str) -> bool {
    if code.contains("CARGO_TARGET_DIR") {
        return false;
    }
    let literal = code.contains("target/release") || code.contains("target/debug");
    let part = ["/target/", "/target\"", "/target}", "/target ", "/target'"].iter().any(|p| code.contains(p));
    literal || part || code.ends_with("/target")
}

/// CI and users with a shared cargo folder set CARGO_TARGET_DIR: a script that runs a built binary from a literal
/// `target/release/` (as models/signs/make.sh once did: "target/release/odm-train: No such file or directory" after
/// a 4-minute build elsewhere) fails for them. Every command line of every tracked shell script takes the folder from
/// CARGO_TARGET_DIR, falling back to the checkout's target/.
#[test]
fn every_script_finds_the_build_where_cargo_target_dir_puts_it() {
    // The reader on the lines make.sh had, and on the forms that are right.
    for bad in ["T=target/release/odm-train", "export GST_PLUGIN_PATH=$ROOT/target/release", "TARGET=$ROOT/target"] {
        assert!(names_the_target_folder(bad), "{bad}");
    }
    for good in ["TARGET=${CARGO_TARGET_DIR:-$ROOT/target}", "T=\"$TARGET/release/odm-train\"", "cp \"$target/$p\" ."] {
        assert!(!names_the_target_folder(good), "{good}");
    }
    let listed = Command::new("git").args(["ls-files", "*.sh"]).current_dir(repo()).output().unwrap();
    assert!(listed.status.success(), "git ls-files: {}", String::from_utf8_lossy(&listed.stderr));
    let scripts: Vec<String> = String::from_utf8(listed.stdout).unwrap().lines().map(str::to_owned).collect();
    assert!(scripts.iter().any(|s| s == "models/signs/make.sh"), "{scripts:?}");
    let mut bad = Vec::new();
    for script in &scripts {
        let text = fs::read_to_string(repo().join(script)).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if !code.starts_with('#') && names_the_target_folder(code) {
                bad.push(format!("{script}:{}: {code}", n + 1));
            }
        }
    }
    assert!(bad.is_empty(), "a target folder of its own, not CARGO_TARGET_DIR's:\n{}", bad.join("\n"));
}

/// `models/signs/fingerprint.sh`, run as make.sh runs it but from another folder, on folders whose names hold a
/// space: one line per folder, the sum of the files' sums sorted by path (a fixed value for fixed files), another
/// when one byte or one name changes, an MP4's bytes too (`odm-train clip` writes them without times); a missing folder
/// is an error naming it, with nothing printed. And the shipped `data.sha256` fingerprints exactly the folders
/// make.sh names.
#[test]
fn the_data_fingerprint_follows_bytes_and_names_only() {
    let tmp = tempfile::tempdir().unwrap();
    let make = |base: &Path, order: &[(&str, &[u8])]| {
        for (name, bytes) in order {
            let p = base.join(name);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, bytes).unwrap();
        }
    };
    let files: [(&str, &[u8]); 3] = [("a b/x.png", b"one"), ("a b/sub/y.json", b"{}"), ("c/z.txt", b"three")];
    let first = tmp.path().join("first run");
    let second = tmp.path().join("second run");
    make(&first, &files);
    let mut reversed = files;
    reversed.reverse();
    make(&second, &reversed);
    let cwd = tmp.path().join("elsewhere");
    fs::create_dir_all(&cwd).unwrap();
    let run = |base: &Path, folders: &[&str]| {
        Command::new(repo().join("models/signs/fingerprint.sh"))
            .arg(base)
            .args(folders)
            .current_dir(&cwd)
            .output()
            .unwrap()
    };
    let lines = |out: &Output| -> Vec<(String, String, String)> {
        assert!(out.status.success(), "{}", text(out));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split("  ").collect();
                assert_eq!(f.len(), 3, "{l}");
                assert!(f[0].len() == 64 && f[0].bytes().all(|b| b.is_ascii_hexdigit()), "{l}");
                (f[0].to_owned(), f[1].to_owned(), f[2].to_owned())
            })
            .collect()
    };
    let one = lines(&run(&first, &["a b", "c"]));
    assert_eq!(one.iter().map(|l| (l.1.as_str(), l.2.as_str())).collect::<Vec<_>>(), [("a b", "2"), ("c", "1")]);
    // sha256 over "SUM  ./sub/y.json\nSUM  ./x.png\n" (sha256sum's lines, sorted by path).
    assert_eq!(one[0].0, "ece30f256515a97f8b328679685c217902956974456dfa808cceb0a55bba406a");
    assert_eq!(lines(&run(&second, &["a b", "c"])), one, "the same bytes and names, written in another order");
    make(&second, &[("a b/drive.mp4", b"frames")]);
    let with_mp4 = lines(&run(&second, &["a b", "c"]));
    assert_eq!((with_mp4[0].2.as_str(), &with_mp4[1]), ("3", &one[1]), "an MP4 is a file like the others");
    fs::write(second.join("a b/drive.mp4"), b"frameS").unwrap();
    assert_ne!(lines(&run(&second, &["a b", "c"]))[0].0, with_mp4[0].0, "an MP4's byte changed");
    fs::remove_file(second.join("a b/drive.mp4")).unwrap();

    fs::write(second.join("a b/sub/y.json"), b"{]").unwrap();
    let changed = lines(&run(&second, &["a b", "c"]));
    assert_ne!(changed[0].0, one[0].0, "one file's byte changed");
    assert_eq!(changed[1], one[1], "the other folder is untouched");
    fs::write(second.join("a b/sub/y.json"), b"{}").unwrap();
    fs::rename(second.join("a b/x.png"), second.join("a b/w.png")).unwrap();
    assert_ne!(lines(&run(&second, &["a b", "c"]))[0].0, one[0].0, "one file renamed");

    let out = run(&first, &["a b", "missing"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(out.stdout.is_empty(), "nothing printed: {}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing is not a folder"), "{}", text(&out));

    // The shipped fingerprint names the folders make.sh fingerprints, in its order.
    let make_sh = fs::read_to_string(repo().join("models/signs/make.sh")).unwrap();
    let call = make_sh.lines().find(|l| l.starts_with("models/signs/fingerprint.sh")).expect("make.sh runs it");
    let named: Vec<&str> = call.trim_end_matches('\\').split_whitespace().skip(2).collect();
    let shipped = fs::read_to_string(repo().join("models/signs/data.sha256")).unwrap();
    let listed: Vec<&str> = shipped.lines().map(|l| l.split("  ").nth(1).unwrap_or("")).collect();
    assert_eq!(listed, named, "data.sha256 against make.sh's fingerprint line");
}
