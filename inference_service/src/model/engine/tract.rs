//! The tract engine: the ONNX file optimised for a batch of one into one plan shared by every
//! worker, each worker with its own thread pool for the matrix products and element-wise work
//! inside a forward pass.

use std::sync::Arc;

use anyhow::{ensure, Context};
use tract_linalg::multithread::{multithread_tract_scope, Executor};
use tract_onnx::prelude::*;

use super::{Engine, EngineKind, Lanes, ModelSpec, Parallelism};

/// A model planned by tract.
pub struct TractEngine {
    plan: Arc<TypedRunnableModel>,
    input_shape: [usize; 4],
    /// One executor per worker: single-threaded, or a pool of `INFERENCE_THREADS` threads.
    executors: Lanes<Executor>,
}

impl TractEngine {
    /// Reads the ONNX file, checks its single input and plans it for `input_shape`.
    pub fn load(model: &ModelSpec<'_>, parallelism: Parallelism) -> anyhow::Result<Self> {
        let path = model.path;
        let mut graph = tract_onnx::onnx()
            .model_for_path(path)
            .with_context(|| format!("cannot read the ONNX model {}", path.display()))?;
        let inputs = graph.input_outlets()?.to_vec();
        ensure!(
            inputs.len() == 1,
            "the model has {} inputs; one image input is expected",
            inputs.len()
        );
        let input_name = &graph.node(inputs[0].node).name;
        ensure!(
            input_name == model.input_name,
            "the model's input is named `{input_name}` but the manifest says `{}`",
            model.input_name
        );
        graph.set_input_fact(0, f32::fact(model.input_shape).into())?;
        let plan = graph
            .into_optimized()
            .context("cannot optimise the model")?
            .into_runnable()
            .context("cannot plan the model")?;
        let executors = (0..parallelism.lanes.max(1))
            .map(|lane| {
                if parallelism.threads > 1 {
                    Executor::multithread_with_name(parallelism.threads, &format!("tract-{lane}"))
                } else {
                    Executor::SingleThread
                }
            })
            .collect();
        Ok(Self {
            plan,
            input_shape: model.input_shape,
            executors: Lanes::new(executors),
        })
    }
}

impl Engine for TractEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Tract
    }

    fn run(&self, input: Vec<f32>) -> anyhow::Result<Vec<f32>> {
        let input = tract_ndarray::Array4::from_shape_vec(self.input_shape, input)
            .context("the input tensor has the wrong size")?;
        let input: TValue = Tensor::from(input).into();
        let outputs = self.executors.with(|executor| {
            multithread_tract_scope(executor.clone(), || self.plan.run(tvec!(input)))
        })??;
        let output = outputs.first().context("the model produced no output")?;
        Ok(output
            .to_plain_array_view::<f32>()?
            .iter()
            .copied()
            .collect())
    }
}
