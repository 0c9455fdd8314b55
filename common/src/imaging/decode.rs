//! Full decoding of a screened file under explicit limits: a corrupt file fails here, and a
//! decompression bomb is refused from its header before any pixel memory is allocated.

use std::io::{BufRead, Cursor, Seek};

use image::{
    error::LimitErrorKind, DynamicImage, ImageDecoder, ImageError, ImageReader, Limits, RgbImage,
};

use super::{screen, ImageLimits, ImageType, Rejection};

/// Decodes the whole image (the first frame of an animation) of type `kind`, as found by
/// [`screen`] or [`super::Screening`]. Blocking and CPU-heavy: call it on the blocking pool.
///
/// The header is read first: a side beyond `max_image_dimension`, or an RGB form of the image
/// (3 bytes a pixel, what the model needs) beyond `max_decode_bytes`, is refused before any
/// pixel is decoded. The decode itself may then allocate at most `max_decode_bytes`.
pub fn decode<R: BufRead + Seek>(
    reader: R,
    kind: ImageType,
    limits: &ImageLimits,
) -> Result<DynamicImage, Rejection> {
    let classify = |error| classify(kind, error);
    let mut reader = ImageReader::with_format(reader, kind.format());
    let mut header_limits = Limits::default();
    header_limits.max_alloc = Some(limits.max_decode_bytes);
    reader.limits(header_limits);
    let mut decoder = reader.into_decoder().map_err(classify)?;
    let (width, height) = decoder.dimensions();
    if width > limits.max_image_dimension || height > limits.max_image_dimension {
        return Err(Rejection::TooManyPixels(format!(
            "{width}×{height} pixels exceed the limit of {} per side",
            limits.max_image_dimension
        )));
    }
    let rgb_bytes = u64::from(width) * u64::from(height) * 3;
    if rgb_bytes > limits.max_decode_bytes {
        return Err(Rejection::TooManyPixels(format!(
            "{width}×{height} pixels need {rgb_bytes} bytes, more than the {} bytes a decode may use",
            limits.max_decode_bytes
        )));
    }
    // As `ImageReader::decode` does: the pixel buffer counts against the budget, what is left
    // bounds the decoder's own allocations.
    let mut decode_limits = decoder_limits(limits);
    decode_limits
        .reserve(decoder.total_bytes())
        .map_err(classify)?;
    decoder.set_limits(decode_limits).map_err(classify)?;
    DynamicImage::from_decoder(decoder).map_err(classify)
}

/// Screens and decodes a file held in memory, to 8-bit RGB as PIL's `convert("RGB")`.
/// Blocking and CPU-heavy: call it on the blocking pool.
pub fn decode_rgb(bytes: &[u8], limits: &ImageLimits) -> Result<RgbImage, Rejection> {
    let kind = screen(bytes, limits)?;
    Ok(decode(Cursor::new(bytes), kind, limits)?.into_rgb8())
}

fn decoder_limits(limits: &ImageLimits) -> Limits {
    let mut decoder = Limits::default();
    decoder.max_image_width = Some(limits.max_image_dimension);
    decoder.max_image_height = Some(limits.max_image_dimension);
    decoder.max_alloc = Some(limits.max_decode_bytes);
    decoder
}

fn classify(kind: ImageType, error: ImageError) -> Rejection {
    match error {
        ImageError::Limits(limit) => match limit.kind() {
            LimitErrorKind::DimensionError | LimitErrorKind::InsufficientMemory => {
                Rejection::TooManyPixels(limit.to_string())
            }
            _ => Rejection::Corrupt {
                kind,
                reason: limit.to_string(),
            },
        },
        other => Rejection::Corrupt {
            kind,
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use image::{GrayImage, ImageFormat, Rgb};

    use crate::imaging::rejection::assert_corrupt;

    use super::*;

    fn gradient(width: u32, height: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| {
            Rgb([(x % 256) as u8, (y % 256) as u8, 7])
        })
    }

    fn encoded(width: u32, height: u32, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        gradient(width, height)
            .write_to(&mut out, format)
            .expect("encode");
        out.into_inner()
    }

    fn grey_png(width: u32, height: u32) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        GrayImage::from_pixel(width, height, image::Luma([90]))
            .write_to(&mut out, ImageFormat::Png)
            .expect("encode");
        out.into_inner()
    }

    fn decoded(
        bytes: &[u8],
        kind: ImageType,
        limits: &ImageLimits,
    ) -> Result<(u32, u32), Rejection> {
        decode(Cursor::new(bytes), kind, limits).map(|image| (image.width(), image.height()))
    }

    #[test]
    fn every_accepted_type_decodes_to_its_dimensions() {
        for (format, kind) in [
            (ImageFormat::Png, ImageType::Png),
            (ImageFormat::Jpeg, ImageType::Jpeg),
            (ImageFormat::WebP, ImageType::WebP),
            (ImageFormat::Gif, ImageType::Gif),
        ] {
            let bytes = encoded(33, 17, format);
            let found = decoded(&bytes, kind, &ImageLimits::default());
            assert_eq!(found, Ok((33, 17)), "{kind}");
        }
    }

    #[test]
    fn a_png_decodes_to_its_exact_pixels() {
        let bytes = encoded(40, 30, ImageFormat::Png);
        let decoded = decode_rgb(&bytes, &ImageLimits::default()).expect("decode");
        assert_eq!(decoded, gradient(40, 30));
    }

    #[test]
    fn a_grey_image_becomes_rgb() {
        let decoded = decode_rgb(&grey_png(4, 4), &ImageLimits::default()).expect("decode");
        assert!(decoded.pixels().all(|p| *p == Rgb([90, 90, 90])));
    }

    #[test]
    fn bytes_that_are_no_image_are_unsupported() {
        let found = decode_rgb(b"just some text, not an image", &ImageLimits::default());
        assert_eq!(found, Err(Rejection::UnsupportedType));
    }

    #[test]
    fn a_truncated_png_is_corrupt() {
        let bytes = encoded(64, 64, ImageFormat::Png);
        let found = decode_rgb(&bytes[..bytes.len() / 2], &ImageLimits::default());
        assert_corrupt(&found, ImageType::Png);
    }

    #[test]
    fn an_image_wider_than_the_limit_is_too_many_pixels() {
        let limits = ImageLimits {
            max_image_dimension: 32,
            ..ImageLimits::default()
        };
        let found = decoded(&encoded(33, 8, ImageFormat::Png), ImageType::Png, &limits);
        assert!(
            matches!(&found, Err(Rejection::TooManyPixels(reason)) if reason.contains("per side")),
            "{found:?}"
        );
    }

    #[test]
    fn an_image_needing_more_memory_than_allowed_is_too_many_pixels() {
        let limits = ImageLimits {
            max_decode_bytes: 10_000,
            ..ImageLimits::default()
        };
        let found = decoded(
            &encoded(100, 100, ImageFormat::Png),
            ImageType::Png,
            &limits,
        );
        assert!(
            matches!(found, Err(Rejection::TooManyPixels(_))),
            "{found:?}"
        );
    }

    #[test]
    fn a_grey_image_whose_rgb_form_exceeds_the_memory_limit_is_refused_from_its_header() {
        // 100×100 grey pixels are 10 000 bytes as decoded, 30 000 as RGB.
        let limits = ImageLimits {
            max_decode_bytes: 20_000,
            ..ImageLimits::default()
        };
        let found = decoded(&grey_png(100, 100), ImageType::Png, &limits);
        assert!(
            matches!(&found, Err(Rejection::TooManyPixels(reason)) if reason.contains("30000 bytes")),
            "{found:?}"
        );
    }

    #[test]
    fn more_bytes_than_the_upload_limit_are_too_large() {
        let limits = ImageLimits {
            max_upload_bytes: 10,
            ..ImageLimits::default()
        };
        let found = decode_rgb(&encoded(8, 8, ImageFormat::Png), &limits);
        assert_eq!(found, Err(Rejection::TooLarge { limit: 10 }));
    }

    #[test]
    fn bytes_of_another_type_are_corrupt() {
        let found = decoded(
            &encoded(8, 8, ImageFormat::Png),
            ImageType::Jpeg,
            &ImageLimits::default(),
        );
        assert_corrupt(&found, ImageType::Jpeg);
    }
}
