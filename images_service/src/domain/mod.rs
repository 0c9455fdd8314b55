//! The service's rules, free of HTTP and storage: what an image is, how it is checked, how a
//! listing page and a cache validator are written.

pub mod cursor;
pub mod decode;
pub mod etag;
pub mod image_type;

pub use cursor::Cursor;
pub use decode::{inspect, DecodeError, Dimensions};
pub use image_type::ImageType;
