//! The model end to end without HTTP: tract against reference scores, and the preprocessing
//! against Pillow on real photographs.
//!
//! The tiny generated model always runs. The real ResMem model and the Pillow reference come from
//! `cargo xtask test`, which exports `FORGETTABLE_MODEL_DIR` and `FORGETTABLE_PYTHON`; without them
//! those tests fail and say so.

mod helpers;
mod pillow;
mod resmem;
mod tiny;
