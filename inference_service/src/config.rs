//! The service's settings, read from the environment and validated at start.

use std::path::{Path, PathBuf};

use common::{
    config::{var, var_or, ConfigError, ImageLimits, ServerSettings},
    service::ServiceSettings,
};

use crate::model::{EngineKind, Parallelism};

/// How many model runs happen at once and how many requests may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// `INFERENCE_WORKERS`: model runs at once.
    pub workers: usize,
    /// `INFERENCE_THREADS`: threads inside one model run.
    pub threads: usize,
    /// `INFERENCE_QUEUE`: requests waiting for a worker before 503.
    pub queue: usize,
    /// `INFERENCE_DOWNLOADS`: stored images held in memory at once, from the first byte fetched
    /// until decoded; the others wait their turn before fetching. Each may be up to
    /// `MAX_UPLOAD_BYTES`, so this bounds the memory downloads take.
    pub downloads: usize,
}

impl Default for PoolSettings {
    /// Measured on 2 cores with ResMem: two single-threaded runs side by side answer more images
    /// per second than one run on two threads (see the crate's benchmark notes in the README).
    fn default() -> Self {
        Self {
            workers: 2,
            threads: 1,
            queue: 16,
            // The workers' next images arrive while they run: 4 × 20 MiB at most.
            downloads: 4,
        }
    }
}

impl PoolSettings {
    /// What the engine prepares: one lane per worker, `threads` threads each.
    pub fn parallelism(&self) -> Parallelism {
        Parallelism {
            lanes: self.workers,
            threads: self.threads,
        }
    }
}

/// Which engine runs the model, and where ONNX Runtime's library is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineSettings {
    /// `INFERENCE_ENGINE`: `tract` (default) or `onnxruntime`.
    pub kind: EngineKind,
    /// `ORT_DYLIB_PATH`: ONNX Runtime's shared library, used by the `onnxruntime` engine. By
    /// default the `libonnxruntime.so*` that `cargo xtask model` installs with the onnxruntime
    /// wheel into `./.venv` ([`find_onnxruntime`]); `None` when neither is there.
    pub onnxruntime_library: Option<PathBuf>,
}

impl EngineSettings {
    fn from_env() -> Result<Self, ConfigError> {
        let kind = var_or("INFERENCE_ENGINE", EngineKind::default())?;
        let onnxruntime_library = match var::<PathBuf>("ORT_DYLIB_PATH")? {
            Some(path) => Some(path),
            // Only looked for when it will be used.
            None if kind == EngineKind::OnnxRuntime => find_onnxruntime(Path::new(".venv")),
            None => None,
        };
        Ok(Self {
            kind,
            onnxruntime_library,
        })
    }
}

/// The ONNX Runtime library the onnxruntime wheel installed into the virtualenv `venv`:
/// `lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*`, the newest Python first.
pub fn find_onnxruntime(venv: &Path) -> Option<PathBuf> {
    let mut pythons: Vec<PathBuf> = std::fs::read_dir(venv.join("lib"))
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("python3"))
        })
        .collect();
    pythons.sort();
    pythons.into_iter().rev().find_map(|python| {
        let capi = python.join("site-packages/onnxruntime/capi");
        let mut libraries: Vec<PathBuf> = std::fs::read_dir(capi)
            .ok()?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| {
                path.is_file()
                    && path
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("libonnxruntime.so"))
            })
            .collect();
        libraries.sort();
        libraries.pop()
    })
}

/// Everything inference_service is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    /// `MODEL_DIR`: folder with `manifest.json` and the ONNX file.
    pub model_dir: PathBuf,
    /// `IMAGES_URL`: images_service's base URL.
    pub images_url: String,
    /// `PREDICT_THRESHOLD`: overrides the manifest's threshold.
    pub threshold: Option<f32>,
    pub pool: PoolSettings,
    pub engine: EngineSettings,
    /// `MAX_UPLOAD_BYTES`, `MAX_IMAGE_DIMENSION`, `MAX_IMAGE_PIXELS`, `MAX_DECODE_BYTES`: the
    /// same variables and defaults as images_service.
    pub limits: ImageLimits,
    /// `INFERENCE_CACHE_ENTRIES`: predictions remembered by (image SHA-256, model SHA-256); 0 turns
    /// the cache off.
    pub cache_entries: u64,
}

impl ServiceSettings for Settings {
    const DEFAULT_LISTEN_ADDR: &'static str = "127.0.0.1:8301";
    const DEFAULT_INSTANCE_NAME: &'static str = "inference";

    fn from_env() -> Result<Self, ConfigError> {
        let pool = PoolSettings::default();
        let settings = Self {
            server: Self::server_from_env()?,
            model_dir: var_or("MODEL_DIR", PathBuf::from("data/models/resmem"))?,
            images_url: var_or("IMAGES_URL", "http://127.0.0.1:8201".to_owned())?,
            threshold: var("PREDICT_THRESHOLD")?,
            pool: PoolSettings {
                workers: var_or("INFERENCE_WORKERS", pool.workers)?,
                threads: var_or("INFERENCE_THREADS", pool.threads)?,
                queue: var_or("INFERENCE_QUEUE", pool.queue)?,
                downloads: var_or("INFERENCE_DOWNLOADS", pool.downloads)?,
            },
            engine: EngineSettings::from_env()?,
            limits: ImageLimits::from_env()?,
            cache_entries: var_or("INFERENCE_CACHE_ENTRIES", 10_000)?,
        };
        settings.validate()?;
        Ok(settings)
    }

    fn server(&self) -> &ServerSettings {
        &self.server
    }
}

impl Settings {
    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(threshold) = self.threshold {
            if !(0.0..=1.0).contains(&threshold) {
                return Err(ConfigError::new("PREDICT_THRESHOLD", "must be within 0..1"));
            }
        }
        if self.pool.workers == 0 {
            return Err(ConfigError::new("INFERENCE_WORKERS", "must be at least 1"));
        }
        if self.pool.threads == 0 {
            return Err(ConfigError::new("INFERENCE_THREADS", "must be at least 1"));
        }
        if self.pool.downloads == 0 {
            return Err(ConfigError::new(
                "INFERENCE_DOWNLOADS",
                "must be at least 1",
            ));
        }
        if self.engine.kind == EngineKind::OnnxRuntime && self.engine.onnxruntime_library.is_none()
        {
            return Err(ConfigError::new(
                "ORT_DYLIB_PATH",
                "not set, and no libonnxruntime.so* under \
                 ./.venv/lib/python3*/site-packages/onnxruntime/capi (`cargo xtask model` installs it \
                 with the onnxruntime wheel): set it to ONNX Runtime's shared library",
            ));
        }
        self.limits.validate()?;
        if !(self.images_url.starts_with("http://") || self.images_url.starts_with("https://")) {
            return Err(ConfigError::new(
                "IMAGES_URL",
                "expected `http://HOST:PORT` or `https://…`",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            server: Settings::server_from_env().expect("server settings"),
            model_dir: PathBuf::from("model"),
            images_url: "http://127.0.0.1:8201".into(),
            threshold: None,
            pool: PoolSettings::default(),
            engine: EngineSettings::default(),
            limits: ImageLimits::default(),
            cache_entries: 10,
        }
    }

    /// The other cases each change one field of this baseline, so it must pass on its own.
    #[test]
    fn the_baseline_the_other_cases_vary_is_valid() {
        assert!(settings().validate().is_ok());
    }

    #[test]
    fn a_threshold_outside_zero_to_one_names_its_variable() {
        let err = Settings {
            threshold: Some(1.5),
            ..settings()
        }
        .validate()
        .expect_err("invalid");
        assert_eq!(err.name, "PREDICT_THRESHOLD");
    }

    #[test]
    fn zero_workers_names_its_variable() {
        let bad = Settings {
            pool: PoolSettings {
                workers: 0,
                ..PoolSettings::default()
            },
            ..settings()
        };
        assert_eq!(
            bad.validate().expect_err("invalid").name,
            "INFERENCE_WORKERS"
        );
    }

    #[test]
    fn zero_downloads_names_its_variable() {
        let bad = Settings {
            pool: PoolSettings {
                downloads: 0,
                ..PoolSettings::default()
            },
            ..settings()
        };
        assert_eq!(
            bad.validate().expect_err("invalid").name,
            "INFERENCE_DOWNLOADS"
        );
    }

    #[test]
    fn the_onnxruntime_engine_without_a_library_names_ort_dylib_path() {
        let bad = Settings {
            engine: EngineSettings {
                kind: EngineKind::OnnxRuntime,
                onnxruntime_library: None,
            },
            ..settings()
        };
        assert_eq!(bad.validate().expect_err("invalid").name, "ORT_DYLIB_PATH");
    }

    #[test]
    fn the_library_is_found_where_the_onnxruntime_wheel_puts_it() {
        let venv = tempfile::tempdir().expect("tempdir");
        assert_eq!(find_onnxruntime(venv.path()), None);
        let capi = venv
            .path()
            .join("lib/python3.11/site-packages/onnxruntime/capi");
        std::fs::create_dir_all(&capi).expect("mkdir");
        std::fs::write(capi.join("libonnxruntime_providers_shared.so"), b"").expect("write");
        assert_eq!(find_onnxruntime(venv.path()), None);
        std::fs::write(capi.join("libonnxruntime.so.1.32.0"), b"").expect("write");
        assert_eq!(
            find_onnxruntime(venv.path()),
            Some(capi.join("libonnxruntime.so.1.32.0"))
        );
    }

    #[test]
    fn an_images_url_without_scheme_names_its_variable() {
        let err = Settings {
            images_url: "images:8000".into(),
            ..settings()
        }
        .validate()
        .expect_err("invalid");
        assert_eq!(err.name, "IMAGES_URL");
    }
}
