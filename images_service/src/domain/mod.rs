//! The service's rules, free of HTTP and storage: how a listing page and a cache validator are
//! written. What an image is and how it is checked is `common::imaging`, shared with
//! inference_service.

pub mod cursor;
pub mod etag;

pub use cursor::Cursor;
