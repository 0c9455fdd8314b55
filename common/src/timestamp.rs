//! The one unit every service stores times in: whole microseconds since the Unix epoch, in a
//! BIGINT column (PostgreSQL's own timestamp precision), rendered as RFC 3339 in the API.

use std::time::Duration;

use time::{format_description::well_known::Rfc3339, OffsetDateTime};

/// A point in time: microseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        let micros = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000;
        Self(i64::try_from(micros).unwrap_or(i64::MAX))
    }

    /// The time `micros` microseconds after the epoch, as stored in the database.
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// The value to store in the database.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// `duration` later, saturating at the end of representable time.
    #[must_use]
    pub fn saturating_add(self, duration: Duration) -> Self {
        Self(self.0.saturating_add(micros_of(duration)))
    }

    /// `duration` earlier, saturating at the beginning of representable time.
    #[must_use]
    pub fn saturating_sub(self, duration: Duration) -> Self {
        Self(self.0.saturating_sub(micros_of(duration)))
    }

    /// RFC 3339 text in UTC with as many fractional digits as needed (none for whole seconds).
    pub fn to_rfc3339(self) -> String {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1000)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_default()
    }
}

impl From<i64> for Timestamp {
    fn from(micros: i64) -> Self {
        Self::from_micros(micros)
    }
}

fn micros_of(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microseconds_render_as_rfc3339() {
        let at = Timestamp::from_micros(1_700_000_000_123_456);
        assert_eq!(at.to_rfc3339(), "2023-11-14T22:13:20.123456Z");
        assert_eq!(
            Timestamp::from_micros(1_700_000_000_123_000).to_rfc3339(),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(
            Timestamp::from_micros(0).to_rfc3339(),
            "1970-01-01T00:00:00Z"
        );
    }

    #[test]
    fn now_is_in_microseconds() {
        let now = Timestamp::now().as_micros();
        // 2020-01-01 and 2100-01-01 in microseconds: a millisecond or nanosecond clock misses.
        assert!(
            (1_577_836_800_000_000..4_102_444_800_000_000).contains(&now),
            "{now}"
        );
    }

    #[test]
    fn adding_a_duration_counts_microseconds_and_saturates() {
        let at = Timestamp::from_micros(1_000);
        assert_eq!(
            at.saturating_add(Duration::from_millis(2)).as_micros(),
            3_000
        );
        assert_eq!(
            at.saturating_sub(Duration::from_micros(1_500)).as_micros(),
            -500
        );
        assert_eq!(
            at.saturating_add(Duration::MAX),
            Timestamp::from_micros(i64::MAX)
        );
    }
}
