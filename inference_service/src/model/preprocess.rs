//! Image → input tensor, exactly as the reference pipeline (PIL + torchvision) does it.
//!
//! The reference resizes with PIL's `Image.resize(size, BILINEAR)`: a separable triangle filter
//! whose support grows with the downscale ratio (antialiasing), horizontal pass first, each pass
//! with fixed-point coefficients and rounded back to 8 bits. The `image` crate's `Triangle` filter
//! (vertical first, `f32` in between) and `fast_image_resize`'s bilinear convolution (Pillow-SIMD's
//! 16-bit coefficients) both land one level off on roughly 15% of the values, so this module
//! carries the few lines of PIL's algorithm and is tested to match PIL bit for bit.

use image::RgbImage;

use super::manifest::PreprocessSpec;

/// Fixed-point precision of PIL's 8-bit resampling coefficients.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// The resampling window of one output pixel: the first input index and its fixed-point weights.
struct Window {
    first: usize,
    weights: Vec<i32>,
}

/// PIL's triangle ("bilinear") filter.
fn triangle(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// The windows for resampling `in_size` pixels to `out_size`, as PIL's `precompute_coeffs` and
/// `normalize_coeffs_8bpc` compute them (the float→int casts truncate as C does).
fn windows(in_size: usize, out_size: usize) -> Vec<Window> {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter_scale; // the triangle's support is 1
    let unit = f64::from(1u32 << PRECISION_BITS);
    (0..out_size)
        .map(|out| {
            let centre = (out as f64 + 0.5) * scale;
            let first = ((centre - support + 0.5) as i64).max(0) as usize;
            let end = ((centre + support + 0.5) as i64)
                .min(in_size as i64)
                .max(first as i64) as usize;
            let raw: Vec<f64> = (first..end)
                .map(|i| triangle((i as f64 - centre + 0.5) / filter_scale))
                .collect();
            let total: f64 = raw.iter().sum();
            let weights = raw
                .iter()
                .map(|w| if total == 0.0 { 0.0 } else { w / total })
                .map(|w| {
                    if w < 0.0 {
                        (-0.5 + w * unit) as i32
                    } else {
                        (0.5 + w * unit) as i32
                    }
                })
                .collect();
            Window { first, weights }
        })
        .collect()
}

/// Rounds a fixed-point accumulator back to 8 bits (PIL's `clip8`).
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// One weighted sum of `taps` samples `stride` apart, starting at `start`, for one channel.
fn convolve(samples: &[u8], start: usize, stride: usize, weights: &[i32]) -> u8 {
    let mut acc: i32 = 1 << (PRECISION_BITS - 1);
    for (k, weight) in weights.iter().enumerate() {
        acc += i32::from(samples[start + k * stride]) * weight;
    }
    clip8(acc)
}

/// Resizes like PIL's `Image.resize((width, height), Image.BILINEAR)` on an RGB image.
pub fn resize_bilinear(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (in_w, in_h) = (image.width() as usize, image.height() as usize);
    let (out_w, out_h) = (width as usize, height as usize);
    if (in_w, in_h) == (out_w, out_h) {
        return image.clone();
    }
    let src = image.as_raw();

    // Horizontal pass (skipped, as PIL does, when the width does not change).
    let horizontal = if in_w == out_w {
        src.clone()
    } else {
        let columns = windows(in_w, out_w);
        let mut tmp = vec![0u8; out_w * in_h * 3];
        for y in 0..in_h {
            let row = y * in_w * 3;
            for (x, window) in columns.iter().enumerate() {
                for c in 0..3 {
                    tmp[(y * out_w + x) * 3 + c] =
                        convolve(src, row + window.first * 3 + c, 3, &window.weights);
                }
            }
        }
        tmp
    };

    // Vertical pass on the 8-bit result of the horizontal one.
    let out = if in_h == out_h {
        horizontal
    } else {
        let rows = windows(in_h, out_h);
        let stride = out_w * 3;
        let mut out = vec![0u8; out_w * out_h * 3];
        for (y, window) in rows.iter().enumerate() {
            for i in 0..stride {
                out[y * stride + i] = convolve(
                    &horizontal,
                    window.first * stride + i,
                    stride,
                    &window.weights,
                );
            }
        }
        out
    };
    RgbImage::from_raw(width, height, out).unwrap_or_else(|| RgbImage::new(width, height))
}

/// The centred `width × height` crop; the offset is `(size - crop) / 2` rounded down.
pub fn centre_crop(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let left = image.width().saturating_sub(width) / 2;
    let top = image.height().saturating_sub(height) / 2;
    image::imageops::crop_imm(image, left, top, width, height).to_image()
}

/// The preprocessing a manifest describes.
#[derive(Debug, Clone)]
pub struct Preprocessor {
    spec: PreprocessSpec,
}

impl Preprocessor {
    pub fn new(spec: &PreprocessSpec) -> Self {
        Self { spec: spec.clone() }
    }

    /// Resized and cropped 8-bit pixels, before normalisation (what the PIL comparison checks).
    pub fn pixels(&self, image: &RgbImage) -> RgbImage {
        let resize = self.spec.resize;
        let resized = resize_bilinear(image, resize.width, resize.height);
        centre_crop(&resized, self.spec.crop.width, self.spec.crop.height)
    }

    /// The model input: `1×3×H×W` values in channel-first order, `(v / scale - mean) / std`.
    pub fn tensor_data(&self, image: &RgbImage) -> Vec<f32> {
        self.normalise(&self.pixels(image))
    }

    /// Normalises already cropped pixels into channel-first `f32` values.
    pub fn normalise(&self, pixels: &RgbImage) -> Vec<f32> {
        let plane = (pixels.width() * pixels.height()) as usize;
        let mut data = vec![0f32; plane * 3];
        for (i, pixel) in pixels.pixels().enumerate() {
            for c in 0..3 {
                let value = f32::from(pixel[c]) / self.spec.scale;
                data[c * plane + i] = (value - self.spec.mean[c]) / self.spec.std[c];
            }
        }
        data
    }

    /// `[1, 3, crop height, crop width]`.
    pub fn shape(&self) -> [usize; 4] {
        [
            1,
            3,
            self.spec.crop.height as usize,
            self.spec.crop.width as usize,
        ]
    }
}

#[cfg(test)]
mod tests {
    use image::Rgb;

    use super::*;
    use crate::model::manifest::{Filter, ResizeSpec, Size};

    fn spec() -> PreprocessSpec {
        PreprocessSpec {
            resize: ResizeSpec {
                height: 8,
                width: 8,
                filter: Filter::Bilinear,
            },
            crop: Size {
                height: 6,
                width: 6,
            },
            scale: 255.0,
            mean: [0.5, 0.25, 0.0],
            std: [0.5, 0.25, 1.0],
        }
    }

    #[test]
    fn weights_of_each_window_sum_to_one_in_fixed_point() {
        for (input, output) in [(720, 256), (256, 256 + 1), (3, 256), (4000, 227)] {
            for window in windows(input, output) {
                let sum: i32 = window.weights.iter().sum();
                assert!(
                    (sum - (1 << PRECISION_BITS)).abs() <= window.weights.len() as i32,
                    "{input}→{output}: {sum}"
                );
            }
        }
    }

    #[test]
    fn downscaling_widens_the_filter_to_antialias() {
        let narrow = windows(256, 256 / 2);
        let wide = windows(256, 256 / 8);
        assert!(wide[5].weights.len() > narrow[5].weights.len());
        assert_eq!(wide[5].weights.len(), 16, "8× downscale: 2 × 8 taps");
    }

    #[test]
    fn a_uniform_image_stays_uniform_after_resizing() {
        let image = RgbImage::from_pixel(333, 97, Rgb([10, 128, 250]));
        let resized = resize_bilinear(&image, 256, 256);
        assert!(resized.pixels().all(|p| *p == Rgb([10, 128, 250])));
    }

    #[test]
    fn halving_averages_neighbouring_pixels() {
        // Two columns 0 and 200 halve to one column; PIL gives the mean, 100.
        let mut image = RgbImage::new(2, 1);
        image.put_pixel(1, 0, Rgb([200, 200, 200]));
        assert_eq!(
            resize_bilinear(&image, 1, 1).get_pixel(0, 0),
            &Rgb([100, 100, 100])
        );
    }

    #[test]
    fn the_crop_is_centred_with_the_offset_rounded_down() {
        let mut image = RgbImage::new(5, 5);
        image.put_pixel(1, 1, Rgb([9, 9, 9]));
        let crop = centre_crop(&image, 2, 2);
        assert_eq!((crop.width(), crop.height()), (2, 2));
        assert_eq!(crop.get_pixel(0, 0), &Rgb([9, 9, 9]));
    }

    #[test]
    fn the_tensor_is_channel_first_and_normalised() {
        let pre = Preprocessor::new(&spec());
        let image = RgbImage::from_pixel(8, 8, Rgb([255, 0, 51]));
        let data = pre.tensor_data(&image);
        assert_eq!(data.len(), 3 * 6 * 6);
        assert_eq!(pre.shape(), [1, 3, 6, 6]);
        assert!(
            data[..36].iter().all(|v| (*v - 1.0).abs() < 1e-6),
            "red: (1 - 0.5) / 0.5"
        );
        assert!(
            data[36..72].iter().all(|v| (*v + 1.0).abs() < 1e-6),
            "green: (0 - 0.25) / 0.25"
        );
        assert!(
            data[72..].iter().all(|v| (*v - 0.2).abs() < 1e-6),
            "blue: 51 / 255"
        );
    }
}
