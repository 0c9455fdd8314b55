//! Turning untrusted bytes into RGB pixels under explicit limits: the type is sniffed from the
//! content, a decompression bomb is refused from its header before pixel memory is allocated.

use std::io::Cursor;

use image::{error::LimitErrorKind, ImageError, ImageFormat, ImageReader, Limits, RgbImage};

use crate::{config::DecodeLimits, error::Error as InferenceError};

/// The formats the service accepts (the `image` features the workspace enables).
fn kind(format: ImageFormat) -> Option<&'static str> {
    match format {
        ImageFormat::Jpeg => Some("JPEG"),
        ImageFormat::Png => Some("PNG"),
        ImageFormat::WebP => Some("WebP"),
        ImageFormat::Gif => Some("GIF"),
        _ => None,
    }
}

fn limits(upload: &DecodeLimits) -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(upload.max_image_dimension);
    limits.max_image_height = Some(upload.max_image_dimension);
    limits.max_alloc = Some(upload.max_decode_bytes);
    limits
}

/// Decodes an image (the first frame of an animation) to 8-bit RGB, as PIL's `convert("RGB")`.
/// Blocking and CPU-heavy: call it on the blocking pool.
pub fn decode_rgb(bytes: &[u8], upload: &DecodeLimits) -> Result<RgbImage, InferenceError> {
    if bytes.is_empty() {
        return Err(InferenceError::EmptyImage);
    }
    if bytes.len() as u64 > upload.max_upload_bytes {
        return Err(InferenceError::TooLarge {
            limit: upload.max_upload_bytes,
        });
    }
    let format = image::guess_format(bytes).map_err(|_| InferenceError::UnsupportedType)?;
    let kind = kind(format).ok_or(InferenceError::UnsupportedType)?;
    let classify = |error: ImageError| match error {
        ImageError::Limits(limit) => match limit.kind() {
            LimitErrorKind::DimensionError | LimitErrorKind::InsufficientMemory => {
                InferenceError::TooManyPixels(limit.to_string())
            }
            _ => InferenceError::Corrupt {
                kind,
                reason: limit.to_string(),
            },
        },
        other => InferenceError::Corrupt {
            kind,
            reason: other.to_string(),
        },
    };
    // The header alone says how large the RGB result will be: a grey or palette image inside the
    // decoder's limit could still triple in size when converted.
    let mut header = ImageReader::with_format(Cursor::new(bytes), format);
    let mut header_limits = Limits::default();
    header_limits.max_alloc = Some(upload.max_decode_bytes);
    header.limits(header_limits);
    let (width, height) = header.into_dimensions().map_err(classify)?;
    if width > upload.max_image_dimension || height > upload.max_image_dimension {
        return Err(InferenceError::TooManyPixels(format!(
            "{width}×{height} pixels exceed the limit of {} per side",
            upload.max_image_dimension
        )));
    }
    let rgb_bytes = u64::from(width) * u64::from(height) * 3;
    if rgb_bytes > upload.max_decode_bytes {
        return Err(InferenceError::TooManyPixels(format!(
            "{width}×{height} pixels need {rgb_bytes} bytes, more than the {} bytes a decode may use",
            upload.max_decode_bytes
        )));
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits(upload));
    let image = reader.decode().map_err(classify)?;
    Ok(image.to_rgb8())
}

#[cfg(test)]
mod tests {
    use image::{GrayImage, Rgb};

    use super::*;

    fn encoded(image: &RgbImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).expect("encode");
        out.into_inner()
    }

    fn gradient(width: u32, height: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| {
            Rgb([(x % 256) as u8, (y % 256) as u8, 7])
        })
    }

    #[test]
    fn a_png_decodes_to_its_exact_pixels() {
        let image = gradient(40, 30);
        let decoded = decode_rgb(&encoded(&image, ImageFormat::Png), &DecodeLimits::default())
            .expect("decode");
        assert_eq!(decoded, image);
    }

    #[test]
    fn a_grey_image_becomes_rgb() {
        let grey = GrayImage::from_pixel(4, 4, image::Luma([90]));
        let mut out = Cursor::new(Vec::new());
        grey.write_to(&mut out, ImageFormat::Png).expect("encode");
        let decoded = decode_rgb(out.get_ref(), &DecodeLimits::default()).expect("decode");
        assert!(decoded.pixels().all(|p| *p == Rgb([90, 90, 90])));
    }

    #[test]
    fn bytes_that_are_no_image_are_unsupported() {
        let err = decode_rgb(b"just some text, not an image", &DecodeLimits::default())
            .expect_err("refused");
        assert!(matches!(err, InferenceError::UnsupportedType), "{err:?}");
    }

    #[test]
    fn a_truncated_png_is_corrupt() {
        let bytes = encoded(&gradient(64, 64), ImageFormat::Png);
        let err =
            decode_rgb(&bytes[..bytes.len() / 2], &DecodeLimits::default()).expect_err("refused");
        assert!(
            matches!(err, InferenceError::Corrupt { kind: "PNG", .. }),
            "{err:?}"
        );
    }

    #[test]
    fn a_width_beyond_the_dimension_limit_is_too_many_pixels() {
        let limits = DecodeLimits {
            max_image_dimension: 100,
            ..DecodeLimits::default()
        };
        let err = decode_rgb(&encoded(&gradient(101, 2), ImageFormat::Png), &limits)
            .expect_err("refused");
        assert!(matches!(err, InferenceError::TooManyPixels(_)), "{err:?}");
    }

    #[test]
    fn an_image_needing_more_memory_than_allowed_is_too_many_pixels() {
        let limits = DecodeLimits {
            max_decode_bytes: 10_000,
            ..DecodeLimits::default()
        };
        let err = decode_rgb(&encoded(&gradient(100, 100), ImageFormat::Png), &limits)
            .expect_err("refused");
        assert!(matches!(err, InferenceError::TooManyPixels(_)), "{err:?}");
    }

    #[test]
    fn a_grey_image_whose_rgb_form_exceeds_the_memory_limit_is_refused_from_its_header() {
        let grey = GrayImage::new(100, 100);
        let mut out = Cursor::new(Vec::new());
        grey.write_to(&mut out, ImageFormat::Png).expect("encode");
        let limits = DecodeLimits {
            max_decode_bytes: 20_000,
            ..DecodeLimits::default()
        };
        let err = decode_rgb(out.get_ref(), &limits).expect_err("refused");
        assert!(matches!(err, InferenceError::TooManyPixels(_)), "{err:?}");
    }

    #[test]
    fn more_bytes_than_the_upload_limit_are_too_large() {
        let limits = DecodeLimits {
            max_upload_bytes: 10,
            ..DecodeLimits::default()
        };
        let err =
            decode_rgb(&encoded(&gradient(8, 8), ImageFormat::Png), &limits).expect_err("refused");
        assert!(
            matches!(err, InferenceError::TooLarge { limit: 10 }),
            "{err:?}"
        );
    }
}
