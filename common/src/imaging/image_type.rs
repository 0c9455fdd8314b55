//! The image types we accept, recognised by their first bytes (magic numbers) and checked for a
//! complete ending. A file's name and the client's `Content-Type` are never trusted.

/// Bytes needed to recognise every accepted type.
pub const SNIFF_LEN: usize = 12;

/// An accepted image type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageType {
    Jpeg,
    Png,
    WebP,
    Gif,
}

use super::jpeg_end::JpegEnd;

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
/// The `IEND` chunk (length 0, type, CRC) that ends every PNG.
const PNG_END: [u8; 12] = [0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xae, 0x42, 0x60, 0x82];

impl ImageType {
    /// Every accepted type.
    pub const ALL: [Self; 4] = [Self::Jpeg, Self::Png, Self::WebP, Self::Gif];

    /// The type whose signature `head` starts with; `None` for anything else.
    pub fn sniff(head: &[u8]) -> Option<Self> {
        if head.starts_with(&[0xff, 0xd8, 0xff]) {
            Some(Self::Jpeg)
        } else if head.starts_with(&PNG_SIGNATURE) {
            Some(Self::Png)
        } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
            Some(Self::Gif)
        } else if head.len() >= SNIFF_LEN && head.starts_with(b"RIFF") && &head[8..12] == b"WEBP" {
            Some(Self::WebP)
        } else {
            None
        }
    }

    /// The name people know the type by, as in "not a valid PNG image".
    pub fn name(self) -> &'static str {
        match self {
            Self::Jpeg => "JPEG",
            Self::Png => "PNG",
            Self::WebP => "WebP",
            Self::Gif => "GIF",
        }
    }

    /// The media type sent as `Content-Type`.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::WebP => "image/webp",
            Self::Gif => "image/gif",
        }
    }

    /// The media type's inverse, for rows read back from the database.
    pub fn from_mime(mime: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.mime() == mime)
    }

    /// The `image` crate's name for the type.
    pub fn format(self) -> image::ImageFormat {
        match self {
            Self::Jpeg => image::ImageFormat::Jpeg,
            Self::Png => image::ImageFormat::Png,
            Self::WebP => image::ImageFormat::WebP,
            Self::Gif => image::ImageFormat::Gif,
        }
    }

    /// Whether a file of this type that starts with `head`, ends with `tail` and is `total` bytes
    /// long has its end marker. Lenient decoders fill a truncated image with grey instead of
    /// failing, so a missing end marker is how truncation is caught. A JPEG may carry a trailer
    /// after its end marker, so its tail cannot tell: `jpeg` followed its whole structure.
    pub(super) fn is_complete(self, head: &[u8], tail: &[u8], total: u64, jpeg: &JpegEnd) -> bool {
        match self {
            Self::Jpeg => jpeg.ended(),
            Self::Png => tail.ends_with(&PNG_END),
            Self::Gif => trim_trailing_zeros(tail).ends_with(&[0x3b]),
            Self::WebP => {
                let Some(size) = head.get(4..8) else {
                    return false;
                };
                let riff_size = u64::from(u32::from_le_bytes([size[0], size[1], size[2], size[3]]));
                total >= riff_size + 8
            }
        }
    }
}

/// Some writers pad files with zero bytes after the end marker.
fn trim_trailing_zeros(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    &bytes[..end]
}

impl std::fmt::Display for ImageType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_accepted_signature_is_recognised() {
        assert_eq!(
            ImageType::sniff(&[0xff, 0xd8, 0xff, 0xe0, 0, 0x10]),
            Some(ImageType::Jpeg)
        );
        assert_eq!(ImageType::sniff(&PNG_SIGNATURE), Some(ImageType::Png));
        assert_eq!(ImageType::sniff(b"GIF89a\x01\x00"), Some(ImageType::Gif));
        assert_eq!(ImageType::sniff(b"GIF87a"), Some(ImageType::Gif));
        assert_eq!(
            ImageType::sniff(b"RIFF\x24\0\0\0WEBPVP8 "),
            Some(ImageType::WebP)
        );
    }

    #[test]
    fn text_and_other_formats_are_not_images() {
        assert_eq!(ImageType::sniff(b"hello, I am a text file"), None);
        assert_eq!(ImageType::sniff(b""), None);
        assert_eq!(ImageType::sniff(b"BM\x36\x00"), None, "BMP is not accepted");
        assert_eq!(
            ImageType::sniff(b"RIFF\x24\0\0\0WAVEfmt "),
            None,
            "a WAV file is RIFF but not WebP"
        );
        assert_eq!(ImageType::sniff(b"%PDF-1.7"), None);
    }

    #[test]
    fn a_truncated_signature_is_not_an_image() {
        assert_eq!(ImageType::sniff(&PNG_SIGNATURE[..5]), None);
        assert_eq!(ImageType::sniff(b"RIFF\x24\0\0\0WE"), None);
    }

    #[test]
    fn mime_types_round_trip() {
        for t in [
            ImageType::Jpeg,
            ImageType::Png,
            ImageType::WebP,
            ImageType::Gif,
        ] {
            assert_eq!(ImageType::from_mime(t.mime()), Some(t));
        }
        assert_eq!(ImageType::from_mime("text/plain"), None);
    }

    fn complete(kind: ImageType, head: &[u8], tail: &[u8], total: u64) -> bool {
        kind.is_complete(head, tail, total, &JpegEnd::new())
    }

    #[test]
    fn a_jpeg_is_complete_when_its_structure_ended() {
        let head = [0xff, 0xd8, 0xff, 0xd9];
        let mut ended = JpegEnd::new();
        ended.push(&head);
        assert!(ImageType::Jpeg.is_complete(&head, b"trailer", 100, &ended));
        assert!(
            !complete(ImageType::Jpeg, &head, &[0xff, 0xd9], 100),
            "an end marker in the tail alone proves nothing"
        );
    }

    #[test]
    fn a_png_without_iend_is_incomplete() {
        let mut tail = vec![1, 2, 3];
        tail.extend_from_slice(&PNG_END);
        assert!(complete(ImageType::Png, &PNG_SIGNATURE, &tail, 100));
        assert!(!complete(
            ImageType::Png,
            &PNG_SIGNATURE,
            &tail[..tail.len() - 1],
            100
        ));
    }

    #[test]
    fn a_webp_shorter_than_its_riff_size_is_incomplete() {
        let head = b"RIFF\x24\0\0\0WEBP";
        assert!(complete(ImageType::WebP, head, &[], 0x24 + 8));
        assert!(!complete(ImageType::WebP, head, &[], 0x24));
    }

    #[test]
    fn a_gif_needs_its_trailer() {
        assert!(complete(ImageType::Gif, b"GIF89a", &[0, 0x3b], 50));
        assert!(!complete(ImageType::Gif, b"GIF89a", &[0x2c, 0x01], 50));
    }
}
