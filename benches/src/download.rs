//! Downloads: `GET /images/{id}` of a 10 KB image at concurrency 32, straight to images_service
//! and through the gateway, against baselines measured in the same invocation:
//! - `GET /me` straight to a users replica (the cheapest authenticated request a service answers);
//! - Traefik in front of nginx's static page (the floor of any request through the gateway);
//! - nginx serving the same bytes from a file (the physical anchor of serving a small file);
//! - the Python/Flask service this suite replaces, 1,489 req/s on this machine class (a fixed
//!   figure from the issue that set the goal, not measured here).

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result};

use super::{
    fixtures, gateway,
    oha::{Limit, Load},
    report::{LoadResult, PartReport},
    Bench, Live, Part,
};

/// The image size the goal names.
const IMAGE_BYTES: u64 = 10 * 1024;
/// The replaced Flask service's `GET /images/{id}` on this machine class, req/s.
const FLASK_REQ_PER_SEC: f64 = 1489.0;
const SECONDS: u64 = 5;
const DIRECT: &str = "GET /images/{id} (10 KB) direct to images_service";
const VIA: &str = "GET /images/{id} (10 KB) via Traefik";
const NGINX_FILE: &str = "GET the same 10 KB file from nginx (disk)";

pub fn run(bench: &Bench, live: &Live) -> Result<PartReport> {
    let mut part = super::new_part(Part::Download, "Downloads: a 10 KB image");
    let png = bench.scratch("download.png");
    let side = fixtures::side_for_bytes(IMAGE_BYTES);
    let bytes = fixtures::write_noise_png(&png, side, side, 7)?;
    let image_id = upload(live, &png)?;

    let static_dir = bench.scratch("static");
    std::fs::create_dir_all(&static_dir)?;
    std::fs::copy(&png, static_dir.join("image.png"))?;
    let nginx = FileServer::start(bench, &static_dir)?;

    let path = format!("/images/{image_id}");
    let direct = bench.measure(
        DIRECT,
        &Load::get(
            format!("http://127.0.0.1:{}{path}", live.ports().images),
            gateway::CONCURRENCY,
            Limit::Seconds(SECONDS),
        )
        .header("Authorization", &live.bearer()),
    )?;
    let via = bench.measure(
        VIA,
        &Load::get(
            live.web(&path),
            gateway::CONCURRENCY,
            Limit::Seconds(SECONDS),
        )
        .header("Host", "images.localhost")
        .header("Authorization", &live.bearer()),
    )?;
    let file = bench.measure(
        NGINX_FILE,
        &Load::get(
            format!("http://127.0.0.1:{}/image.png", nginx.port),
            gateway::CONCURRENCY,
            Limit::Seconds(SECONDS),
        ),
    )?;
    drop(nginx);
    let me = bench.measure(gateway::ME_DIRECT, &gateway::me_direct(live))?;
    let floor = bench.measure(gateway::FLOOR, &gateway::floor(live))?;

    compare(&mut part, [&direct, &via, &file, &me, &floor]);
    part.loads = vec![direct, via, file, me, floor];
    part.note(format!(
        "A {bytes}-byte noise PNG, concurrency {}, {SECONDS} s per run. The download is authenticated (Bearer \
         token verified by images_service), reads the metadata row (SQLite) and reads the blob from the local \
         object store (whole, as every image up to 256 KiB); nginx serves the same bytes with no check at all.",
        gateway::CONCURRENCY
    ));
    Ok(part)
}

/// The download figures against their anchors: `loads` are direct, via the gateway, nginx's
/// file, `GET /me` direct and the gateway's floor.
fn compare(part: &mut PartReport, loads: [&LoadResult; 5]) {
    let [direct, via, file, me, floor] = loads;
    let (d, v, n) = (&direct.median, &via.median, &file.median);
    part.compare(
        "download req/s direct",
        d.ok_per_sec,
        "the replaced Flask service (1,489 req/s, fixed figure)",
        FLASK_REQ_PER_SEC,
        "req/s",
        "goal ≥ 10",
    );
    part.compare(
        "download req/s direct",
        d.ok_per_sec,
        "`GET /me` direct to users-2",
        me.median.ok_per_sec,
        "req/s",
        "goal ≥ 0.8: a download costs about what the cheapest authenticated answer costs",
    );
    part.figure("download p99 direct", d.p99_ms, "ms", "goal < 5 ms at c=32");
    part.compare(
        "download req/s via gateway",
        v.ok_per_sec,
        "Traefik → nginx static page",
        floor.median.ok_per_sec,
        "req/s",
        "goal ≥ 0.8 of the gateway's own floor",
    );
    part.compare(
        "download req/s direct",
        d.ok_per_sec,
        "nginx serving the file from disk",
        n.ok_per_sec,
        "req/s",
        "the physical anchor: token check, database row and blob read against a static file",
    );
    part.compare(
        "download p50 direct",
        d.p50_ms,
        "nginx serving the file from disk",
        n.p50_ms,
        "ms",
        "latency multiple at the median",
    );
}

/// Uploads the PNG through the gateway and returns its image id.
fn upload(live: &Live, png: &Path) -> Result<String> {
    let body = std::fs::read(png)?;
    let multipart = png.with_extension("multipart");
    let content_type = fixtures::write_multipart(&multipart, "download.png", "image/png", &body)?;
    let (status, answer) = live.http.post_bytes(
        &live.http.url("images", "/upload"),
        &std::fs::read(&multipart)?,
        &content_type,
        &live.token,
    )?;
    anyhow::ensure!(status == 201, "upload answered {status}: {answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer)?;
    Ok(answer["image_id"]
        .as_str()
        .context("no image_id in the upload answer")?
        .to_owned())
}

/// nginx serving one folder on a free loopback port, stopped when dropped.
struct FileServer {
    child: Child,
    port: u16,
}

impl FileServer {
    fn start(bench: &Bench, root: &Path) -> Result<Self> {
        let port = xtask::tools::free_port()?;
        let prefix = bench.scratch("nginx");
        std::fs::create_dir_all(&prefix)?;
        let config = prefix.join("nginx.conf");
        // Workers read the folder as root's own files: the scratch folder is private.
        std::fs::write(
            &config,
            format!(
                "user root;\nworker_processes auto;\ndaemon off;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\n\
                 events {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {prefix}/body;\n  proxy_temp_path {prefix}/proxy;\n  \
                 fastcgi_temp_path {prefix}/fastcgi;\n  uwsgi_temp_path {prefix}/uwsgi;\n  scgi_temp_path {prefix}/scgi;\n  \
                 types {{ image/png png; }}\n  server {{\n    listen 127.0.0.1:{port};\n    root {root};\n  }}\n}}\n",
                prefix = prefix.display(),
                root = root.display(),
            ),
        )?;
        let mut command = Command::new(xtask::stack::nginx_bin());
        // Its own process group, so stopping it stops its workers too.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nginx for the file anchor")?;
        let server = Self { child, port };
        xtask::tools::wait_for_http(
            &format!("http://127.0.0.1:{port}/image.png"),
            Duration::from_secs(10),
        )?;
        Ok(server)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        xtask::stack::stop_group(&mut self.child);
    }
}
