//! inference_service over real HTTP, with the tiny model and the real images_service in-process.

mod engines;
mod fetching;
mod helpers;
mod model;
mod ops;
mod overload;
mod predict;
mod refused;
mod rejections;
