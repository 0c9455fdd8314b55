//! Where a page of the newest-first image listing ends: an opaque cursor naming the last image
//! seen. Page sizes and cutting pages are [`common::pagination`]'s.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use common::timestamp::Timestamp;
use uuid::Uuid;

/// After the image created at `created_at` with id `id`, in newest-first order (ids break ties
/// between images of the same microsecond).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: Timestamp,
    pub id: Uuid,
}

impl common::pagination::Cursor for Cursor {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{}:{}",
            self.created_at.as_micros(),
            self.id.simple()
        ))
    }

    fn decode(text: &str) -> Option<Self> {
        let raw = URL_SAFE_NO_PAD.decode(text.trim()).ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (created_at, id) = raw.split_once(':')?;
        Some(Self {
            created_at: Timestamp::from_micros(created_at.parse().ok()?),
            id: id.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use common::pagination::Cursor as _;

    use super::*;

    #[test]
    fn a_cursor_survives_a_round_trip() {
        let cursor = Cursor {
            created_at: Timestamp::from_micros(1_764_000_000_123_456),
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
    }

    #[test]
    fn a_cursor_handed_out_before_keeps_working() {
        let id = Uuid::now_v7();
        let text = URL_SAFE_NO_PAD.encode(format!("1764000000123456:{}", id.simple()));
        assert_eq!(
            Cursor::decode(&text),
            Some(Cursor {
                created_at: Timestamp::from_micros(1_764_000_000_123_456),
                id
            })
        );
    }

    #[test]
    fn garbage_is_not_a_cursor() {
        for text in [
            "",
            "!!!",
            "bm90IGEgY3Vyc29y",
            &URL_SAFE_NO_PAD.encode("12:not-a-uuid"),
        ] {
            assert!(Cursor::decode(text).is_none(), "{text:?} was accepted");
        }
    }
}
