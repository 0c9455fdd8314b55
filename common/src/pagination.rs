//! Keyset pagination for every list endpoint: a bounded page size, an opaque cursor naming the
//! last item of the previous page, and cutting one page out of a query that asked for one row
//! more than the page holds (that extra row only says whether another page follows).

use uuid::Uuid;

/// The sizes an endpoint allows: `1..=max`, `default` when the client gives none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSizes {
    pub default: u32,
    pub max: u32,
}

/// Where an item's page ends, as text handed to clients and read back from them.
pub trait Cursor: Sized {
    fn encode(&self) -> String;
    /// `None` for text this endpoint never handed out.
    fn decode(text: &str) -> Option<Self>;
}

/// Items in id order: a UUIDv7 sorts by creation time and is its own cursor.
impl Cursor for Uuid {
    fn encode(&self) -> String {
        self.to_string()
    }

    fn decode(text: &str) -> Option<Self> {
        Uuid::parse_str(text.trim()).ok()
    }
}

/// A client's request for one page: how many items, after which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest<C> {
    limit: u32,
    pub after: Option<C>,
}

impl<C: Cursor> PageRequest<C> {
    /// Reads the `limit` and `cursor` query parameters; the error names the bad one.
    pub fn parse(
        sizes: PageSizes,
        limit: Option<i64>,
        cursor: Option<&str>,
    ) -> Result<Self, String> {
        let limit = match limit {
            None => sizes.default,
            Some(n) => u32::try_from(n)
                .ok()
                .filter(|n| (1..=sizes.max).contains(n))
                .ok_or_else(|| format!("`limit` must be between 1 and {}, got {n}.", sizes.max))?,
        };
        let after = cursor
            .map(|text| {
                C::decode(text)
                    .ok_or_else(|| "`cursor` is not a cursor returned by this endpoint.".to_owned())
            })
            .transpose()?;
        Ok(Self { limit, after })
    }

    /// The page size.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// How many rows to query: one more than the page, to learn whether another page follows.
    pub fn rows_to_fetch(&self) -> i64 {
        i64::from(self.limit) + 1
    }

    /// The page within `rows` (queried with [`Self::rows_to_fetch`]), and the cursor of its last
    /// item when more follow.
    pub fn page<T>(&self, mut rows: Vec<T>, cursor_of: impl Fn(&T) -> Option<C>) -> Page<T> {
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().and_then(cursor_of).map(|c| c.encode())
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }
}

/// One page of items and the cursor of the next page (`None` on the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZES: PageSizes = PageSizes {
        default: 20,
        max: 100,
    };

    fn parse(limit: Option<i64>, cursor: Option<&str>) -> Result<PageRequest<Uuid>, String> {
        PageRequest::parse(SIZES, limit, cursor)
    }

    #[test]
    fn page_sizes_outside_one_to_the_maximum_are_refused() {
        assert_eq!(parse(None, None).map(|r| r.limit()), Ok(20));
        assert_eq!(parse(Some(1), None).map(|r| r.limit()), Ok(1));
        assert_eq!(parse(Some(100), None).map(|r| r.limit()), Ok(100));
        for bad in [0, -1, 101, i64::MAX] {
            let error = parse(Some(bad), None).expect_err("refused");
            assert!(
                error.contains("`limit`") && error.contains("100"),
                "{error}"
            );
        }
    }

    #[test]
    fn a_cursor_that_was_not_handed_out_is_refused() {
        let error = parse(None, Some("xyz")).expect_err("refused");
        assert!(error.contains("`cursor`"), "{error}");
        let id = Uuid::now_v7();
        assert_eq!(
            parse(None, Some(&id.to_string())).map(|r| r.after),
            Ok(Some(id))
        );
    }

    #[test]
    fn one_row_more_than_the_page_gives_a_next_cursor() {
        let request = parse(Some(2), None).expect("request");
        assert_eq!(request.rows_to_fetch(), 3);
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();

        let page = request.page(ids.clone(), |id| Some(*id));
        assert_eq!(page.items, ids[..2]);
        assert_eq!(page.next_cursor, Some(ids[1].to_string()));

        let last = request.page(ids[..2].to_vec(), |id| Some(*id));
        assert_eq!(last.items, ids[..2]);
        assert_eq!(last.next_cursor, None);
    }
}
