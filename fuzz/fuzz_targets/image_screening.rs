//! Arbitrary bytes as an uploaded image: sniffed, screened in one piece and as a stream in uneven
//! chunks (the verdicts must agree), then decoded under the limits in every way the services do.
//! Nothing may panic, no decode may hold more memory than the limits allow (see `HEAP_BOUND`),
//! and whatever is accepted is within the limits.

#![no_main]

use common::imaging::{decode_rgb, screen, ImageType, Rejection, Screening};
use forgettable_fuzz::{assert_decodes_consistently, LIMITS};
use libfuzzer_sys::fuzz_target;

/// The verdict of screening `bytes` as images_service does while they stream in: refused as soon
/// as the size limit is passed or the first bytes show a type that is not accepted.
fn streamed(bytes: &[u8], chunk_len: impl Fn(usize) -> usize) -> Result<ImageType, Rejection> {
    let mut screening = Screening::new(&LIMITS);
    let (mut rest, mut index) = (bytes, 0);
    while !rest.is_empty() {
        let (chunk, after) = rest.split_at(chunk_len(index).clamp(1, rest.len()));
        screening.push(chunk)?;
        screening.kind()?;
        (rest, index) = (after, index + 1);
    }
    screening.finish()
}

fuzz_target!(|bytes: &[u8]| {
    let verdict = screen(bytes, &LIMITS);
    // Byte by byte, then in chunks of uneven sizes as a network delivers them.
    let seed = bytes.len();
    for found in [
        streamed(bytes, |_| 1),
        streamed(bytes, |i| 1 + (i * 31 + seed) % 257),
    ] {
        let refused_earlier = found == Err(Rejection::UnsupportedType)
            && verdict
                == Err(Rejection::TooLarge {
                    limit: LIMITS.max_upload_bytes,
                });
        assert!(
            found == verdict || refused_earlier,
            "screened as a stream: {found:?}, in one piece: {verdict:?}"
        );
    }
    match verdict {
        Ok(kind) => {
            assert_eq!(ImageType::sniff(bytes), Some(kind), "screened as {kind}");
            assert_decodes_consistently(bytes, kind, &LIMITS);
        }
        Err(rejection) => {
            assert_eq!(decode_rgb(bytes, &LIMITS).err(), Some(rejection));
        }
    }
});
