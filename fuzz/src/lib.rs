//! What the fuzz targets share: the limits they screen and decode under, a heap that aborts the
//! run when it grows past what those limits allow, and the checks every accepted image must pass.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    io::{Cursor, Write},
    sync::atomic::{AtomicUsize, Ordering},
};

use common::imaging::{decode, decode_rgb, validate, ImageLimits, ImageType, Rejection};

/// Limits far below the services' defaults, so one input decodes in milliseconds; the code that
/// enforces them is the same whatever their values.
pub const LIMITS: ImageLimits = ImageLimits {
    max_upload_bytes: 1024 * 1024,
    max_image_dimension: 4096,
    max_image_pixels: 1_000_000,
    max_decode_bytes: 8 * 1024 * 1024,
};

/// The most heap the process may hold at once. A decode may use `max_decode_bytes` (the pixels and
/// the decoder's own buffers), its RGB copy as much again; the rest is room for the input, its
/// copies and the runtime. Anything more means a limit was not enforced, as with a decompression
/// bomb: the run aborts and libFuzzer keeps the input.
pub const HEAP_BOUND: usize = 2 * LIMITS.max_decode_bytes as usize + 16 * 1024 * 1024;

/// The system allocator, counting the bytes held and aborting past [`HEAP_BOUND`].
pub struct BoundedHeap;

static HELD: AtomicUsize = AtomicUsize::new(0);

fn take(bytes: usize) {
    let held = HELD.fetch_add(bytes, Ordering::Relaxed) + bytes;
    // A panic's backtrace is symbolised on the heap: the panic is the crash being reported.
    if held > HEAP_BOUND && !std::thread::panicking() {
        over_bound(held, bytes);
    }
}

fn give_back(bytes: usize) {
    HELD.fetch_sub(bytes, Ordering::Relaxed);
}

#[cold]
fn over_bound(held: usize, bytes: usize) -> ! {
    // Formatting integers allocates nothing; the allocator must not be entered again here.
    let _ = writeln!(
        std::io::stderr(),
        "heap bound exceeded: allocating {bytes} bytes brings the heap to {held} bytes, \
         more than the {HEAP_BOUND} bytes the image limits allow"
    );
    std::process::abort()
}

// SAFETY: every call is forwarded to `System` with the caller's own arguments; the counting
// around it touches no memory the caller owns.
unsafe impl GlobalAlloc for BoundedHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        take(layout.size());
        let ptr = System.alloc(layout);
        if ptr.is_null() {
            give_back(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        take(layout.size());
        let ptr = System.alloc_zeroed(layout);
        if ptr.is_null() {
            give_back(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        give_back(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old_size = layout.size();
        if new_size > old_size {
            take(new_size - old_size);
        }
        let new = System.realloc(ptr, layout, new_size);
        match (new.is_null(), new_size > old_size) {
            (true, true) => give_back(new_size - old_size),
            (false, false) => give_back(old_size - new_size),
            _ => {}
        }
        new
    }
}

#[global_allocator]
static HEAP: BoundedHeap = BoundedHeap;

/// Panics unless `width`×`height` is an image the limits allow: at least one pixel, no side
/// beyond `max_image_dimension`, at most `max_image_pixels`, an RGB form within `max_decode_bytes`.
pub fn assert_within_limits(width: u32, height: u32, limits: &ImageLimits) {
    let pixels = u64::from(width) * u64::from(height);
    assert!(pixels > 0, "accepted an image of {width}×{height} pixels");
    assert!(
        width <= limits.max_image_dimension && height <= limits.max_image_dimension,
        "accepted {width}×{height}, beyond {} per side",
        limits.max_image_dimension
    );
    assert!(
        pixels <= limits.max_image_pixels,
        "accepted {width}×{height}, more than {} pixels",
        limits.max_image_pixels
    );
    assert!(
        pixels * 3 <= limits.max_decode_bytes,
        "accepted {width}×{height}, whose RGB form is beyond {} bytes",
        limits.max_decode_bytes
    );
}

/// Decodes `bytes`, screened as `kind`, in the three ways the services do (images_service
/// validates, inference_service decodes to RGB) and panics unless all three agree and what they
/// accept is within `limits`. Returns the dimensions when accepted.
pub fn assert_decodes_consistently(
    bytes: &[u8],
    kind: ImageType,
    limits: &ImageLimits,
) -> Option<(u32, u32)> {
    let decoded = decode(Cursor::new(bytes), kind, limits);
    let dimensions = match &decoded {
        Ok(image) => {
            assert_within_limits(image.width(), image.height(), limits);
            Some((image.width(), image.height()))
        }
        Err(Rejection::Corrupt { kind: found, .. }) => {
            assert_eq!(*found, kind, "a {kind} refused as another type");
            None
        }
        Err(Rejection::TooManyPixels(_)) => None,
        Err(other) => panic!("decoding a screened {kind} gave {other:?}"),
    };
    let refused = decoded.err();
    let validated = validate(Cursor::new(bytes), kind, limits);
    assert_eq!(
        validated.as_ref().ok().copied(),
        dimensions,
        "validation (images_service) and decoding (inference_service) disagree on a {kind}: \
         validation {validated:?}, decoding {refused:?}"
    );
    let rgb = decode_rgb(bytes, limits);
    assert_eq!(
        rgb.as_ref().ok().map(|image| image.dimensions()),
        dimensions,
        "decoding to RGB disagrees with decoding: {:?}",
        rgb.as_ref().err()
    );
    dimensions
}
