//! A catalogue of hostile requests sent through the gateway, each with the answer it must get:
//! malformed and oversized bodies, forged and stolen tokens, invented methods, hidden paths,
//! hostile multipart bodies and every refused image of `common::imaging::samples`, to images'
//! upload and to inference's predict alike. Every answer must be a 4xx problem+json document
//! (or nginx's HTML page where the client asked for HTML), none may hang, and afterwards every
//! service is ready and the images stored before are intact — no more, no fewer.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use reqwest::{
    blocking::{Client, RequestBuilder, Response},
    Method,
};
use serde_json::{json, Value};
use xtask::stack::{Ports, Stack};

use crate::gateway_support::{
    client, client_within, download_sha256, new_user, sample_png, upload, url,
};

/// How long any one answer may take: every case is refused before real work, so seconds mean a
/// hang.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// What an answer must be.
struct Expected {
    status: u16,
    /// The problem `type`, when the case pins it.
    problem: Option<&'static str>,
    /// The client asked for HTML: nginx's page, not problem+json.
    html: bool,
}

struct Case {
    name: String,
    expected: Expected,
    request: Box<dyn Fn(&Client) -> RequestBuilder>,
}

fn case(
    name: impl Into<String>,
    status: u16,
    problem: Option<&'static str>,
    request: impl Fn(&Client) -> RequestBuilder + 'static,
) -> Case {
    Case {
        name: name.into(),
        expected: Expected {
            status,
            problem,
            html: false,
        },
        request: Box::new(request),
    }
}

/// A multipart body with boundary `b0undary` holding `parts` (name, filename, content type,
/// bytes), closed or not.
fn multipart(parts: &[(&str, &str, &str, &[u8])], closed: bool) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename, content_type, bytes) in parts {
        body.extend_from_slice(
            format!(
                "--b0undary\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    if closed {
        body.extend_from_slice(b"--b0undary--\r\n");
    }
    body
}

/// A token of `claims` under `header`, with a signature that is not the service's.
fn forged_token(header: Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// The claims of `token`, read without checking anything.
fn claims_of(token: &str) -> Result<Value> {
    let payload = token.split('.').nth(1).context("not a JWT")?;
    Ok(serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload)?)?)
}

/// Tokens of the victim and the attacker, and an admin's.
struct Tokens {
    victim: String,
    attacker: String,
    admin: String,
}

fn users_cases(ports: &Ports, tokens: &Tokens) -> Result<Vec<Case>> {
    let p = ports.clone();
    let users = move |path: &str| url(&p, "users.localhost", path);
    let json_post = {
        let users = users.clone();
        move |client: &Client, path: &str, body: String| {
            client
                .post(users(path))
                .header("content-type", "application/json")
                .body(body)
        }
    };
    let register = {
        let json_post = json_post.clone();
        move |username: &str, email: &str, password: &str| {
            let body =
                json!({ "username": username, "email": email, "password": password }).to_string();
            let json_post = json_post.clone();
            move |client: &Client| json_post(client, "/register", body.clone())
        }
    };
    let victim_claims = claims_of(&tokens.victim)?;
    // The victim's own claims made admin, signed with nothing, with a guessed HMAC key, and with
    // a signature that belongs to another token.
    let mut admin_claims = victim_claims.clone();
    admin_claims["role"] = json!("admin");
    let unsigned = forged_token(json!({ "alg": "none", "typ": "JWT" }), &admin_claims, b"");
    let hmac = forged_token(
        json!({ "alg": "HS256", "typ": "JWT" }),
        &admin_claims,
        b"0123456789abcdef0123456789abcdef",
    );
    let stolen_signature =
        URL_SAFE_NO_PAD.decode(tokens.attacker.split('.').nth(2).context("no signature")?)?;
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD.decode(tokens.victim.split('.').next().context("no header")?)?,
    )?;
    let spliced = forged_token(header, &admin_claims, &stolen_signature);
    let bearer = {
        let users = users.clone();
        move |path: &'static str, token: String| {
            let users = users.clone();
            move |client: &Client| client.get(users(path)).bearer_auth(&token)
        }
    };
    let admin = tokens.admin.clone();
    let attacker = tokens.attacker.clone();
    let u = users.clone();
    let mut cases = vec![
        case(
            "register: malformed JSON",
            400,
            Some("/problems/bad-request"),
            {
                let json_post = json_post.clone();
                move |c| json_post(c, "/register", r#"{"username": "eve", "#.to_owned())
            },
        ),
        case(
            "register: JSON sent as text/plain",
            415,
            Some("/problems/unsupported-media-type"),
            {
                let u = u.clone();
                move |c| {
                    c.post(u("/register"))
                        .header("content-type", "text/plain")
                        .body(r#"{"username":"eve","email":"eve@example.com","password":"long enough pass"}"#)
                }
            },
        ),
        case(
            "register: a number for the username",
            422,
            Some("/problems/validation"),
            {
                let json_post = json_post.clone();
                move |c| {
                    json_post(
                    c,
                    "/register",
                    r#"{"username": 5, "email": "e@example.com", "password": "long enough pass"}"#
                        .to_owned(),
                )
                }
            },
        ),
        case(
            "register: a 300-character username",
            422,
            Some("/problems/validation"),
            register(&"e".repeat(300), "eve@example.com", "long enough pass"),
        ),
        case(
            "register: a NUL byte in the username",
            422,
            Some("/problems/validation"),
            register("eve\u{0}admin", "eve@example.com", "long enough pass"),
        ),
        case(
            "register: a right-to-left override in the username",
            422,
            Some("/problems/validation"),
            register("eve\u{202e}nimda", "eve@example.com", "long enough pass"),
        ),
        case(
            "register: an email without a domain",
            422,
            Some("/problems/validation"),
            register("eve-no-domain", "eve@", "long enough pass"),
        ),
        case(
            "register: a header injected into the email",
            422,
            Some("/problems/validation"),
            register(
                "eve-inject",
                "eve@example.com\r\nBcc: all@example.com",
                "long enough pass",
            ),
        ),
        case(
            "register: a one-character password",
            422,
            Some("/problems/validation"),
            register("eve-short", "eve-short@example.com", "x"),
        ),
        case("login: a 20 KB body", 413, Some("/problems/too-large"), {
            let json_post = json_post.clone();
            move |c| {
                json_post(
                    c,
                    "/login",
                    json!({ "username": "a".repeat(20_000), "password": "x" }).to_string(),
                )
            }
        }),
        case(
            "login: SQL in the username",
            401,
            Some("/problems/unauthorized"),
            {
                let json_post = json_post.clone();
                move |c| {
                    json_post(
                        c,
                        "/login",
                        json!({ "username": "' OR '1'='1' --", "password": "x" }).to_string(),
                    )
                }
            },
        ),
        case(
            "refresh: SQL as the refresh token",
            401,
            Some("/problems/unauthorized"),
            {
                let json_post = json_post.clone();
                move |c| {
                    json_post(
                        c,
                        "/token/refresh",
                        json!({ "refresh_token": "x' OR 1=1 --" }).to_string(),
                    )
                }
            },
        ),
        case(
            "/me without a token",
            401,
            Some("/problems/unauthorized"),
            {
                let u = u.clone();
                move |c| c.get(u("/me"))
            },
        ),
        case(
            "/me with a token that is not a JWT",
            401,
            Some("/problems/unauthorized"),
            bearer("/me", "garbage".to_owned()),
        ),
        case(
            "/admin/stats with an unsigned (alg none) admin token",
            401,
            Some("/problems/unauthorized"),
            bearer("/admin/stats", unsigned.clone()),
        ),
        case(
            "/admin/stats with an HS256 admin token",
            401,
            Some("/problems/unauthorized"),
            bearer("/admin/stats", hmac),
        ),
        case(
            "/me with claims made admin under another token's signature",
            401,
            Some("/problems/unauthorized"),
            bearer("/me", spliced),
        ),
        case(
            "/admin/stats with a user's token",
            403,
            Some("/problems/forbidden"),
            bearer("/admin/stats", attacker.clone()),
        ),
        case(
            "/admin/stats with a spoofed identity header and no token",
            401,
            None,
            {
                let u = u.clone();
                move |c| {
                    c.get(u("/admin/stats"))
                        .header("X-User-Id", "00000000-0000-0000-0000-000000000000")
                        .header("X-User-Role", "admin")
                }
            },
        ),
        case(
            "admin: a user id that is not a UUID",
            404,
            Some("/problems/not-found"),
            {
                let (u, admin) = (u.clone(), admin.clone());
                move |c| {
                    c.patch(u("/admin/users/1%20OR%201=1"))
                        .bearer_auth(&admin)
                        .json(&json!({ "disabled": true }))
                }
            },
        ),
        case(
            "admin: a role that does not exist",
            422,
            Some("/problems/validation"),
            {
                let (u, admin) = (u.clone(), admin.clone());
                move |c| {
                    c.patch(u("/admin/users/01900000-0000-7000-8000-000000000000"))
                        .bearer_auth(&admin)
                        .json(&json!({ "role": "god" }))
                }
            },
        ),
        case(
            "admin: a page size that is not a number",
            422,
            Some("/problems/validation"),
            {
                let (u, admin) = (u.clone(), admin.clone());
                move |c| c.get(u("/admin/users?limit=all")).bearer_auth(&admin)
            },
        ),
        case(
            "an invented HTTP method on /me",
            405,
            Some("/problems/method-not-allowed"),
            {
                let u = u.clone();
                move |c| {
                    c.request(
                        Method::from_bytes(b"EXFILTRATE").expect("a method"),
                        u("/me"),
                    )
                }
            },
        ),
        case(
            "the revocation feed, from outside",
            404,
            Some("/problems/not-found"),
            {
                let u = u.clone();
                move |c| c.get(u("/internal/revocations"))
            },
        ),
        case(
            "the revocation feed, by an encoded path traversal",
            404,
            Some("/problems/not-found"),
            {
                let u = u.clone();
                move |c| c.get(u("/.well-known/%2e%2e/internal/revocations"))
            },
        ),
        case(
            "users metrics, from outside",
            404,
            Some("/problems/not-found"),
            {
                let u = u.clone();
                move |c| c.get(u("/metrics"))
            },
        ),
        case("a 4 KB path", 404, Some("/problems/not-found"), {
            let u = u.clone();
            move |c| c.get(u(&format!("/{}", "a".repeat(4096))))
        }),
    ];
    cases.push(Case {
        name: "an unknown host, asking for HTML".into(),
        expected: Expected {
            status: 404,
            problem: None,
            html: true,
        },
        request: Box::new({
            let p = ports.clone();
            move |c| {
                c.get(url(&p, "unknown.localhost", "/"))
                    .header("accept", "text/html")
            }
        }),
    });
    cases.push(case(
        "an unknown host, asking for JSON",
        404,
        Some("/problems/not-found"),
        {
            let p = ports.clone();
            move |c| c.get(url(&p, "unknown.localhost", "/admin/stats"))
        },
    ));
    Ok(cases)
}

fn images_cases(ports: &Ports, tokens: &Tokens, victims_image: &str) -> Vec<Case> {
    let p = ports.clone();
    let images = move |path: &str| url(&p, "images.localhost", path);
    let attacker = tokens.attacker.clone();
    let as_attacker = {
        let (images, attacker) = (images.clone(), attacker.clone());
        move |method: Method, path: String| {
            let (images, attacker) = (images.clone(), attacker.clone());
            move |c: &Client| {
                c.request(method.clone(), images(&path))
                    .bearer_auth(&attacker)
            }
        }
    };
    let upload_raw = {
        let (images, attacker) = (images.clone(), attacker.clone());
        move |content_type: &'static str, body: Vec<u8>| {
            let (images, attacker) = (images.clone(), attacker.clone());
            move |c: &Client| {
                c.post(images("/upload"))
                    .bearer_auth(&attacker)
                    .header("content-type", content_type)
                    .body(body.clone())
            }
        }
    };
    let png = sample_png().unwrap_or_default();
    let mut padded = png.clone();
    padded.resize(21 * 1024 * 1024, 0);
    let mut cases = vec![
        case(
            "list without a token",
            401,
            Some("/problems/unauthorized"),
            {
                let images = images.clone();
                move |c| c.get(images("/images"))
            },
        ),
        case(
            "download of an id that is not a UUID",
            404,
            Some("/problems/not-found"),
            as_attacker(Method::GET, "/images/..%2f..%2fetc%2fpasswd".into()),
        ),
        case(
            "download of an image that does not exist",
            404,
            Some("/problems/not-found"),
            as_attacker(
                Method::GET,
                "/images/01900000-0000-7000-8000-000000000000".into(),
            ),
        ),
        case(
            "download of another user's image",
            404,
            Some("/problems/not-found"),
            as_attacker(Method::GET, format!("/images/{victims_image}")),
        ),
        case(
            "metadata of another user's image",
            404,
            Some("/problems/not-found"),
            as_attacker(Method::GET, format!("/images/{victims_image}/meta")),
        ),
        case(
            "deletion of another user's image",
            404,
            Some("/problems/not-found"),
            as_attacker(Method::DELETE, format!("/images/{victims_image}")),
        ),
        case(
            "a negative page size",
            422,
            Some("/problems/validation"),
            as_attacker(Method::GET, "/images?limit=-1".into()),
        ),
        case(
            "a page size of a million",
            422,
            Some("/problems/validation"),
            as_attacker(Method::GET, "/images?limit=1000000".into()),
        ),
        case(
            "a forged cursor",
            422,
            Some("/problems/validation"),
            as_attacker(Method::GET, "/images?cursor=%00%ff%27%20OR%201%3D1".into()),
        ),
        case(
            "upload of JSON instead of a form",
            415,
            Some("/problems/unsupported-media-type"),
            upload_raw("application/json", br#"{"file": "AAAA"}"#.to_vec()),
        ),
        case(
            "upload of a form without a boundary",
            400,
            Some("/problems/bad-request"),
            upload_raw(
                "multipart/form-data",
                multipart(&[("file", "a.png", "image/png", &png)], true),
            ),
        ),
        case(
            "upload of a form whose body never closes",
            400,
            Some("/problems/bad-request"),
            upload_raw(
                "multipart/form-data; boundary=b0undary",
                multipart(&[("file", "a.png", "image/png", &png)], false),
            ),
        ),
        case(
            "upload of a form without a file part",
            422,
            Some("/problems/validation"),
            upload_raw(
                "multipart/form-data; boundary=b0undary",
                multipart(&[("note", "a.txt", "text/plain", b"no picture here")], true),
            ),
        ),
        case(
            "upload of a 21 MiB file that starts as a PNG",
            413,
            Some("/problems/too-large"),
            upload_raw(
                "multipart/form-data; boundary=b0undary",
                multipart(&[("file", "big.png", "image/png", &padded)], true),
            ),
        ),
    ];
    for sample in common::imaging::samples::refused() {
        let body = multipart(&[("file", "sample.png", "image/png", &sample.bytes)], true);
        cases.push(case(
            format!("upload of {}", sample.name),
            sample.status,
            Some(sample.problem_type),
            upload_raw("multipart/form-data; boundary=b0undary", body),
        ));
    }
    cases
}

fn inference_cases(ports: &Ports, tokens: &Tokens, victims_image: &str) -> Vec<Case> {
    let p = ports.clone();
    let inference = move |path: &str| url(&p, "inference.localhost", path);
    let attacker = tokens.attacker.clone();
    let predict = {
        let (inference, attacker) = (inference.clone(), attacker.clone());
        move |content_type: &'static str, body: Vec<u8>| {
            let (inference, attacker) = (inference.clone(), attacker.clone());
            move |c: &Client| {
                c.post(inference("/predict"))
                    .bearer_auth(&attacker)
                    .header("content-type", content_type)
                    .body(body.clone())
            }
        }
    };
    let stored = {
        let (inference, attacker) = (inference.clone(), attacker.clone());
        move |id: String| {
            let (inference, attacker) = (inference.clone(), attacker.clone());
            move |c: &Client| {
                c.get(inference(&format!("/predict/{id}")))
                    .bearer_auth(&attacker)
            }
        }
    };
    let mut cases = vec![
        case(
            "predict without a token",
            401,
            Some("/problems/unauthorized"),
            {
                let inference = inference.clone();
                move |c| {
                    c.post(inference("/predict"))
                        .header("content-type", "image/png")
                        .body(sample_png().unwrap_or_default())
                }
            },
        ),
        case(
            "predict of a JSON body",
            415,
            Some("/problems/unsupported-media-type"),
            predict("application/json", b"[137, 80, 78, 71]".to_vec()),
        ),
        case(
            "predict of a stored image that does not exist",
            404,
            Some("/problems/not-found"),
            stored("01900000-0000-7000-8000-000000000000".into()),
        ),
        case(
            "predict of another user's stored image",
            404,
            Some("/problems/not-found"),
            stored(victims_image.to_owned()),
        ),
        case(
            "predict of an id that is not a UUID",
            404,
            Some("/problems/not-found"),
            stored("not-a-uuid".into()),
        ),
    ];
    for sample in common::imaging::samples::refused() {
        cases.push(case(
            format!("predict of {}", sample.name),
            sample.status,
            Some(sample.problem_type),
            predict("application/octet-stream", sample.bytes.clone()),
        ));
    }
    cases
}

/// What is wrong with `response` as the answer `expected`, if anything.
fn misfit(response: Response, expected: &Expected) -> Option<String> {
    let status = response.status().as_u16();
    let content_type = crate::gateway_support::content_type(&response);
    let body = response.text().unwrap_or_default();
    let shown = || format!("{status} {content_type}: {}", &body[..body.len().min(300)]);
    if status != expected.status {
        return Some(format!("expected {}, got {}", expected.status, shown()));
    }
    if expected.html {
        return (!content_type.starts_with("text/html")).then(|| format!("not HTML: {}", shown()));
    }
    if !content_type.starts_with("application/problem+json") {
        return Some(format!("not problem+json: {}", shown()));
    }
    let Ok(problem) = serde_json::from_str::<Value>(&body) else {
        return Some(format!("not JSON: {}", shown()));
    };
    if problem["status"] != status
        || !problem["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("/problems/"))
    {
        return Some(format!("not a problem document: {}", shown()));
    }
    match expected.problem {
        Some(kind) if problem["type"] != kind => Some(format!("expected {kind}, got {}", shown())),
        _ => None,
    }
}

/// Sends the whole catalogue through the gateway of `stack`; see the module's documentation.
pub fn every_hostile_request_gets_a_clear_4xx_and_nothing_is_lost(stack: &mut Stack) -> Result<()> {
    let ports = stack.ports().clone();
    let setup = client(&ports, None)?;
    let (_, victim) = new_user(&setup, &ports, "victim")?;
    let (_, attacker) = new_user(&setup, &ports, "attacker")?;
    let admin = crate::admin_token(stack)?;
    let jpeg = common::imaging::samples::accepted()
        .into_iter()
        .next()
        .context("no accepted sample")?;
    let mut stored = Vec::new();
    for bytes in [sample_png()?, jpeg.bytes] {
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        let id = upload(&setup, &ports, &victim, bytes)?;
        stored.push((id, sha256));
    }
    let tokens = Tokens {
        victim: victim.clone(),
        attacker: attacker.clone(),
        admin,
    };
    let mut cases = users_cases(&ports, &tokens)?;
    cases.extend(images_cases(&ports, &tokens, &stored[0].0));
    cases.extend(inference_cases(&ports, &tokens, &stored[0].0));
    ensure!(cases.len() >= 40, "only {} hostile requests", cases.len());

    let hostile = client_within(&ports, None, ANSWER_WITHIN)?;
    let mut failures = Vec::new();
    for case in &cases {
        let started = Instant::now();
        let mut request = (case.request)(&hostile);
        if !case.expected.html {
            // As an API client asks; the gateway's own pages are HTML for anything else.
            request = request.header("accept", "application/json");
        }
        match request.send() {
            Ok(response) => {
                if let Some(wrong) = misfit(response, &case.expected) {
                    failures.push(format!("{}: {wrong}", case.name));
                }
            }
            Err(e) => failures.push(format!(
                "{}: no answer after {:?}: {e:#}",
                case.name,
                started.elapsed()
            )),
        }
    }
    println!(
        "{} hostile requests through the gateway, {} answered otherwise than expected",
        cases.len(),
        failures.len()
    );
    ensure!(failures.is_empty(), "{}", failures.join("\n"));

    // Every service still ready, directly on its own port.
    let direct = reqwest::blocking::Client::builder()
        .timeout(ANSWER_WITHIN)
        .build()?;
    for port in ports.users.iter().chain([&ports.images, &ports.inference]) {
        let status = direct
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()?
            .status();
        ensure!(status == 200, "/readyz on port {port} answered {status}");
    }
    // The victim's images are the ones stored before, whole, and no refused upload was kept.
    for (id, sha256) in &stored {
        let now = download_sha256(&setup, &ports, &victim, id)?;
        ensure!(&now == sha256, "image {id} changed: {now} != {sha256}");
    }
    for (token, expected) in [(&victim, stored.len()), (&attacker, 0)] {
        let list: Value = setup
            .get(url(&ports, "images.localhost", "/images"))
            .bearer_auth(token)
            .send()?
            .json()?;
        let count = list["items"].as_array().map_or(0, Vec::len);
        ensure!(
            count == expected,
            "a user has {count} images, not {expected}: {list}"
        );
    }
    Ok(())
}
