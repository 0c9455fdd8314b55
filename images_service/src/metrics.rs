//! The service's own metrics, registered in the shared registry (names in
//! `docs/configuration.md`).

use common::metrics::Metrics;
use prometheus::{IntCounter, IntCounterVec};

/// Every reason an upload can be refused, as the `reason` label.
pub const REJECTION_REASONS: [&str; 6] = [
    "missing_file",
    "empty",
    "too_large",
    "unsupported_type",
    "corrupt",
    "too_many_pixels",
];

/// Upload and storage counters.
#[derive(Clone)]
pub struct ImagesMetrics {
    pub uploads: IntCounter,
    pub upload_bytes: IntCounter,
    pub rejections: IntCounterVec,
    pub deduplicated: IntCounter,
    pub orphans_swept: IntCounter,
}

impl ImagesMetrics {
    /// Creates the counters and registers them with `metrics`.
    pub fn register(metrics: &Metrics) -> anyhow::Result<Self> {
        Ok(Self {
            uploads: metrics.counter(
                "images_uploads_total",
                "Images stored (new, not deduplicated).",
            )?,
            upload_bytes: metrics.counter(
                "images_upload_bytes_total",
                "Bytes of images stored (new, not deduplicated).",
            )?,
            rejections: metrics.counter_by(
                "images_upload_rejections_total",
                "Uploads refused, by reason.",
                "reason",
                &REJECTION_REASONS,
            )?,
            deduplicated: metrics.counter(
                "images_deduplicated_total",
                "Uploads answered with the user's existing image of the same bytes.",
            )?,
            orphans_swept: metrics.counter(
                "images_orphans_swept_total",
                "Blobs without a metadata row and stale temporaries removed by the start-up sweep.",
            )?,
        })
    }
}
