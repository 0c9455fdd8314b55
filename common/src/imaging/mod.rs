//! Which image files the services accept, and the one way every service checks them, so an image
//! images_service stores is one inference_service scores and both refuse exactly the same files.
//!
//! 1. [`Screening`] (or [`screen`] for bytes in memory): the size limit while the bytes stream in,
//!    the type from the first bytes ([`ImageType::sniff`]), and completeness from the last bytes,
//!    or for a JPEG from its markers, so a trailer after its end is no truncation (lenient
//!    decoders fill a truncated image with grey instead of failing).
//! 2. [`decode`]: the dimensions and memory need from the header, then a full decode under
//!    [`ImageLimits`]; or [`validate`], the same verdict without keeping the pixels (a PNG is
//!    checked row by row).
//!
//! Every refusal is a [`Rejection`], answered with the same status and problem type everywhere.

mod decode;
mod image_type;
mod jpeg_end;
mod rejection;
#[cfg(feature = "imaging-samples")]
pub mod samples;
mod screening;

pub use crate::config::ImageLimits;
pub use decode::{decode, decode_rgb, validate};
pub use image_type::{ImageType, SNIFF_LEN};
pub use rejection::Rejection;
pub use screening::{screen, Screening};
