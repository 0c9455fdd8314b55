//! Listing pages: an opaque cursor naming the last item seen, and a bounded page size.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use uuid::Uuid;

/// Where the next page starts: after the item created at `created_at` (µs) with id `id`, in
/// newest-first order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: i64,
    pub id: Uuid,
}

impl Cursor {
    /// The opaque text handed to clients.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}", self.created_at, self.id.simple()))
    }

    /// Reads a cursor a client sent back.
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid = || "`cursor` is not a cursor this service handed out".to_owned();
        let raw = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| invalid())?;
        let raw = String::from_utf8(raw).map_err(|_| invalid())?;
        let (created_at, id) = raw.split_once(':').ok_or_else(invalid)?;
        Ok(Self {
            created_at: created_at.parse().map_err(|_| invalid())?,
            id: id.parse().map_err(|_| invalid())?,
        })
    }
}

/// A page size between 1 and 100 (default 20).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit(u32);

impl PageLimit {
    pub const DEFAULT: Self = Self(20);
    pub const MAX: u32 = 100;

    pub fn parse(limit: Option<u32>) -> Result<Self, String> {
        match limit {
            None => Ok(Self::DEFAULT),
            Some(n) if (1..=Self::MAX).contains(&n) => Ok(Self(n)),
            Some(n) => Err(format!(
                "`limit` must be between 1 and {}, got {n}",
                Self::MAX
            )),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_survives_a_round_trip() {
        let cursor = Cursor {
            created_at: 1_764_000_000_123_456,
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::parse(&cursor.encode()), Ok(cursor));
    }

    #[test]
    fn garbage_is_not_a_cursor() {
        for text in [
            "",
            "!!!",
            "bm90IGEgY3Vyc29y",
            &URL_SAFE_NO_PAD.encode("12:not-a-uuid"),
        ] {
            assert!(Cursor::parse(text).is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn page_limits_outside_one_to_a_hundred_are_refused() {
        assert_eq!(PageLimit::parse(None), Ok(PageLimit::DEFAULT));
        assert_eq!(PageLimit::parse(Some(100)).map(PageLimit::get), Ok(100));
        assert_eq!(PageLimit::parse(Some(1)).map(PageLimit::get), Ok(1));
        assert!(PageLimit::parse(Some(0)).is_err());
        assert!(PageLimit::parse(Some(101))
            .expect_err("101 is too many")
            .contains("limit"));
    }
}
