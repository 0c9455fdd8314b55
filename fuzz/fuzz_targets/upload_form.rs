//! Arbitrary bodies of `POST /upload` (multipart/form-data with a fixed boundary) through the
//! upload form's own functions (`images_service::upload_form`), delivered in chunks as a network
//! would, then validated as the service does. Nothing may panic, every refusal is a 4xx answer,
//! and a well-formed form yields its `file` field's bytes exactly, with the verdict that screening
//! those bytes in one piece gives.
//!
//! The first input byte sets how the rest is read:
//! - bit 0: 0 = the rest is the body as sent; 1 = the rest lists form fields, each as one byte
//!   (bits 0-1 the name: `file`, `title`, `File` or empty; bit 2 a filename; bit 3 a
//!   Content-Type), a little-endian `u16` length and that many bytes of content, and the body is
//!   that form, well formed;
//! - bits 1-3: the size of the chunks the body arrives in;
//! - bits 4-5: the upload size limit.

#![no_main]

use axum::{
    body::Body,
    extract::{FromRequest, Multipart, Request},
    http::header::CONTENT_TYPE,
};
use bytes::Bytes;
use common::{
    imaging::{screen, ImageLimits, ImageType, Rejection, Screening},
    Problem,
};
use forgettable_fuzz::{assert_decodes_consistently, LIMITS};
use images_service::{error::Error, upload_form};
use libfuzzer_sys::fuzz_target;

const BOUNDARY: &str = "fuzz-boundary-7MA4YWxkTrZu0gW";
const CHUNK_LENS: [usize; 8] = [1, 2, 7, 64, 500, 4096, 65_536, usize::MAX];
const UPLOAD_LIMITS: [u64; 4] = [LIMITS.max_upload_bytes, 64, 1000, 16 * 1024];

/// A well-formed form's body, and the content of its first `file` field.
struct Form {
    body: Vec<u8>,
    file: Option<Vec<u8>>,
    /// No content holds the delimiter, so the fields parse as written.
    well_formed: bool,
}

fn form(mut fields: &[u8]) -> Form {
    let delimiter = format!("\r\n--{BOUNDARY}");
    let mut form = Form {
        body: Vec::new(),
        file: None,
        well_formed: true,
    };
    while let [flags, rest @ ..] = fields {
        let (len, rest) = match rest {
            [low, high, rest @ ..] => (usize::from(u16::from_le_bytes([*low, *high])), rest),
            _ => (0, &[][..]),
        };
        let (content, rest) = rest.split_at(len.min(rest.len()));
        fields = rest;
        let name = ["file", "title", "File", ""][usize::from(flags & 3)];
        form.body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes(),
        );
        if flags & 4 != 0 {
            form.body.extend_from_slice(b"; filename=\"photo.jpg\"");
        }
        if flags & 8 != 0 {
            form.body
                .extend_from_slice(b"\r\nContent-Type: application/octet-stream");
        }
        form.body.extend_from_slice(b"\r\n\r\n");
        form.body.extend_from_slice(content);
        form.body.extend_from_slice(b"\r\n");
        let mut framed = b"\r\n".to_vec();
        framed.extend_from_slice(content);
        form.well_formed &= !framed
            .windows(delimiter.len())
            .any(|w| w == delimiter.as_bytes());
        if name == "file" && form.file.is_none() {
            form.file = Some(content.to_vec());
        }
    }
    form.body
        .extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    form
}

/// What the upload handler does with the body before storing: the form, its `file` field read
/// chunk by chunk under screening, the screening's verdict. Returns the verdict and the bytes read.
async fn receive(request: Request, limits: &ImageLimits) -> Result<(ImageType, Vec<u8>), Error> {
    let headers = request.headers().clone();
    let multipart = Multipart::from_request(request, &()).await;
    let mut multipart = upload_form::form(multipart, &headers)?;
    let limit = limits.max_upload_bytes;
    upload_form::read_file_field(&mut multipart, limit, async |mut field| {
        let mut screening = Screening::new(limits);
        let mut received = Vec::new();
        while let Some(chunk) = upload_form::next_chunk(&mut field, &mut screening, limit).await? {
            received.extend_from_slice(&chunk);
        }
        Ok((screening.finish()?, received))
    })
    .await
}

fn request(body: Vec<u8>, chunk_len: usize) -> Request {
    let body = Bytes::from(body);
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..body.len())
        .step_by(chunk_len)
        .map(|at| Ok(body.slice(at..body.len().min(at.saturating_add(chunk_len)))))
        .collect();
    Request::builder()
        .method("POST")
        .uri("/upload")
        .header(
            CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .expect("a valid request")
}

fuzz_target!(|input: &[u8]| {
    let Some((&config, rest)) = input.split_first() else {
        return;
    };
    let limits = ImageLimits {
        max_upload_bytes: UPLOAD_LIMITS[usize::from(config >> 4 & 3)],
        ..LIMITS
    };
    let chunk_len = CHUNK_LENS[usize::from(config >> 1 & 7)];
    let form = (config & 1 == 1).then(|| form(rest));
    let body = form
        .as_ref()
        .map_or_else(|| rest.to_vec(), |f| f.body.clone());
    let outcome = futures::executor::block_on(receive(request(body, chunk_len), &limits));

    match &outcome {
        Ok((kind, received)) => {
            assert_eq!(screen(received, &limits), Ok(*kind), "the file read");
            assert_decodes_consistently(received, *kind, &limits);
        }
        Err(Error::MissingFile | Error::BadMultipart(_) | Error::Image(_)) => {}
        Err(other) => panic!("an upload body refused with {other:?}"),
    }
    if let Err(error) = &outcome {
        let detail = error.to_string();
        let status = Problem::from(outcome_error(error)).status;
        assert!(status.is_client_error(), "{status} for {detail}");
    }

    let Some(form) = form.filter(|f| f.well_formed) else {
        return;
    };
    let Some(file) = form.file else {
        assert!(
            matches!(outcome, Err(Error::MissingFile)),
            "a form without a file field: {outcome:?}"
        );
        return;
    };
    let whole = screen(&file, &limits);
    match outcome {
        Ok((kind, received)) => {
            assert!(
                received == file,
                "the file field's bytes were not read exactly"
            );
            assert_eq!(whole, Ok(kind), "streamed and whole verdicts");
        }
        Err(Error::Image(rejection)) => {
            let refused_earlier = rejection == Rejection::UnsupportedType
                && whole
                    == Err(Rejection::TooLarge {
                        limit: limits.max_upload_bytes,
                    });
            assert!(
                Err(rejection.clone()) == whole || refused_earlier,
                "streamed: {rejection:?}, whole: {whole:?}"
            );
        }
        Err(other) => panic!("a well-formed form refused with {other:?}"),
    }
});

/// The same error again (the service's error is not `Clone`), to turn it into its answer.
fn outcome_error(error: &Error) -> Error {
    match error {
        Error::MissingFile => Error::MissingFile,
        Error::Image(rejection) => Error::Image(rejection.clone()),
        Error::BadMultipart(detail) => Error::BadMultipart(detail.clone()),
        other => panic!("unexpected {other:?}"),
    }
}
