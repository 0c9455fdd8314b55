//! Full decoding of an upload under explicit limits: a corrupt file fails here, and a
//! decompression bomb is refused from its header before any pixel memory is allocated.

use std::io::{BufRead, Seek};

use image::{error::LimitErrorKind, ImageError, ImageReader, Limits};

use super::ImageType;
use crate::config::UploadLimits;

/// An image's size in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dimensions {
    pub width: u32,
    pub height: u32,
}

/// Why an upload is not a usable image.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Larger than `MAX_IMAGE_DIMENSION` or would need more than `MAX_DECODE_BYTES`.
    #[error("the image is too large to decode: {0}")]
    TooManyPixels(String),
    /// Not a valid image of its type.
    #[error("the file is not a valid image: {0}")]
    Corrupt(String),
}

/// The decoder limits for these upload limits.
pub fn limits(upload: &UploadLimits) -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(upload.max_image_dimension);
    limits.max_image_height = Some(upload.max_image_dimension);
    limits.max_alloc = Some(upload.max_decode_bytes);
    limits
}

/// Decodes the whole image (the first frame of an animation) and returns its dimensions.
/// Blocking and CPU-heavy: call it on the blocking pool.
pub fn inspect<R: BufRead + Seek>(
    reader: R,
    kind: ImageType,
    upload: &UploadLimits,
) -> Result<Dimensions, DecodeError> {
    let mut reader = ImageReader::with_format(reader, kind.format());
    reader.limits(limits(upload));
    let image = reader.decode().map_err(classify)?;
    Ok(Dimensions {
        width: image.width(),
        height: image.height(),
    })
}

fn classify(error: ImageError) -> DecodeError {
    match error {
        ImageError::Limits(limit) => match limit.kind() {
            LimitErrorKind::DimensionError | LimitErrorKind::InsufficientMemory => {
                DecodeError::TooManyPixels(limit.to_string())
            }
            _ => DecodeError::Corrupt(limit.to_string()),
        },
        other => DecodeError::Corrupt(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use image::{ImageFormat, RgbImage};

    use super::*;

    fn encoded(width: u32, height: u32, format: ImageFormat) -> Vec<u8> {
        let image = RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 7])
        });
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).expect("encode");
        out.into_inner()
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
            let found = inspect(Cursor::new(bytes), kind, &UploadLimits::default());
            assert_eq!(
                found,
                Ok(Dimensions {
                    width: 33,
                    height: 17
                }),
                "{kind}"
            );
        }
    }

    #[test]
    fn an_image_wider_than_the_limit_is_too_many_pixels() {
        let limits = UploadLimits {
            max_image_dimension: 32,
            ..UploadLimits::default()
        };
        let found = inspect(
            Cursor::new(encoded(33, 8, ImageFormat::Png)),
            ImageType::Png,
            &limits,
        );
        assert!(
            matches!(found, Err(DecodeError::TooManyPixels(_))),
            "{found:?}"
        );
    }

    #[test]
    fn an_image_needing_more_memory_than_allowed_is_too_many_pixels() {
        let limits = UploadLimits {
            max_decode_bytes: 1024,
            ..UploadLimits::default()
        };
        let found = inspect(
            Cursor::new(encoded(64, 64, ImageFormat::Png)),
            ImageType::Png,
            &limits,
        );
        assert!(
            matches!(found, Err(DecodeError::TooManyPixels(_))),
            "{found:?}"
        );
    }

    #[test]
    fn bytes_of_another_type_are_corrupt() {
        let found = inspect(
            Cursor::new(encoded(8, 8, ImageFormat::Png)),
            ImageType::Jpeg,
            &UploadLimits::default(),
        );
        assert!(matches!(found, Err(DecodeError::Corrupt(_))), "{found:?}");
    }
}
