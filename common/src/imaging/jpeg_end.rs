//! Where a JPEG's structure ends. A JPEG is complete when its end-of-image marker (`FF D9`) comes
//! where a marker may come: after the last scan, not inside a segment (an EXIF thumbnail carries
//! its own `FF D9`) and not as a file's last bytes by chance. Cameras and editors often append
//! bytes after that marker (maker notes, a second picture, a video); those are not truncation.
//!
//! Fed chunk by chunk as the bytes stream in, holding a few bytes of state.

/// Follows a JPEG's markers, segments and entropy-coded data up to its end-of-image marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct JpegEnd {
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The start-of-image marker, `matched` of its two bytes seen.
    Start { matched: u8 },
    /// Between segments, expecting `FF`; other bytes are skipped as decoders skip them.
    Marker,
    /// After an `FF` between segments: fill bytes (`FF`) or the marker's code.
    Code,
    /// The two-byte length of segment `code`, `high` its first byte once seen.
    Length { code: u8, high: Option<u8> },
    /// Inside a segment, `left` bytes to go; a start-of-scan is followed by entropy-coded data.
    Segment { left: u16, scan: bool },
    /// Entropy-coded data: any `FF` there is stuffed (`FF 00`), a restart marker or a marker.
    Scan,
    /// After an `FF` in entropy-coded data.
    ScanFf,
    /// The end-of-image marker was seen; whatever follows is a trailer.
    End,
    /// The bytes do not start with a start-of-image marker.
    NotJpeg,
}

const START_OF_SCAN: u8 = 0xda;
const END_OF_IMAGE: u8 = 0xd9;

impl JpegEnd {
    pub(super) fn new() -> Self {
        Self {
            state: State::Start { matched: 0 },
        }
    }

    /// Whether the end-of-image marker has been seen where a marker may be.
    pub(super) fn ended(&self) -> bool {
        self.state == State::End
    }

    /// Takes the next chunk of the file.
    pub(super) fn push(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            match self.state {
                State::End | State::NotJpeg => return,
                State::Segment { left, scan } => {
                    let skipped = chunk.len().min(usize::from(left));
                    chunk = &chunk[skipped..];
                    // `skipped` is at most `left`, a u16.
                    let left = left - u16::try_from(skipped).unwrap_or(left);
                    self.state = match (left, scan) {
                        (0, true) => State::Scan,
                        (0, false) => State::Marker,
                        _ => State::Segment { left, scan },
                    };
                }
                State::Scan | State::Marker => {
                    // Most bytes are data: jump to the next FF.
                    match chunk.iter().position(|b| *b == 0xff) {
                        Some(at) => {
                            chunk = &chunk[at + 1..];
                            self.state = if self.state == State::Scan {
                                State::ScanFf
                            } else {
                                State::Code
                            };
                        }
                        None => return,
                    }
                }
                _ => {
                    let byte = chunk[0];
                    chunk = &chunk[1..];
                    self.state = self.step(byte);
                }
            }
        }
    }

    /// The state after `byte` in the states that look at single bytes.
    fn step(&self, byte: u8) -> State {
        match self.state {
            State::Start { matched: 0 } if byte == 0xff => State::Start { matched: 1 },
            State::Start { matched: 1 } if byte == 0xd8 => State::Marker,
            State::Start { .. } => State::NotJpeg,
            State::Code => Self::marker(byte),
            State::ScanFf => match byte {
                // A stuffed zero or a restart marker: still entropy-coded data.
                0x00 | 0xd0..=0xd7 => State::Scan,
                0xff => State::ScanFf,
                code => Self::marker(code),
            },
            State::Length { code, high: None } => State::Length {
                code,
                high: Some(byte),
            },
            State::Length {
                code,
                high: Some(high),
            } => {
                // The length counts its own two bytes.
                let left = u16::from_be_bytes([high, byte]).saturating_sub(2);
                let scan = code == START_OF_SCAN;
                match (left, scan) {
                    (0, true) => State::Scan,
                    (0, false) => State::Marker,
                    _ => State::Segment { left, scan },
                }
            }
            state => state,
        }
    }

    /// The state after the marker `code` (the byte after an `FF`).
    fn marker(code: u8) -> State {
        match code {
            0xff => State::Code,
            END_OF_IMAGE => State::End,
            // No segment follows: restart markers, TEM, a repeated start of image, or a stuffed
            // zero where none belongs (skipped as decoders do).
            0x00 | 0x01 | 0xd0..=0xd8 => State::Marker,
            code => State::Length { code, high: None },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SOI, an APP1 segment holding a whole thumbnail (its own SOI and EOI), a quantisation
    /// table, a scan with a stuffed FF and a restart marker, then EOI.
    fn jpeg() -> Vec<u8> {
        let mut out = vec![0xff, 0xd8];
        out.extend_from_slice(&[0xff, 0xe1, 0x00, 0x08, 0xff, 0xd8, 0x12, 0x34, 0xff, 0xd9]);
        out.extend_from_slice(&[0xff, 0xdb, 0x00, 0x04, 0x01, 0x02]);
        out.extend_from_slice(&[0xff, 0xda, 0x00, 0x03, 0x01]);
        out.extend_from_slice(&[0x10, 0xff, 0x00, 0x20, 0xff, 0xd3, 0x30, 0xff, 0xff, 0xd3]);
        out.extend_from_slice(&[0xff, 0xd9]);
        out
    }

    fn ended_in_chunks(bytes: &[u8], size: usize) -> bool {
        let mut end = JpegEnd::new();
        for chunk in bytes.chunks(size) {
            end.push(chunk);
        }
        end.ended()
    }

    fn ended(bytes: &[u8]) -> bool {
        (1..=bytes.len().max(1)).all(|size| ended_in_chunks(bytes, size))
    }

    fn never_ended(bytes: &[u8]) -> bool {
        (1..=bytes.len().max(1)).all(|size| !ended_in_chunks(bytes, size))
    }

    #[test]
    fn a_complete_jpeg_ends_in_any_chunking() {
        assert!(ended(&jpeg()));
    }

    #[test]
    fn bytes_after_the_end_marker_are_a_trailer() {
        let mut bytes = jpeg();
        bytes.extend_from_slice(b"maker notes\x00\xff\x12 and more");
        assert!(ended(&bytes));
    }

    #[test]
    fn a_jpeg_cut_anywhere_before_its_end_marker_has_not_ended() {
        let bytes = jpeg();
        for len in 0..bytes.len() - 1 {
            assert!(never_ended(&bytes[..len]), "cut at {len}");
        }
    }

    #[test]
    fn the_thumbnail_end_marker_inside_a_segment_is_not_the_end() {
        let bytes = jpeg();
        // Cut right after the thumbnail's FF D9, inside APP1.
        assert!(never_ended(&bytes[..12]));
    }

    #[test]
    fn bytes_that_do_not_start_a_jpeg_never_end() {
        assert!(never_ended(b"\x89PNG\r\n\x1a\n\xff\xd9"));
    }
}
