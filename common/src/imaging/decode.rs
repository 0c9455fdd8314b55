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
    check_not_empty(kind, width, height)?;
    check_dimensions(width, height, limits)?;
    // As `ImageReader::decode` does: the pixel buffer counts against the budget, what is left
    // bounds the decoder's own allocations.
    let mut decode_limits = decoder_limits(limits);
    decode_limits
        .reserve(decoder.total_bytes())
        .map_err(classify)?;
    decoder.set_limits(decode_limits).map_err(classify)?;
    DynamicImage::from_decoder(decoder).map_err(classify)
}

/// Checks that the whole image of type `kind` decodes, as [`decode`] would, and returns its width
/// and height. A PNG is checked row by row, holding one row at a time, so validating it costs no
/// pixel memory; the other types are decoded whole, within what their header declares and
/// [`decode`]'s limits. Blocking and CPU-heavy: call it on the blocking pool.
pub fn validate<R: BufRead + Seek>(
    reader: R,
    kind: ImageType,
    limits: &ImageLimits,
) -> Result<(u32, u32), Rejection> {
    match kind {
        ImageType::Png => validate_png(reader, limits),
        _ => decode(reader, kind, limits).map(|image| (image.width(), image.height())),
    }
}

fn validate_png<R: BufRead + Seek>(
    reader: R,
    limits: &ImageLimits,
) -> Result<(u32, u32), Rejection> {
    let budget = usize::try_from(limits.max_decode_bytes).unwrap_or(usize::MAX);
    let mut decoder = png::Decoder::new_with_limits(reader, png::Limits { bytes: budget });
    // What `image` asks of the same decoder, so both refuse the same files (an indexed image
    // without a palette cannot be expanded).
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().map_err(png_rejection)?;
    let (width, height) = (reader.info().width, reader.info().height);
    check_not_empty(ImageType::Png, width, height)?;
    check_dimensions(width, height, limits)?;
    // Every row is inflated and unfiltered, as a full decode would, into one reused row buffer.
    // Like `image`, nothing after the last row is read: chunks after the image data (an unknown
    // one, a missing end, bytes after it) are no reason to refuse pixels that are all there.
    while reader.next_row().map_err(png_rejection)?.is_some() {}
    Ok((width, height))
}

fn png_rejection(error: png::DecodingError) -> Rejection {
    match error {
        png::DecodingError::LimitsExceeded => Rejection::TooManyPixels(
            "decoding the image would need more memory than a decode may use".to_owned(),
        ),
        other => Rejection::Corrupt {
            kind: ImageType::Png,
            reason: other.to_string(),
        },
    }
}

/// Refuses an image without a single pixel: a GIF's header may declare a width or height of 0,
/// which the decoder accepts, and nothing can be scored or resized from it.
fn check_not_empty(kind: ImageType, width: u32, height: u32) -> Result<(), Rejection> {
    if width == 0 || height == 0 {
        return Err(Rejection::Corrupt {
            kind,
            reason: format!("it declares {width}×{height} pixels; an image needs at least one"),
        });
    }
    Ok(())
}

/// Refuses, from the header alone, an image with a side beyond `max_image_dimension`, more pixels
/// than `max_image_pixels`, or whose RGB form (3 bytes a pixel, what the model needs) is beyond
/// `max_decode_bytes`.
fn check_dimensions(width: u32, height: u32, limits: &ImageLimits) -> Result<(), Rejection> {
    if width > limits.max_image_dimension || height > limits.max_image_dimension {
        return Err(Rejection::TooManyPixels(format!(
            "{width}×{height} pixels exceed the limit of {} per side",
            limits.max_image_dimension
        )));
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_image_pixels {
        return Err(Rejection::TooManyPixels(format!(
            "{width}×{height} is {pixels} pixels, more than the limit of {} pixels",
            limits.max_image_pixels
        )));
    }
    let rgb_bytes = u64::from(width) * u64::from(height) * 3;
    if rgb_bytes > limits.max_decode_bytes {
        return Err(Rejection::TooManyPixels(format!(
            "{width}×{height} pixels need {rgb_bytes} bytes, more than the {} bytes a decode may use",
            limits.max_decode_bytes
        )));
    }
    Ok(())
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

    /// Every accepted type, with the encoder that writes it.
    const ACCEPTED: [(ImageFormat, ImageType); 4] = [
        (ImageFormat::Png, ImageType::Png),
        (ImageFormat::Jpeg, ImageType::Jpeg),
        (ImageFormat::WebP, ImageType::WebP),
        (ImageFormat::Gif, ImageType::Gif),
    ];

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
        for (format, kind) in ACCEPTED {
            let bytes = encoded(33, 17, format);
            let found = decoded(&bytes, kind, &ImageLimits::default());
            assert_eq!(found, Ok((33, 17)), "{kind}");
        }
    }

    #[test]
    fn validation_finds_the_dimensions_decoding_finds() {
        for (format, kind) in ACCEPTED {
            let bytes = encoded(33, 17, format);
            let found = validate(Cursor::new(&bytes), kind, &ImageLimits::default());
            assert_eq!(found, Ok((33, 17)), "{kind}");
        }
        let grey = grey_png(9, 4);
        let found = validate(Cursor::new(&grey), ImageType::Png, &ImageLimits::default());
        assert_eq!(found, Ok((9, 4)));
    }

    #[test]
    fn a_png_with_a_damaged_row_fails_validation_as_it_fails_decoding() {
        let mut bytes = encoded(64, 64, ImageFormat::Png);
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x55;
        let limits = ImageLimits::default();
        assert_corrupt(&decoded(&bytes, ImageType::Png, &limits), ImageType::Png);
        assert_corrupt(
            &validate(Cursor::new(&bytes), ImageType::Png, &limits),
            ImageType::Png,
        );
        let cut = &encoded(64, 64, ImageFormat::Png)[..middle];
        assert_corrupt(
            &validate(Cursor::new(cut), ImageType::Png, &limits),
            ImageType::Png,
        );
    }

    /// A PNG chunk: length, type, data, CRC.
    fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        let length = u32::try_from(data.len()).expect("small chunk");
        [
            &length.to_be_bytes()[..],
            kind,
            data,
            &crc.finalize().to_be_bytes(),
        ]
        .concat()
    }

    /// `png` with `extra` just before its IEND chunk (the last 12 bytes).
    fn before_end(png: &[u8], extra: &[u8]) -> Vec<u8> {
        let end = png.len() - 12;
        [&png[..end], extra, &png[end..]].concat()
    }

    /// Validation and decoding give the same verdict; returns it.
    fn same_verdict(bytes: &[u8]) -> Result<(u32, u32), Rejection> {
        let limits = ImageLimits::default();
        let validated = validate(Cursor::new(bytes), ImageType::Png, &limits);
        let decoded = decoded(bytes, ImageType::Png, &limits);
        assert_eq!(
            validated.is_ok(),
            decoded.is_ok(),
            "validation {validated:?}, decoding {decoded:?}"
        );
        decoded
    }

    // Both found by fuzzing image screening: images stored a file inference could not score,
    // or refused one it could.
    #[test]
    fn an_indexed_png_without_a_palette_is_refused_by_validation_as_by_decoding() {
        // A grey 8-bit image relabelled as indexed (colour type 3) in its header.
        let mut bytes = grey_png(3, 2);
        bytes[25] = 3;
        let header = chunk(b"IHDR", &bytes[16..29]);
        bytes[8..33].copy_from_slice(&header);
        assert_corrupt(&same_verdict(&bytes), ImageType::Png);
    }

    #[test]
    fn chunks_or_bytes_after_the_image_data_are_accepted_by_validation_as_by_decoding() {
        let png = grey_png(3, 2);
        let unknown_critical = before_end(&png, &chunk(b"QQQQ", b"after the pixels"));
        assert_eq!(same_verdict(&unknown_critical), Ok((3, 2)));
        let trailer = [&png[..], b"bytes after IEND"].concat();
        assert_eq!(same_verdict(&trailer), Ok((3, 2)));
    }

    /// Found by fuzzing: a GIF whose header declares 1×0 pixels decoded without complaint.
    #[test]
    fn an_image_without_a_pixel_is_corrupt() {
        let gif: [u8; 49] = [
            0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x21, 0xf9, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00, 0x2c,
            0x00, 0x00, 0x04, 0x00, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
        ];
        let limits = ImageLimits::default();
        assert_corrupt(&decoded(&gif, ImageType::Gif, &limits), ImageType::Gif);
        assert_corrupt(
            &validate(Cursor::new(&gif[..]), ImageType::Gif, &limits),
            ImageType::Gif,
        );
    }

    #[test]
    fn a_png_beyond_the_limits_fails_validation_from_its_header() {
        let limits = ImageLimits {
            max_image_dimension: 32,
            ..ImageLimits::default()
        };
        let found = validate(
            Cursor::new(encoded(33, 8, ImageFormat::Png)),
            ImageType::Png,
            &limits,
        );
        assert!(
            matches!(found, Err(Rejection::TooManyPixels(_))),
            "{found:?}"
        );
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
    fn an_image_of_more_pixels_than_the_limit_is_refused_from_its_header_in_every_type() {
        let limits = ImageLimits {
            max_image_pixels: 33 * 17 - 1,
            ..ImageLimits::default()
        };
        for (format, kind) in ACCEPTED {
            let bytes = encoded(33, 17, format);
            let expected = "33×17 is 561 pixels, more than the limit of 560 pixels";
            for found in [
                decoded(&bytes, kind, &limits),
                validate(Cursor::new(&bytes), kind, &limits),
            ] {
                assert!(
                    matches!(&found, Err(Rejection::TooManyPixels(reason)) if reason == expected),
                    "{kind}: {found:?}"
                );
            }
        }
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
