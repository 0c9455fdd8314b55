//! The service's own metrics, registered in the shared registry (names in
//! `docs/configuration.md`).

use common::metrics::Metrics;
use prometheus::{IntCounter, IntCounterVec, Opts};

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
        let rejections = metrics.register(IntCounterVec::new(
            Opts::new(
                "images_upload_rejections_total",
                "Uploads refused, by reason.",
            ),
            &["reason"],
        )?)?;
        for reason in REJECTION_REASONS {
            rejections.with_label_values(&[reason]);
        }
        Ok(Self {
            uploads: metrics.register(IntCounter::new(
                "images_uploads_total",
                "Images stored (new, not deduplicated).",
            )?)?,
            upload_bytes: metrics.register(IntCounter::new(
                "images_upload_bytes_total",
                "Bytes of images stored (new, not deduplicated).",
            )?)?,
            rejections,
            deduplicated: metrics.register(IntCounter::new(
                "images_deduplicated_total",
                "Uploads answered with the user's existing image of the same bytes.",
            )?)?,
            orphans_swept: metrics.register(IntCounter::new(
                "images_orphans_swept_total",
                "Blobs without a metadata row and stale temporaries removed by the start-up sweep.",
            )?)?,
        })
    }
}
