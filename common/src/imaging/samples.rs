//! Files every service must refuse, each with the answer it must get, and unusual files every
//! service must accept, so the services' HTTP tests hold them all to the same rules. Built on the
//! fly with the `image` and `png` crates; for tests only (feature `imaging-samples`).

use std::io::{Cursor, Write};

use image::{ImageFormat, RgbImage};

/// A file that must be refused, and how.
#[derive(Debug, Clone)]
pub struct Refused {
    /// What the file is, for assertion messages.
    pub name: &'static str,
    pub bytes: Vec<u8>,
    /// The HTTP status of the answer.
    pub status: u16,
    /// The problem+json `type` of the answer.
    pub problem_type: &'static str,
}

impl Refused {
    /// Asserts that `response` is this sample's answer: its status and problem type, as
    /// problem+json. `how` says how the file was sent, for the failure message.
    pub async fn assert_answered_by(&self, response: reqwest::Response, how: &str) {
        let status = response.status().as_u16();
        let content_type = response.headers()["content-type"].clone();
        let body: serde_json::Value = response.json().await.expect("problem body");
        assert_eq!(
            (status, body["type"].as_str()),
            (self.status, Some(self.problem_type)),
            "{} as {how}: {body}",
            self.name
        );
        assert_eq!(
            content_type, "application/problem+json",
            "{} as {how}",
            self.name
        );
    }
}

/// A file that must be accepted although a strict reading could refuse it.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// What the file is, for assertion messages.
    pub name: &'static str,
    pub bytes: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// Every accepted sample: JPEGs with bytes after their end marker, as cameras and editors write
/// them (maker notes, a second picture, a video), one with a thumbnail in its EXIF segment.
pub fn accepted() -> Vec<Accepted> {
    let jpeg = encoded(ImageFormat::Jpeg, 200, 150);
    let trailer: Vec<u8> = (0..2048u32)
        .map(|i| [0xff, 0x12, 0xd8, b'x'][(i % 4) as usize])
        .collect();
    let accepted = |name, bytes| Accepted {
        name,
        bytes,
        width: 200,
        height: 150,
    };
    vec![
        accepted("a JPEG followed by a 2 KiB trailer", {
            let mut bytes = jpeg.clone();
            bytes.extend_from_slice(&trailer);
            bytes
        }),
        accepted("a JPEG with an EXIF thumbnail, followed by a trailer", {
            let mut bytes = with_thumbnail(&jpeg);
            bytes.extend_from_slice(b"SEFH trailer written by a phone");
            bytes
        }),
    ]
}

const CORRUPT: &str = "/problems/corrupt-image";
const TOO_MANY_PIXELS: &str = "/problems/too-many-pixels";

/// Every refused sample: truncated and corrupt files of each accepted type, files of other
/// types, an empty file and a decompression bomb's header. Each is far below any upload limit.
pub fn refused() -> Vec<Refused> {
    let jpeg = encoded(ImageFormat::Jpeg, 200, 150);
    let png = encoded(ImageFormat::Png, 120, 90);
    let webp = encoded(ImageFormat::WebP, 120, 90);
    let gif = encoded(ImageFormat::Gif, 120, 90);
    let corrupt = |name, bytes| Refused {
        name,
        bytes,
        status: 422,
        problem_type: CORRUPT,
    };
    vec![
        corrupt("a JPEG cut at two thirds", cut(&jpeg, 2, 3)),
        corrupt(
            "a JPEG with an EXIF thumbnail, cut in its picture",
            cut(&with_thumbnail(&jpeg), 2, 3),
        ),
        corrupt("a PNG cut in half", cut(&png, 1, 2)),
        corrupt("a WebP cut in half", cut(&webp, 1, 2)),
        corrupt("a GIF cut in half", cut(&gif, 1, 2)),
        corrupt("a JPEG with noise between its markers", noisy(&jpeg, 4, 2)),
        corrupt("a PNG with noise between its markers", noisy(&png, 8, 12)),
        corrupt(
            "a WebP with noise after its RIFF header",
            noisy(&webp, 12, 0),
        ),
        corrupt("a GIF with noise between its markers", noisy(&gif, 13, 1)),
        Refused {
            name: "a text file",
            bytes: b"I am plain text pretending to be a photo.\n".repeat(10),
            status: 415,
            problem_type: "/problems/unsupported-media-type",
        },
        Refused {
            name: "a BMP image",
            bytes: bmp(),
            status: 415,
            problem_type: "/problems/unsupported-media-type",
        },
        Refused {
            name: "an empty file",
            bytes: Vec::new(),
            status: 422,
            problem_type: "/problems/validation",
        },
        Refused {
            name: "a PNG claiming 100000×100000 pixels",
            bytes: png_claiming(100_000, 100_000),
            status: 422,
            problem_type: TOO_MANY_PIXELS,
        },
        Refused {
            name: "a complete 16000×5400 PNG (86 megapixels) of a few kilobytes",
            bytes: blank_png(16_000, 5_400),
            status: 422,
            problem_type: TOO_MANY_PIXELS,
        },
    ]
}

/// `jpeg` with an APP1 (EXIF) segment after its start holding a whole small JPEG, whose own
/// end marker is not the file's end.
pub fn with_thumbnail(jpeg: &[u8]) -> Vec<u8> {
    let thumbnail = encoded(ImageFormat::Jpeg, 16, 12);
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend_from_slice(&thumbnail);
    let length = u16::try_from(payload.len() + 2).expect("a small thumbnail");
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xff, 0xe1]);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A complete, valid black-and-white PNG of `width`×`height` blank pixels: one bit a pixel,
/// compressed to a few kilobytes, written row by row so making it costs no pixel memory.
pub fn blank_png(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::One);
    encoder.set_compression(png::Compression::High);
    let mut writer = encoder.write_header().expect("PNG header");
    let mut stream = writer.stream_writer().expect("PNG stream");
    let row = vec![0u8; width.div_ceil(8) as usize];
    for _ in 0..height {
        stream.write_all(&row).expect("PNG row");
    }
    stream.finish().expect("PNG end");
    writer.finish().expect("PNG end");
    out
}

/// A colourful picture in `format`.
pub fn encoded(format: ImageFormat, width: u32, height: u32) -> Vec<u8> {
    let picture = RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([
            (x * 7 % 256) as u8,
            (y * 5 % 256) as u8,
            ((x ^ y) % 256) as u8,
        ])
    });
    let mut out = Cursor::new(Vec::new());
    picture.write_to(&mut out, format).expect("encode a sample");
    out.into_inner()
}

/// A 2×2 24-bit BMP: a well-formed image of a type no service accepts.
fn bmp() -> Vec<u8> {
    let mut out = b"BM".to_vec();
    for field in [70u32, 0, 54, 40, 2, 2] {
        out.extend_from_slice(&field.to_le_bytes());
    }
    out.extend_from_slice(&[1, 0, 24, 0]); // one plane, 24 bits a pixel
    out.resize(70, 0x80);
    out
}

/// The first `numerator / denominator` of `bytes`, shortened further while it happens to end
/// like a complete file (a zero, `;` or `0xd9` byte).
fn cut(bytes: &[u8], numerator: usize, denominator: usize) -> Vec<u8> {
    let mut len = bytes.len() * numerator / denominator;
    while matches!(bytes[len - 1], 0 | b';' | 0xd9) {
        len -= 1;
    }
    bytes[..len].to_vec()
}

/// `bytes` with everything between the first `keep_head` and the last `keep_tail` bytes
/// replaced by noise: the type and end marker are intact, the content is not an image.
fn noisy(bytes: &[u8], keep_head: usize, keep_tail: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let end = out.len() - keep_tail;
    let mut state = 0x2545_f491_u32;
    for byte in &mut out[keep_head..end] {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        *byte = state.to_le_bytes()[0];
    }
    out
}

/// A PNG signature and header chunk (valid CRC) claiming `width`×`height`, with one tiny data
/// chunk and the end chunk: a decompression bomb's header without the bomb.
pub fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        let len = u32::try_from(data.len()).expect("a small chunk");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(kind.iter().chain(data));
        out.extend_from_slice(&crc.to_be_bytes());
    }
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    let mut header = Vec::new();
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, deflate, no filter, no interlace
    chunk(&mut out, b"IHDR", &header);
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

/// The CRC-32 PNG chunks carry (ISO-HDLC, reflected polynomial 0xedb88320).
fn crc32<'a>(bytes: impl Iterator<Item = &'a u8>) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        imaging::{decode_rgb, ImageLimits},
        Problem,
    };

    #[test]
    fn the_png_crc_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789".iter()), 0xcbf4_3926);
    }

    #[test]
    fn every_sample_is_refused_with_its_answer() {
        for sample in refused() {
            let rejection = decode_rgb(&sample.bytes, &ImageLimits::default())
                .map(|image| image.dimensions())
                .expect_err(sample.name);
            let problem = Problem::from(rejection.clone());
            assert_eq!(
                (problem.status.as_u16(), problem.kind.as_str()),
                (sample.status, sample.problem_type),
                "{}: {rejection}",
                sample.name
            );
        }
    }

    #[test]
    fn every_accepted_sample_decodes_to_its_dimensions() {
        for sample in accepted() {
            let image = decode_rgb(&sample.bytes, &ImageLimits::default())
                .unwrap_or_else(|e| panic!("{}: {e}", sample.name));
            assert_eq!(
                image.dimensions(),
                (sample.width, sample.height),
                "{}",
                sample.name
            );
        }
    }

    #[test]
    fn the_blank_png_is_small_and_complete() {
        let bytes = blank_png(16_000, 5_400);
        assert!(bytes.len() < 64 * 1024, "{} bytes", bytes.len());
        let limits = ImageLimits {
            max_image_pixels: 16_000 * 5_400,
            ..ImageLimits::default()
        };
        assert_eq!(
            crate::imaging::validate(Cursor::new(&bytes), crate::imaging::ImageType::Png, &limits),
            Ok((16_000, 5_400))
        );
    }

    #[test]
    fn the_untouched_files_the_samples_come_from_are_accepted() {
        for format in [
            ImageFormat::Jpeg,
            ImageFormat::Png,
            ImageFormat::WebP,
            ImageFormat::Gif,
        ] {
            let image = decode_rgb(&encoded(format, 30, 20), &ImageLimits::default())
                .unwrap_or_else(|e| panic!("{format:?}: {e}"));
            assert_eq!(image.dimensions(), (30, 20));
        }
    }
}
