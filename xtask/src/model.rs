//! Obtaining and converting the ONNX model (`cargo xtask model`).
//!
//! The default model, ResMem, is licensed for non-commercial use only, so the project never ships
//! its weights. This module downloads the pinned `resmem` wheel from PyPI with pip, checks its
//! SHA-256, and runs the converter `inference_service/convert/convert_resmem.py` (numpy + onnx,
//! no torch), which writes `model.onnx`, `manifest.json` and `LICENSE` into the model folder and
//! checks the result with onnxruntime against the torch reference scores committed in
//! `inference_service/tests/fixtures/resmem_golden.json`.
//!
//! `cargo xtask model --int8` then quantizes that model to int8 into `data/models/resmem-int8`
//! (`inference_service/convert/quantize_resmem.py`, calibrated on photographs bundled in pinned
//! PyPI wheels) and installs it only when it passes the accuracy gate of [`gate`] against fp32.

mod gate;

use std::{
    fs,
    io::Read,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::tools::{self, step};

/// The converter's Python libraries (also used by the preprocessing reference in the tests), every
/// dependency pinned with its hashes; the Dockerfile's model stage installs the same file.
pub const REQUIREMENTS_FILE: &str = "inference_service/convert/requirements.txt";
/// The ResMem wheel the converter understands, pinned with its hash; the Dockerfile downloads the
/// same pin.
pub const WHEEL_PIN_FILE: &str = "inference_service/convert/resmem.txt";
/// The model folder, relative to the workspace root.
pub const DEFAULT_DIR: &str = "data/models/resmem";
/// The int8 model's folder, relative to the workspace root.
pub const INT8_DIR: &str = "data/models/resmem-int8";
/// The wheels whose bundled photographs calibrate and check the int8 model, pinned with hashes.
pub const PHOTO_PINS_FILE: &str = "inference_service/convert/photos.txt";

const LICENCE_NOTICE: &str = "\
ResMem (Needell & Bainbridge, 2021) is licensed by The University of Chicago under the ResMem
Non-commercial License: use for non-commercial purposes only (research use by a company counts as
non-commercial; a website earning advertising money does not). For commercial use, ask the Brain
Bridge Lab at The University of Chicago. The weights are downloaded from the PyPI package resmem
and converted on this machine; this project does not redistribute them or the converted model.";

#[derive(clap::Args, Debug)]
pub struct ModelArgs {
    /// Folder that receives model.onnx, manifest.json and LICENSE (relative to the workspace root).
    #[arg(long, default_value = DEFAULT_DIR)]
    pub dir: PathBuf,
    /// Convert again even when a valid model is already there.
    #[arg(long)]
    pub force: bool,
    /// Also quantize the model to int8 into data/models/resmem-int8, installed only when it passes
    /// the accuracy gate against fp32 (served by the ONNX Runtime engine only).
    #[arg(long)]
    pub int8: bool,
}

/// `cargo xtask model`.
pub fn run(args: ModelArgs) -> Result<()> {
    let dir = tools::root().join(&args.dir);
    if args.force {
        convert(&dir)?;
    } else {
        ensure_model(&dir)?;
    }
    if args.int8 {
        ensure_int8(&dir, &tools::root().join(INT8_DIR), args.force)?;
    }
    Ok(())
}

/// Makes sure `dir` holds a converted model: nothing to do when its manifest names a model file
/// whose SHA-256 matches; otherwise the model is converted.
pub fn ensure_model(dir: &Path) -> Result<()> {
    match check_model(dir) {
        Ok(manifest) => {
            step(format!(
                "model {} {} present in {}",
                manifest.name,
                manifest.version,
                dir.display()
            ));
            Ok(())
        }
        Err(reason) => {
            step(format!(
                "no usable model in {} ({reason:#}); converting ResMem {}",
                dir.display(),
                WheelPin::read()?.version
            ));
            convert(dir)
        }
    }
}

/// Prepares the real model for the tests that need it (cached in the default folder between
/// runs), and the Python libraries the preprocessing reference test uses.
pub fn ensure_for_tests() -> Result<()> {
    ensure_python()?;
    ensure_model(&default_dir())
}

/// Environment the model tests need: the real model, the Python with pillow and numpy, and the
/// resmem wheel.
pub fn test_environment() -> Result<Vec<(String, String)>> {
    Ok(vec![
        (
            "FORGETTABLE_MODEL_DIR".into(),
            default_dir().display().to_string(),
        ),
        (
            "FORGETTABLE_PYTHON".into(),
            tools::venv_bin("python")?.display().to_string(),
        ),
        (
            "FORGETTABLE_RESMEM_WHEEL".into(),
            wheel()?.display().to_string(),
        ),
    ])
}

/// The one-line licence note of the model in `dir` (from its manifest).
pub fn licence_note(dir: &Path) -> Result<String> {
    Ok(check_model(dir)?.licence)
}

fn default_dir() -> PathBuf {
    tools::root().join(DEFAULT_DIR)
}

/// The fields of `manifest.json` this module needs (the full format is the inference service's).
#[derive(Debug, Deserialize)]
struct Manifest {
    name: String,
    version: String,
    file: String,
    sha256: String,
    licence: String,
    /// `fp32` when absent; `int8` for a quantized model.
    #[serde(default)]
    precision: Option<String>,
    /// For a quantized model, the SHA-256 of the fp32 model it was made from.
    #[serde(default)]
    source_sha256: Option<String>,
}

/// Reads the manifest in `dir` and checks that the model file it names has the recorded hash.
fn check_model(dir: &Path) -> Result<Manifest> {
    let path = dir.join("manifest.json");
    let text =
        fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let manifest: Manifest = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a manifest", path.display()))?;
    if manifest.file.contains(['/', '\\']) {
        bail!(
            "the manifest's file {:?} must be a plain file name",
            manifest.file
        );
    }
    let model = dir.join(&manifest.file);
    let actual = sha256_file(&model)?;
    if !actual.eq_ignore_ascii_case(&manifest.sha256) {
        bail!(
            "{} has SHA-256 {actual}, the manifest says {}",
            model.display(),
            manifest.sha256
        );
    }
    Ok(manifest)
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut file =
        fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 20];
    loop {
        let n = file
            .read(&mut buffer)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Installs the converter's Python libraries into `./.venv` (hash-checked, once).
pub fn ensure_python() -> Result<()> {
    tools::ensure_pip_file(&tools::root().join(REQUIREMENTS_FILE))
}

/// The `resmem==VERSION --hash=sha256:HEX` line of [`WHEEL_PIN_FILE`].
pub struct WheelPin {
    pub version: String,
    pub sha256: String,
}

impl WheelPin {
    pub fn read() -> Result<Self> {
        let path = tools::root().join(WHEEL_PIN_FILE);
        let text =
            fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&text).with_context(|| {
            format!(
                "{}: no `resmem==VERSION --hash=sha256:HEX` line",
                path.display()
            )
        })
    }

    fn parse(text: &str) -> Option<Self> {
        let line = text.lines().find(|line| line.starts_with("resmem=="))?;
        let mut words = line.split_whitespace();
        let version = words.next()?.strip_prefix("resmem==")?.to_owned();
        let sha256 = words
            .find_map(|word| word.strip_prefix("--hash=sha256:"))?
            .to_owned();
        Some(Self { version, sha256 })
    }
}

/// The resmem wheel, downloaded from PyPI once into `./.venv/wheels` (pip checks the pinned hash)
/// and checked against it again on every use, so a damaged file is never converted.
pub fn wheel() -> Result<PathBuf> {
    let pin = WheelPin::read()?;
    let dir = tools::venv()?.join("wheels");
    let wheel = dir.join(format!("resmem-{}-py3-none-any.whl", pin.version));
    if !wheel.exists() {
        let python = tools::venv_bin("python")?;
        let download =
            tempfile::tempdir_in(tools::venv()?).context("cannot create a temporary folder")?;
        step(format!(
            "downloading resmem=={} from PyPI (about 490 MB)",
            pin.version
        ));
        tools::run(
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--no-deps",
                    "--require-hashes",
                    "-r",
                ])
                .arg(tools::root().join(WHEEL_PIN_FILE))
                .arg("--dest")
                .arg(download.path()),
        )?;
        fs::create_dir_all(&dir)?;
        fs::rename(
            download
                .path()
                .join(wheel.file_name().context("wheel name")?),
            &wheel,
        )
        .context("keeping the downloaded wheel")?;
    }
    step("checking the wheel's SHA-256");
    let digest = sha256_file(&wheel)?;
    if digest != pin.sha256 {
        bail!(
            "{} has SHA-256 {digest}, expected {}; refusing to convert it \
             (delete it to download it again)",
            wheel.display(),
            pin.sha256
        );
    }
    Ok(wheel)
}

/// Downloads the wheel, checks it and runs the converter into `dir`.
fn convert(dir: &Path) -> Result<()> {
    let started = Instant::now();
    step("the ResMem licence");
    eprintln!("{LICENCE_NOTICE}");
    eprintln!(
        "The converted model is stored in {} (with the full licence text in LICENSE).",
        dir.display()
    );

    ensure_python()?;
    let python = tools::venv_bin("python")?;
    let wheel = wheel()?;

    step(format!("converting to ONNX into {}", dir.display()));
    let convert_dir = tools::root().join("inference_service/convert");
    tools::run(
        Command::new(&python)
            .arg(convert_dir.join("convert_resmem.py"))
            .arg("--wheel")
            .arg(&wheel)
            .arg("--out")
            .arg(dir)
            .current_dir(&convert_dir),
    )?;

    let manifest =
        check_model(dir).context("the converter finished but its output does not check out")?;
    let size = fs::metadata(dir.join(&manifest.file))?.len();
    step(format!(
        "model ready: {} ({:.1} MB, sha256 {}) in {:.0} s",
        dir.join(&manifest.file).display(),
        size as f64 / 1e6,
        manifest.sha256,
        started.elapsed().as_secs_f64()
    ));
    eprintln!("Licence: {}", manifest.licence);
    Ok(())
}

/// Makes sure `int8_dir` holds the int8 model of the fp32 model in `fp32_dir`: nothing to do
/// when it is there, checks out and was made from that fp32 file; otherwise it is quantized again.
fn ensure_int8(fp32_dir: &Path, int8_dir: &Path, force: bool) -> Result<()> {
    let fp32 = check_model(fp32_dir)?;
    if !force {
        match check_int8(int8_dir, &fp32) {
            Ok(manifest) => {
                step(format!(
                    "int8 model {} present in {} (made from fp32 {})",
                    manifest.name,
                    int8_dir.display(),
                    fp32.sha256
                ));
                return Ok(());
            }
            Err(reason) => step(format!(
                "no usable int8 model in {} ({reason:#}); quantizing",
                int8_dir.display()
            )),
        }
    }
    quantize(fp32_dir, int8_dir)
}

/// The int8 manifest in `dir`, when its model checks out and comes from `fp32`.
fn check_int8(dir: &Path, fp32: &Manifest) -> Result<Manifest> {
    let manifest = check_model(dir)?;
    if manifest.precision.as_deref() != Some("int8") {
        bail!("its manifest does not say `precision: int8`");
    }
    if manifest.source_sha256.as_deref() != Some(fp32.sha256.as_str()) {
        bail!(
            "it was made from fp32 {}, not from the current {}",
            manifest.source_sha256.as_deref().unwrap_or("(unknown)"),
            fp32.sha256
        );
    }
    Ok(manifest)
}

/// A `NAME==VERSION --hash=sha256:HEX` line of [`PHOTO_PINS_FILE`].
#[derive(Debug, PartialEq)]
struct PhotoPin {
    /// The wheel's file-name prefix (`scikit_image`), as the wheel spells the distribution.
    wheel_name: String,
    version: String,
    sha256: String,
}

fn parse_photo_pins(text: &str) -> Vec<PhotoPin> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let (name, version) = words.next()?.split_once("==")?;
            let sha256 = words.find_map(|word| word.strip_prefix("--hash=sha256:"))?;
            Some(PhotoPin {
                wheel_name: name.replace('-', "_"),
                version: version.to_owned(),
                sha256: sha256.to_owned(),
            })
        })
        .collect()
}

/// The photo wheels of [`PHOTO_PINS_FILE`], downloaded once into `./.venv/wheels/photos` (pip
/// checks the pinned hashes) and checked against them again on every use.
fn photo_wheels() -> Result<Vec<PathBuf>> {
    let pins_path = tools::root().join(PHOTO_PINS_FILE);
    let pins = parse_photo_pins(
        &fs::read_to_string(&pins_path)
            .with_context(|| format!("cannot read {}", pins_path.display()))?,
    );
    if pins.is_empty() {
        bail!("{}: no pinned wheel", pins_path.display());
    }
    let dir = tools::venv()?.join("wheels/photos");
    let find = |pin: &PhotoPin| -> Option<PathBuf> {
        let prefix = format!("{}-{}-", pin.wheel_name, pin.version);
        fs::read_dir(&dir)
            .ok()?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .find(|path| {
                path.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".whl"))
            })
    };
    if pins.iter().any(|pin| find(pin).is_none()) {
        step("downloading the photo wheels from PyPI (about 33 MB; only their sample photographs are read)");
        fs::create_dir_all(&dir)?;
        tools::run(
            Command::new(tools::venv_bin("python")?)
                .args([
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--no-deps",
                    "--only-binary=:all:",
                    "--python-version",
                    "3.11",
                    "--implementation",
                    "cp",
                    "--abi",
                    "cp311",
                    "--platform",
                    "manylinux_2_28_x86_64",
                    "--platform",
                    "manylinux_2_17_x86_64",
                    "--require-hashes",
                    "-r",
                ])
                .arg(&pins_path)
                .arg("--dest")
                .arg(&dir),
        )?;
    }
    pins.iter()
        .map(|pin| {
            let wheel = find(pin).with_context(|| {
                format!("pip did not download {}=={}", pin.wheel_name, pin.version)
            })?;
            let digest = sha256_file(&wheel)?;
            if digest != pin.sha256 {
                bail!(
                    "{} has SHA-256 {digest}, expected {} (delete it to download it again)",
                    wheel.display(),
                    pin.sha256
                );
            }
            Ok(wheel)
        })
        .collect()
}

/// Quantizes the fp32 model into `int8_dir` and installs the result only if it passes the gate.
fn quantize(fp32_dir: &Path, int8_dir: &Path) -> Result<()> {
    let started = Instant::now();
    ensure_python()?;
    let wheels = photo_wheels()?;
    step(format!("quantizing to int8 into {}", int8_dir.display()));
    let convert_dir = tools::root().join("inference_service/convert");
    tools::run(
        Command::new(tools::venv_bin("python")?)
            .arg(convert_dir.join("quantize_resmem.py"))
            .arg("--fp32")
            .arg(fp32_dir)
            .arg("--out")
            .arg(int8_dir)
            .arg("--photo-wheels")
            .args(&wheels)
            .current_dir(&convert_dir),
    )?;

    let partial_model = int8_dir.join("model.onnx.partial");
    let partial_manifest = int8_dir.join("manifest.json.partial");
    let gate_path = int8_dir.join("accuracy_gate.json");
    let gate: gate::GateFile = serde_json::from_str(
        &fs::read_to_string(&gate_path)
            .with_context(|| format!("cannot read {}", gate_path.display()))?,
    )
    .with_context(|| format!("{} is not a gate report", gate_path.display()))?;
    let thresholds = gate::GATE;
    let result = gate.evaluate(&thresholds);
    step(format!("accuracy gate against fp32: {}", result.summary()));
    eprintln!(
        "Thresholds: Spearman >= {}, largest difference <= {}, same label (threshold {}) on >= {} %, \
         at least {} images. Scores per image: {}",
        thresholds.min_spearman,
        thresholds.max_abs_diff,
        gate.threshold,
        thresholds.min_label_agreement * 100.0,
        thresholds.min_images,
        gate_path.display()
    );
    if !result.passed() {
        // Nothing half-made stays behind; a model installed earlier stays as it was.
        for path in [&partial_model, &partial_manifest] {
            fs::remove_file(path).ok();
        }
        bail!(
            "the int8 model fails the accuracy gate ({}); it was not installed. {}",
            result.failures.join("; "),
            result.summary()
        );
    }
    // The model goes in place before the manifest that names its hash.
    fs::rename(&partial_model, int8_dir.join("model.onnx")).context("installing model.onnx")?;
    fs::rename(&partial_manifest, int8_dir.join("manifest.json"))
        .context("installing manifest.json")?;
    let manifest = check_int8(int8_dir, &check_model(fp32_dir)?)
        .context("the quantizer finished but its output does not check out")?;
    let size = fs::metadata(int8_dir.join(&manifest.file))?.len();
    step(format!(
        "int8 model ready: {} ({:.1} MB, sha256 {}) in {:.0} s",
        int8_dir.join(&manifest.file).display(),
        size as f64 / 1e6,
        manifest.sha256,
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// The `libonnxruntime.so.*` the converter's onnxruntime wheel installed into `./.venv` (made by
/// `cargo xtask model`; nothing is installed here).
pub fn venv_onnxruntime() -> Result<PathBuf> {
    let lib = tools::root().join(".venv/lib");
    let mut found = Vec::new();
    let pythons = fs::read_dir(&lib)
        .with_context(|| format!("no {}: run `cargo xtask model`", lib.display()))?;
    for python in pythons {
        let capi = python?.path().join("site-packages/onnxruntime/capi");
        let Ok(entries) = fs::read_dir(&capi) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            if name.is_some_and(|n| n.starts_with("libonnxruntime.so")) {
                found.push(path);
            }
        }
    }
    found.sort();
    found.pop().with_context(|| {
        format!(
            "no libonnxruntime.so* under {}/python3*/site-packages/onnxruntime/capi: run `cargo xtask model`",
            lib.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_dir() -> PathBuf {
        tools::root().join("inference_service/tests/fixtures/tiny")
    }

    fn copy_of_tiny() -> Result<tempfile::TempDir> {
        let dir = tempfile::tempdir()?;
        for name in ["model.onnx", "manifest.json"] {
            fs::copy(tiny_dir().join(name), dir.path().join(name))?;
        }
        Ok(dir)
    }

    /// Rewrites the manifest in `dir` through `edit`.
    fn edit_manifest(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> Result<()> {
        let path = dir.join("manifest.json");
        let mut manifest: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path)?)?;
        edit(&mut manifest);
        fs::write(&path, manifest.to_string())?;
        Ok(())
    }

    #[test]
    fn the_committed_wheel_pin_names_a_version_and_a_full_sha256() -> Result<()> {
        let pin = WheelPin::read()?;
        assert!(
            pin.version
                .split('.')
                .all(|part| part.parse::<u32>().is_ok()),
            "{}",
            pin.version
        );
        assert_eq!(pin.sha256.len(), 64);
        assert!(pin.sha256.bytes().all(|b| b.is_ascii_hexdigit()));
        Ok(())
    }

    #[test]
    fn a_wheel_pin_without_a_hash_is_not_a_pin() {
        assert!(WheelPin::parse("resmem==1.1.6\n").is_none());
    }

    #[test]
    fn every_converter_requirement_is_pinned_with_a_hash() -> Result<()> {
        let text = fs::read_to_string(tools::root().join(REQUIREMENTS_FILE))?;
        let pins: Vec<&str> = text.lines().filter(|l| l.contains("==")).collect();
        assert!(pins.len() >= 4, "{pins:?}");
        for name in ["numpy==", "onnx==", "onnxruntime==", "pillow=="] {
            assert!(
                pins.iter().any(|pin| pin.starts_with(name)),
                "{name} is not pinned"
            );
        }
        // pip-compile writes each pin's hashes on the lines after it, joined by backslashes.
        assert_eq!(
            pins.iter().filter(|pin| pin.ends_with(" \\")).count(),
            pins.len()
        );
        Ok(())
    }

    #[test]
    fn the_committed_tiny_model_matches_the_hash_in_its_manifest() -> Result<()> {
        let manifest = check_model(&tiny_dir())?;
        assert_eq!(manifest.name, "tiny");
        Ok(())
    }

    #[test]
    fn a_model_whose_bytes_changed_is_not_accepted() -> Result<()> {
        let dir = copy_of_tiny()?;
        let model = dir.path().join("model.onnx");
        let mut bytes = fs::read(&model)?;
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&model, bytes)?;
        let error = check_model(dir.path()).expect_err("a corrupted model must be refused");
        assert!(
            format!("{error:#}").contains("the manifest says"),
            "{error:#}"
        );
        Ok(())
    }

    #[test]
    fn a_folder_without_a_manifest_has_no_model() -> Result<()> {
        let dir = copy_of_tiny()?;
        fs::remove_file(dir.path().join("manifest.json"))?;
        assert!(check_model(dir.path()).is_err());
        Ok(())
    }

    #[test]
    fn a_manifest_may_not_point_outside_its_folder() -> Result<()> {
        let dir = copy_of_tiny()?;
        edit_manifest(dir.path(), |m| m["file"] = "../tiny/model.onnx".into())?;
        assert!(check_model(dir.path()).is_err());
        Ok(())
    }

    #[test]
    fn every_photo_wheel_is_pinned_with_a_full_sha256() -> Result<()> {
        let text = fs::read_to_string(tools::root().join(PHOTO_PINS_FILE))?;
        let pins = parse_photo_pins(&text);
        assert_eq!(
            pins.iter()
                .map(|p| p.wheel_name.as_str())
                .collect::<Vec<_>>(),
            ["scikit_image", "matplotlib", "scikit_learn"]
        );
        for pin in pins {
            assert_eq!(pin.sha256.len(), 64, "{pin:?}");
            assert!(pin.sha256.bytes().all(|b| b.is_ascii_hexdigit()), "{pin:?}");
        }
        Ok(())
    }

    #[test]
    fn a_photo_pin_without_a_hash_is_ignored() {
        assert!(parse_photo_pins("pillow==13.0.0\n# a==1 --hash=sha256:00\n").is_empty());
    }

    #[test]
    fn an_fp32_manifest_is_not_an_int8_model() -> Result<()> {
        let dir = copy_of_tiny()?;
        let fp32 = check_model(dir.path())?;
        let error = check_int8(dir.path(), &fp32).expect_err("fp32 is not int8");
        assert!(format!("{error:#}").contains("precision"), "{error:#}");
        Ok(())
    }

    #[test]
    fn an_int8_model_made_from_another_fp32_model_is_stale() -> Result<()> {
        let dir = copy_of_tiny()?;
        edit_manifest(dir.path(), |m| {
            m["precision"] = "int8".into();
            m["source_sha256"] = "ab".repeat(32).into();
        })?;
        let fp32 = check_model(&tiny_dir())?;
        let error = check_int8(dir.path(), &fp32).expect_err("another source");
        assert!(
            format!("{error:#}").contains("not from the current"),
            "{error:#}"
        );
        edit_manifest(dir.path(), |m| {
            m["source_sha256"] = fp32.sha256.clone().into()
        })?;
        assert!(check_int8(dir.path(), &fp32).is_ok());
        Ok(())
    }

    #[test]
    fn the_sha256_of_a_file_is_its_hex_digest() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("abc");
        fs::write(&path, b"abc")?;
        assert_eq!(
            sha256_file(&path)?,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        Ok(())
    }
}
