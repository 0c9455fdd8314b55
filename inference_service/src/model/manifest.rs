//! `manifest.json`: what the model file is, how to feed it and how to read its output.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context};
use serde::{Deserialize, Serialize};

/// The manifest beside the ONNX file in `MODEL_DIR`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    /// The ONNX file, relative to the manifest.
    pub file: String,
    /// Hex SHA-256 of the ONNX file, checked at load.
    pub sha256: String,
    pub input: InputSpec,
    pub preprocess: PreprocessSpec,
    pub output: OutputSpec,
    /// Scores below it are `forgettable`.
    pub threshold: f32,
    pub licence: String,
    /// The numbers the model computes with; `fp32` when the manifest does not say.
    #[serde(default)]
    pub precision: Precision,
    /// For a model derived from another (the int8 ResMem from the fp32 one): the source file's
    /// hex SHA-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_sha256: Option<String>,
}

/// The numeric precision of the model's weights and activations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Fp32,
    Int8,
}

impl Precision {
    /// The name the manifest and `GET /model` use.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Int8 => "int8",
        }
    }
}

/// The model's single input: an NCHW `f32` tensor of `1×3×height×width`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub name: String,
    pub height: u32,
    pub width: u32,
}

/// A size in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Size {
    pub height: u32,
    pub width: u32,
}

/// The resize step, with its resampling filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResizeSpec {
    pub height: u32,
    pub width: u32,
    pub filter: Filter,
}

/// Resampling filters the service implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Filter {
    /// PIL's `Image.BILINEAR`: an antialiased triangle filter.
    Bilinear,
}

/// RGB → resize → centre crop → `/ scale` → `(x - mean) / std`, channel-first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreprocessSpec {
    pub resize: ResizeSpec,
    pub crop: Size,
    pub scale: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// How the output tensor becomes a score in 0..1.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OutputSpec {
    /// The model outputs one value, already a probability (its last layer is a sigmoid).
    SigmoidScore,
    /// The model outputs one logit per label; the score is the softmax probability of `positive`.
    Softmax {
        labels: Vec<String>,
        positive: String,
    },
}

impl Manifest {
    /// The manifest file of a model directory.
    pub fn path_in(dir: &Path) -> PathBuf {
        dir.join("manifest.json")
    }

    /// Reads and checks `manifest.json` in `dir`, and that the model file it names exists.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = Self::path_in(dir);
        if !path.is_file() {
            bail!(
                "no model in {}: `{}` is missing. Run `cargo xtask model` to fetch and convert the model, \
                 or point MODEL_DIR at a folder with manifest.json and the ONNX file",
                dir.display(),
                path.display()
            );
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let manifest: Manifest = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid manifest", path.display()))?;
        manifest
            .check()
            .with_context(|| format!("{} is not a valid manifest", path.display()))?;
        let model = manifest.model_path(dir);
        if !model.is_file() {
            bail!(
                "the model file {} named by {} is missing. Run `cargo xtask model` to fetch and convert the model",
                model.display(),
                path.display()
            );
        }
        Ok(manifest)
    }

    /// Where the ONNX file is.
    pub fn model_path(&self, dir: &Path) -> PathBuf {
        dir.join(&self.file)
    }

    /// The index of the positive class for a softmax output.
    pub fn positive_index(&self) -> Option<usize> {
        match &self.output {
            OutputSpec::SigmoidScore => None,
            OutputSpec::Softmax { labels, positive } => labels.iter().position(|l| l == positive),
        }
    }

    fn check(&self) -> anyhow::Result<()> {
        ensure!(
            !self.name.is_empty() && !self.version.is_empty(),
            "`name` and `version` must not be empty"
        );
        ensure!(
            self.sha256.len() == 64 && self.sha256.chars().all(|c| c.is_ascii_hexdigit()),
            "`sha256` must be 64 hex digits"
        );
        ensure!(
            !self.file.is_empty() && Path::new(&self.file).components().count() == 1,
            "`file` must be a file name inside the model folder"
        );
        ensure!(
            (0.0..=1.0).contains(&self.threshold),
            "`threshold` must be within 0..1"
        );
        let p = &self.preprocess;
        ensure!(
            p.resize.height > 0 && p.resize.width > 0,
            "`preprocess.resize` must be at least 1×1"
        );
        ensure!(
            p.crop.height > 0 && p.crop.width > 0,
            "`preprocess.crop` must be at least 1×1"
        );
        ensure!(
            p.crop.height <= p.resize.height && p.crop.width <= p.resize.width,
            "`preprocess.crop` must fit inside `preprocess.resize`"
        );
        ensure!(
            p.crop.height == self.input.height && p.crop.width == self.input.width,
            "`input` height and width must equal `preprocess.crop`"
        );
        ensure!(p.scale > 0.0, "`preprocess.scale` must be positive");
        ensure!(
            p.std.iter().all(|s| *s != 0.0),
            "`preprocess.std` must not contain 0"
        );
        if let Some(source) = &self.source_sha256 {
            ensure!(
                source.len() == 64 && source.chars().all(|c| c.is_ascii_hexdigit()),
                "`source_sha256` must be 64 hex digits"
            );
        }
        if let OutputSpec::Softmax { labels, .. } = &self.output {
            ensure!(
                labels.len() >= 2,
                "`output.labels` needs at least two labels"
            );
            ensure!(
                self.positive_index().is_some(),
                "`output.positive` must be one of `output.labels`"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESMEM: &str = r#"{
      "name": "resmem", "version": "1.1.6", "file": "model.onnx",
      "sha256": "0000000000000000000000000000000000000000000000000000000000000000",
      "input": {"name": "input", "height": 227, "width": 227},
      "preprocess": {"resize": {"height": 256, "width": 256, "filter": "bilinear"}, "crop": {"height": 227, "width": 227},
                     "scale": 255.0, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]},
      "output": {"kind": "sigmoid_score"},
      "threshold": 0.75,
      "licence": "MIT"
    }"#;

    fn parse(text: &str) -> anyhow::Result<Manifest> {
        let manifest: Manifest = serde_json::from_str(text)?;
        manifest.check()?;
        Ok(manifest)
    }

    #[test]
    fn the_resmem_manifest_parses() {
        let manifest = parse(RESMEM).expect("valid");
        assert_eq!(manifest.preprocess.resize.filter, Filter::Bilinear);
        assert!(matches!(manifest.output, OutputSpec::SigmoidScore));
    }

    #[test]
    fn a_softmax_output_finds_its_positive_label() {
        let text = RESMEM.replace(
            r#"{"kind": "sigmoid_score"}"#,
            r#"{"kind": "softmax", "labels": ["forgettable", "memorable"], "positive": "memorable"}"#,
        );
        assert_eq!(parse(&text).expect("valid").positive_index(), Some(1));
    }

    #[test]
    fn a_positive_label_outside_the_labels_is_refused() {
        let text = RESMEM.replace(
            r#"{"kind": "sigmoid_score"}"#,
            r#"{"kind": "softmax", "labels": ["a", "b"], "positive": "memorable"}"#,
        );
        assert!(parse(&text).is_err());
    }

    #[test]
    fn a_crop_larger_than_the_resize_is_refused() {
        let text = RESMEM.replace(r#""crop": {"height": 227"#, r#""crop": {"height": 300"#);
        assert!(parse(&text).is_err());
    }

    #[test]
    fn a_manifest_without_precision_is_fp32() {
        assert_eq!(parse(RESMEM).expect("valid").precision, Precision::Fp32);
    }

    #[test]
    fn a_manifest_may_say_int8() {
        let text = RESMEM.replace(
            r#""threshold": 0.75"#,
            r#""threshold": 0.75, "precision": "int8""#,
        );
        assert_eq!(parse(&text).expect("valid").precision, Precision::Int8);
        assert!(parse(&RESMEM.replace(
            r#""threshold": 0.75"#,
            r#""threshold": 0.75, "precision": "fp8""#
        ))
        .is_err());
    }

    #[test]
    fn an_unknown_filter_is_refused() {
        assert!(parse(&RESMEM.replace("bilinear", "lanczos")).is_err());
    }

    #[test]
    fn a_missing_model_names_the_command_that_makes_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = Manifest::load(dir.path()).expect_err("missing").to_string();
        assert!(err.contains("cargo xtask model"), "{err}");
    }
}
