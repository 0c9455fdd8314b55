//! The checks that need only a file's length, first bytes, last bytes and (for a JPEG) a walk
//! over its markers: the size limit, the type and completeness. They run as the bytes stream in, so a file is refused before it is
//! stored or decoded, and a body held in memory goes through the very same steps.

use super::{image_type::SNIFF_LEN, jpeg_end::JpegEnd, ImageLimits, ImageType, Rejection};

/// Bytes kept from the end of the file to find its end marker.
const TAIL_LEN: usize = 64;

/// One file's bytes seen so far, fed chunk by chunk.
#[derive(Debug, Clone)]
pub struct Screening {
    max_bytes: u64,
    head: Vec<u8>,
    tail: Vec<u8>,
    total: u64,
    /// A JPEG's end is found by following its structure (its tail may be a trailer).
    jpeg: JpegEnd,
}

impl Screening {
    /// An empty screening under `limits.max_upload_bytes`.
    pub fn new(limits: &ImageLimits) -> Self {
        Self {
            max_bytes: limits.max_upload_bytes,
            head: Vec::with_capacity(SNIFF_LEN),
            tail: Vec::with_capacity(TAIL_LEN * 2),
            total: 0,
            jpeg: JpegEnd::new(),
        }
    }

    /// Takes the next chunk; refuses as soon as the file passes the size limit.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), Rejection> {
        self.total += chunk.len() as u64;
        if self.total > self.max_bytes {
            return Err(Rejection::TooLarge {
                limit: self.max_bytes,
            });
        }
        self.jpeg.push(chunk);
        let wanted = SNIFF_LEN.saturating_sub(self.head.len()).min(chunk.len());
        self.head.extend_from_slice(&chunk[..wanted]);
        self.tail
            .extend_from_slice(&chunk[chunk.len().saturating_sub(TAIL_LEN)..]);
        if self.tail.len() > TAIL_LEN {
            self.tail.drain(..self.tail.len() - TAIL_LEN);
        }
        Ok(())
    }

    /// The type, once enough bytes are in to recognise every accepted type (`None` before);
    /// refused as soon as they are enough and match none.
    pub fn kind(&self) -> Result<Option<ImageType>, Rejection> {
        if self.head.len() < SNIFF_LEN {
            return Ok(None);
        }
        ImageType::sniff(&self.head)
            .map(Some)
            .ok_or(Rejection::UnsupportedType)
    }

    /// The verdict on the whole file: not empty, of an accepted type, not cut short.
    pub fn finish(&self) -> Result<ImageType, Rejection> {
        if self.total == 0 {
            return Err(Rejection::Empty);
        }
        let kind = ImageType::sniff(&self.head).ok_or(Rejection::UnsupportedType)?;
        if !kind.is_complete(&self.head, &self.tail, self.total, &self.jpeg) {
            return Err(Rejection::Corrupt {
                kind,
                reason: "the file ends early (truncated)".into(),
            });
        }
        Ok(kind)
    }

    /// Bytes seen so far.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether no byte has been seen yet.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

/// Screens a whole file held in memory: the same steps as streaming it in chunks.
pub fn screen(bytes: &[u8], limits: &ImageLimits) -> Result<ImageType, Rejection> {
    let mut screening = Screening::new(limits);
    screening.push(bytes)?;
    screening.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imaging::rejection::assert_corrupt;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const PNG_END: &[u8] = b"\0\0\0\0IEND\xae\x42\x60\x82";

    fn complete_png(body_len: usize) -> Vec<u8> {
        let mut bytes = PNG.to_vec();
        bytes.resize(PNG.len() + body_len, 7);
        bytes.extend_from_slice(PNG_END);
        bytes
    }

    #[test]
    fn a_file_in_small_chunks_gets_the_same_verdict_as_in_one_piece() {
        let limits = ImageLimits::default();
        for bytes in [
            complete_png(500),
            complete_png(500)[..400].to_vec(),
            b"plain text, not an image at all".to_vec(),
            b"\xff\xd8".to_vec(),
        ] {
            let mut screening = Screening::new(&limits);
            for chunk in bytes.chunks(5) {
                screening.push(chunk).expect("under the limit");
            }
            assert_eq!(screening.finish(), screen(&bytes, &limits), "{bytes:?}");
        }
    }

    #[test]
    fn a_complete_png_is_accepted_as_png() {
        assert_eq!(
            screen(&complete_png(100), &ImageLimits::default()),
            Ok(ImageType::Png)
        );
    }

    #[test]
    fn no_bytes_are_empty() {
        assert_eq!(screen(&[], &ImageLimits::default()), Err(Rejection::Empty));
    }

    #[test]
    fn the_type_is_known_once_the_first_twelve_bytes_are_in() {
        let mut screening = Screening::new(&ImageLimits::default());
        screening.push(&PNG[..11]).expect("pushed");
        assert_eq!(screening.kind(), Ok(None));
        screening.push(&PNG[11..]).expect("pushed");
        assert_eq!(screening.kind(), Ok(Some(ImageType::Png)));

        let mut text = Screening::new(&ImageLimits::default());
        text.push(b"hello, world!").expect("pushed");
        assert_eq!(text.kind(), Err(Rejection::UnsupportedType));
    }

    #[test]
    fn one_byte_over_the_limit_is_too_large_as_it_arrives() {
        let limits = ImageLimits {
            max_upload_bytes: 100,
            ..ImageLimits::default()
        };
        let mut screening = Screening::new(&limits);
        screening.push(&[0; 60]).expect("under the limit");
        screening.push(&[0; 40]).expect("at the limit");
        assert_eq!(
            screening.push(&[0]),
            Err(Rejection::TooLarge { limit: 100 })
        );
    }

    #[test]
    fn a_file_without_its_end_marker_is_corrupt() {
        let bytes = complete_png(100);
        let found = screen(&bytes[..bytes.len() - 1], &ImageLimits::default());
        assert_corrupt(&found, ImageType::Png);
    }
}
