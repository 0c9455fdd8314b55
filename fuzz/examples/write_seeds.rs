//! Writes the seed corpus: `cargo run --release --example write_seeds` in this folder replaces
//! `corpus/image_screening/` and `corpus/upload_form/` with files made from
//! `common::imaging::samples` (every refused and accepted sample, small files of each type) and
//! multipart bodies around some of them. Names are a short label and a content hash.

use std::{collections::hash_map::DefaultHasher, fs, hash::Hasher, path::Path};

use common::imaging::samples;
use image::ImageFormat;

const BOUNDARY: &str = "fuzz-boundary-7MA4YWxkTrZu0gW";

fn write(dir: &Path, label: &str, bytes: &[u8]) {
    let mut hasher = DefaultHasher::new();
    hasher.write(bytes);
    let name = format!("{label}-{:016x}", hasher.finish());
    fs::write(dir.join(name), bytes).expect("write a seed");
}

fn label(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect::<String>()
        .split('_')
        .filter(|w| !w.is_empty())
        .take(6)
        .collect::<Vec<_>>()
        .join("_")
}

/// A multipart/form-data body of `fields` (name, content), as clients send it.
fn body(fields: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, content) in fields {
        out.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        out.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"upload\"\r\n")
                .as_bytes(),
        );
        out.extend_from_slice(b"Content-Type: application/octet-stream\r\n\r\n");
        out.extend_from_slice(content);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

/// The upload_form target's input for `body` sent as is, in 500-byte chunks (see the target).
fn as_sent(body: &[u8]) -> Vec<u8> {
    let mut out = vec![4 << 1];
    out.extend_from_slice(body);
    out
}

/// The upload_form target's input for a form it writes itself: one byte of flags and a
/// little-endian `u16` length before each field's content.
fn as_fields(fields: &[(u8, &[u8])]) -> Vec<u8> {
    let mut out = vec![1 | 3 << 1];
    for (flags, content) in fields {
        out.push(*flags);
        let len = u16::try_from(content.len()).expect("a small field");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(content);
    }
    out
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let (images, forms) = (root.join("image_screening"), root.join("upload_form"));
    for dir in [&images, &forms] {
        let _ = fs::remove_dir_all(dir);
        fs::create_dir_all(dir).expect("create the corpus folder");
    }
    for sample in samples::refused() {
        write(&images, &label(sample.name), &sample.bytes);
    }
    for sample in samples::accepted() {
        write(&images, &label(sample.name), &sample.bytes);
    }
    let small: Vec<(&str, ImageFormat, Vec<u8>)> = [
        ("jpeg", ImageFormat::Jpeg),
        ("png", ImageFormat::Png),
        ("webp", ImageFormat::WebP),
        ("gif", ImageFormat::Gif),
    ]
    .into_iter()
    .map(|(name, format)| (name, format, samples::encoded(format, 9, 7)))
    .collect();
    for (name, format, bytes) in &small {
        write(&images, &format!("small_{name}"), bytes);
        let pixel = samples::encoded(*format, 1, 1);
        write(&images, &format!("small_{name}_1x1"), &pixel);
    }

    let (png, gif) = (&small[1].2, &small[3].2);
    let bmp_like = b"BM\x46\0\0\0\0\0\0\0\x36\0\0\0".as_slice();
    for (label, bytes) in [
        ("file_png", body(&[("file", png)])),
        (
            "title_then_file_gif",
            body(&[("title", b"holiday"), ("file", gif)]),
        ),
        (
            "no_file_field",
            body(&[("title", b"holiday"), ("note", b"")]),
        ),
        ("empty_file", body(&[("file", b"")])),
        (
            "text_file",
            body(&[("file", b"not an image, just some text")]),
        ),
        ("bmp_file", body(&[("file", bmp_like)])),
        ("two_files", body(&[("file", gif), ("file", png)])),
        (
            "preamble_and_epilogue",
            [
                b"preamble\r\n".as_slice(),
                &body(&[("file", gif)]),
                b"epilogue",
            ]
            .concat(),
        ),
        ("no_closing_delimiter", {
            let mut whole = body(&[("file", png)]);
            whole.truncate(whole.len() - BOUNDARY.len() - 6);
            whole
        }),
    ] {
        write(&forms, label, &as_sent(&bytes));
    }
    write(&forms, "fields_file_png", &as_fields(&[(0, png)]));
    write(
        &forms,
        "fields_title_then_file_gif",
        &as_fields(&[(1 | 4, b"holiday"), (0 | 4 | 8, gif)]),
    );
}
