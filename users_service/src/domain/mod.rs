//! Input that has been parsed into types which can only hold valid values.
//!
//! Handlers turn raw request strings into these once, at the edge; everything further in takes
//! the newtype and never re-checks.

mod email;
mod password;
mod username;

pub use email::Email;
pub use password::Password;
pub use username::Username;
