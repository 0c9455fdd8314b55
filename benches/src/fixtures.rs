//! What the benchmarks send: real PNG images of a chosen size, multipart bodies, and a small
//! HTTP client that reaches the gateway's `*.localhost` hosts on loopback.

use std::{
    io::{BufWriter, Write},
    net::{SocketAddr, ToSocketAddrs},
    path::Path,
    time::Duration,
};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// Writes a valid RGB PNG of `width`×`height` pixels of noise. Noise does not compress, so the
/// file is about `3 × width × height` bytes: an upload of a known size that is a real image.
pub fn write_noise_png(path: &Path, width: u32, height: u32, seed: u64) -> Result<u64> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&noise(width as usize * height as usize * 3, seed))?;
    writer.finish()?;
    Ok(std::fs::metadata(path)?.len())
}

/// Pseudo-random bytes (xorshift64*): reproducible, no dependency, good enough to defeat compression.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    // splitmix64 of the seed: neighbouring seeds give unrelated, never-zero states.
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    let mut state = (z ^ (z >> 31)) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The side of a square noise PNG whose file is about `bytes` long.
pub fn side_for_bytes(bytes: u64) -> u32 {
    ((bytes as f64 / 3.0).sqrt().ceil()) as u32
}

/// The boundary of the multipart bodies written by [`write_multipart`].
pub const BOUNDARY: &str = "forgettable-bench-boundary-7d1c";

/// Writes a `multipart/form-data` body with one field `file` holding `content`; returns the
/// `Content-Type` to send with it.
pub fn write_multipart(
    path: &Path,
    filename: &str,
    content_type: &str,
    content: &[u8],
) -> Result<String> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    write!(
        out,
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
    )?;
    out.write_all(content)?;
    write!(out, "\r\n--{BOUNDARY}--\r\n")?;
    out.flush()?;
    Ok(format!("multipart/form-data; boundary={BOUNDARY}"))
}

/// A blocking HTTP client for set-up calls (register, log in) through the gateway.
pub struct Http {
    agent: ureq::Agent,
    pub web_port: u16,
}

impl Http {
    pub fn new(web_port: u16) -> Self {
        // `users.localhost` etc. are loopback by definition; resolve them without the system resolver.
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(60))
            .resolver(|addr: &str| -> std::io::Result<Vec<SocketAddr>> {
                match addr.rsplit_once(':') {
                    Some((host, port)) if host.ends_with(".localhost") => {
                        let port: u16 = port
                            .parse()
                            .map_err(|_| std::io::Error::other("bad port"))?;
                        Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
                    }
                    _ => addr.to_socket_addrs().map(Iterator::collect),
                }
            })
            .build();
        Self { agent, web_port }
    }

    /// `http://HOST.localhost:WEB/PATH`.
    pub fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}.localhost:{}{path}", self.web_port)
    }

    /// POSTs JSON and returns `(status, body)`, whatever the status.
    pub fn post_json(&self, url: &str, body: &Value, token: Option<&str>) -> Result<(u16, Value)> {
        let mut request = self.agent.post(url).set("Content-Type", "application/json");
        if let Some(token) = token {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        let response = match request.send_string(&body.to_string()) {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(e).with_context(|| format!("POST {url}")),
        };
        let status = response.status();
        let text = response.into_string()?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// GETs `url` with a bearer token and returns `(status, body)`, whatever the status.
    pub fn get_json(&self, url: &str, token: &str) -> Result<(u16, Value)> {
        let response = match self
            .agent
            .get(url)
            .set("Authorization", &format!("Bearer {token}"))
            .call()
        {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(e).with_context(|| format!("GET {url}")),
        };
        let status = response.status();
        let text = response.into_string()?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// POSTs raw bytes with a content type, returning `(status, body)`.
    pub fn post_bytes(
        &self,
        url: &str,
        bytes: &[u8],
        content_type: &str,
        token: &str,
    ) -> Result<(u16, String)> {
        let response = match self
            .agent
            .post(url)
            .set("Content-Type", content_type)
            .set("Authorization", &format!("Bearer {token}"))
            .send_bytes(bytes)
        {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(e).with_context(|| format!("POST {url}")),
        };
        Ok((response.status(), response.into_string()?))
    }

    /// Registers `username` (an existing one is fine) and logs in; returns the access token.
    pub fn account(&self, username: &str, password: &str) -> Result<String> {
        let (status, body) = self.post_json(
            &self.url("users", "/register"),
            &json!({"username": username, "email": format!("{username}@example.com"), "password": password}),
            None,
        )?;
        if status != 201 && status != 409 {
            bail!("registering {username} answered {status}: {body}");
        }
        let (status, body) = self.post_json(
            &self.url("users", "/login"),
            &json!({"username": username, "password": password}),
            None,
        )?;
        if status != 200 {
            bail!("logging in {username} answered {status}: {body}");
        }
        body.get("token")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .context("the login answer has no token")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_noise_png_is_a_real_png_of_about_the_asked_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("noise.png");
        let want = 300_000;
        let side = side_for_bytes(want);
        let bytes = write_noise_png(&path, side, side, 7).expect("written");
        let data = std::fs::read(&path).expect("read");
        assert_eq!(&data[..8], b"\x89PNG\r\n\x1a\n");
        assert!(
            (want..want + want / 50).contains(&bytes),
            "{bytes} bytes for {want} asked"
        );
        let decoder = png::Decoder::new(std::io::Cursor::new(data));
        let reader = decoder.read_info().expect("decodes");
        assert_eq!((reader.info().width, reader.info().height), (side, side));
    }

    #[test]
    fn neighbouring_seeds_give_different_images() {
        assert_ne!(noise(64, 1000), noise(64, 1001));
        assert_ne!(noise(64, 0), noise(64, 1));
    }

    #[test]
    fn a_multipart_body_has_one_file_field_between_boundaries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("body");
        let content_type =
            write_multipart(&path, "a.png", "image/png", b"PNGDATA").expect("written");
        let body = std::fs::read_to_string(&path).expect("read");
        assert_eq!(
            content_type,
            format!("multipart/form-data; boundary={BOUNDARY}")
        );
        assert!(body.starts_with(&format!("--{BOUNDARY}\r\n")));
        assert!(body.contains(
            "name=\"file\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\nPNGDATA\r\n"
        ));
        assert!(body.ends_with(&format!("--{BOUNDARY}--\r\n")));
    }
}
