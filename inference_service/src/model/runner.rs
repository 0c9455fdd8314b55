//! The ONNX model loaded once into the chosen engine: checked against its manifest, prepared for a
//! batch of one, and run on one input tensor at a time.

use std::{fs::File, io, path::Path, time::Instant};

use anyhow::{bail, ensure, Context};
use sha2::{Digest, Sha256};

use super::{
    engine::{Engine, EngineKind, ModelSpec, Parallelism, Runtime},
    manifest::{Manifest, OutputSpec},
    preprocess::Preprocessor,
};

/// A model ready to run.
pub struct LoadedModel {
    pub manifest: Manifest,
    /// SHA-256 of the ONNX file, as verified at load.
    pub sha256: String,
    /// How long loading, verifying and preparing took, the first run included.
    pub load_seconds: f64,
    preprocessor: Preprocessor,
    engine: Box<dyn Engine>,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("name", &self.manifest.name)
            .field("version", &self.manifest.version)
            .field("sha256", &self.sha256)
            .field("engine", &self.engine.kind())
            .finish_non_exhaustive()
    }
}

/// Hex SHA-256 of a file, read in chunks.
pub fn file_sha256(path: &Path) -> anyhow::Result<String> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hex::encode(hasher.finalize()))
}

impl LoadedModel {
    /// Verifies the ONNX file in `dir` against `manifest` and loads it into `runtime` for
    /// `1×3×H×W` inputs, with one lane per worker. Blocking and slow (seconds for a large model):
    /// run it off the async workers.
    pub fn load(
        dir: &Path,
        manifest: Manifest,
        runtime: &Runtime,
        parallelism: Parallelism,
    ) -> anyhow::Result<Self> {
        let started = Instant::now();
        let path = manifest.model_path(dir);
        let preprocessor = Preprocessor::new(&manifest.preprocess);
        // The file is hashed on a thread of its own while the engine reads and plans it, so the
        // hash (about 0.5 s for ResMem's 527 MB) hides behind the plan (several seconds); the
        // page cache serves the second reader. The engine thus reads the file before its hash is
        // known: the hash guards against a damaged or swapped file in the operator's model
        // folder, and the load still fails on a mismatch before the service is ready.
        let (sha256, engine) = std::thread::scope(|scope| {
            let hashing = scope.spawn(|| {
                let started = Instant::now();
                file_sha256(&path).map(|sha256| (sha256, started.elapsed()))
            });
            let engine = runtime.load(
                &ModelSpec {
                    path: &path,
                    input_name: &manifest.input.name,
                    input_shape: preprocessor.shape(),
                },
                parallelism,
            );
            let planned = started.elapsed();
            let hashed = hashing
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("hashing the model panicked")));
            (hashed, engine.map(|engine| (engine, planned)))
        });
        let (sha256, hash_time) = sha256?;
        if !sha256.eq_ignore_ascii_case(&manifest.sha256) {
            bail!(
                "{} has SHA-256 {sha256} but the manifest expects {}: the file is damaged or from another \
                 model; run `cargo xtask model` again",
                path.display(),
                manifest.sha256
            );
        }
        let (engine, plan_time) = engine?;
        let loaded = Self {
            manifest,
            sha256,
            load_seconds: 0.0,
            preprocessor,
            engine,
        };
        // One run proves the model works before the service says it is ready.
        let first_run = Instant::now();
        loaded
            .forward(vec![0.0; loaded.input_len()])
            .context("the model fails on a blank input")?;
        tracing::info!(
            hash_ms = hash_time.as_millis(),
            read_and_plan_ms = plan_time.as_millis(),
            first_run_ms = first_run.elapsed().as_millis(),
            "model load phases"
        );
        Ok(Self {
            load_seconds: started.elapsed().as_secs_f64(),
            ..loaded
        })
    }

    /// The preprocessing this model expects.
    pub fn preprocessor(&self) -> &Preprocessor {
        &self.preprocessor
    }

    /// The engine that runs it.
    pub fn engine(&self) -> EngineKind {
        self.engine.kind()
    }

    /// The number of values of one input tensor.
    pub fn input_len(&self) -> usize {
        self.preprocessor.shape().iter().product()
    }

    /// Runs the model on one channel-first input and returns the score in 0..1.
    pub fn forward(&self, data: Vec<f32>) -> anyhow::Result<f32> {
        ensure!(
            data.len() == self.input_len(),
            "the input tensor has {} values, the model takes {}",
            data.len(),
            self.input_len()
        );
        let values = self.engine.run(data)?;
        score_from_output(&self.manifest.output, &values)
    }
}

/// The score of an output tensor, as the manifest's `output` says to read it.
pub fn score_from_output(spec: &OutputSpec, values: &[f32]) -> anyhow::Result<f32> {
    match spec {
        OutputSpec::SigmoidScore => {
            ensure!(
                values.len() == 1,
                "a sigmoid score output has one value, the model gave {}",
                values.len()
            );
            Ok(values[0])
        }
        OutputSpec::Softmax { labels, positive } => {
            ensure!(
                values.len() == labels.len(),
                "the model gave {} values for {} labels",
                values.len(),
                labels.len()
            );
            let index = labels
                .iter()
                .position(|l| l == positive)
                .context("unknown positive label")?;
            let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let exps: Vec<f32> = values.iter().map(|v| (v - max).exp()).collect();
            Ok(exps[index] / exps.iter().sum::<f32>())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sigmoid_output_is_the_score() {
        assert_eq!(
            score_from_output(&OutputSpec::SigmoidScore, &[0.625]).expect("score"),
            0.625
        );
    }

    #[test]
    fn a_softmax_output_scores_the_positive_class() {
        let spec = OutputSpec::Softmax {
            labels: vec!["forgettable".into(), "memorable".into()],
            positive: "memorable".into(),
        };
        let score = score_from_output(&spec, &[0.0, 2.0f32.ln()]).expect("score");
        assert!((score - 2.0 / 3.0).abs() < 1e-6, "{score}");
    }

    #[test]
    fn an_output_of_the_wrong_size_is_an_error() {
        assert!(score_from_output(&OutputSpec::SigmoidScore, &[0.1, 0.2]).is_err());
    }
}
