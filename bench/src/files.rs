//! Scenario 7: encrypted files. One client uploads a 64 MiB file (`POST /boxes/{id}/encrypted-files`)
//! and downloads it (`GET /encrypted-files/{id}`), against `dd` writing the same number of bytes
//! with `conv=fdatasync` and reading them back (from the page cache, as the download reads a blob
//! just written) in the same directory as boxes' `FILES_DIR`, so on the same disk.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::StreamExt;

use crate::common::{self, rate, Row};
use crate::Common;

const MIB: usize = 1024 * 1024;
const BOUNDARY: &str = "----loadgen-files";

/// The median of the runs.
fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn mib_per_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / MIB as f64 / d.as_secs_f64().max(1e-9)
}

/// Runs `dd` and times it, process start included (well under a millisecond here).
fn dd(args: &[String]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let out = Command::new("dd").args(args).output().context("running dd")?;
    let took = started.elapsed();
    if !out.status.success() {
        bail!("dd {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(took)
}

pub async fn files(c: &Common, dir: &Path, size_mib: usize, runs: usize) -> anyhow::Result<()> {
    let size = size_mib * MIB;
    let runs = runs.max(1);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let target = dir.join("dd-baseline.bin");
    let (mut dd_write, mut dd_read) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        dd_write.push(dd(&[
            "if=/dev/zero".into(),
            format!("of={}", target.display()),
            "bs=1M".into(),
            format!("count={size_mib}"),
            "conv=fdatasync".into(),
            "status=none".into(),
        ])?);
        dd_read.push(dd(&[
            format!("if={}", target.display()),
            "of=/dev/null".into(),
            "bs=1M".into(),
            "status=none".into(),
        ])?);
    }
    let _ = std::fs::remove_file(&target);

    let minter = c.minter()?;
    let http = common::http_client(4)?;
    let user = common::create_users(&http, &c.boxes_internal_url, &c.internal_token, &minter, 1, 1).await?.remove(0);
    let box_id = common::create_box(&http, &c.boxes_url, &user, "files").await?;
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"msg_encrypted_content\"\r\n\r\n{}\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"encrypted_file\"; filename=\"f\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n",
        common::b64u_filler(64)
    )
    .into_bytes();
    body.extend((0..size).map(|i| (i % 251) as u8));
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let body = bytes::Bytes::from(body);

    let (mut up, mut down) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let started = Instant::now();
        let res = http
            .post(format!("{}/boxes/{box_id}/encrypted-files", c.boxes_url))
            .header("Authorization", &user.bearer)
            .header("Content-Type", format!("multipart/form-data; boundary={BOUNDARY}"))
            .body(body.clone())
            .timeout(Duration::from_secs(300))
            .send()
            .await
            .context("uploading")?;
        let status = res.status();
        let event: serde_json::Value = res.json().await.context("reading the upload's answer")?;
        up.push(started.elapsed());
        if status != 201 {
            bail!("the upload answered {status}: {event}");
        }
        let id = event["content"]["encrypted_file_id"].as_str().context("no encrypted_file_id")?.to_owned();

        let started = Instant::now();
        let res = http
            .get(format!("{}/encrypted-files/{id}", c.boxes_url))
            .header("Authorization", &user.bearer)
            .timeout(Duration::from_secs(300))
            .send()
            .await
            .context("downloading")?;
        if res.status() != 200 {
            bail!("the download answered {}", res.status());
        }
        let mut got = 0usize;
        let mut stream = res.bytes_stream();
        while let Some(chunk) = stream.next().await {
            got += chunk.context("reading the download")?.len();
        }
        down.push(started.elapsed());
        if got != size {
            bail!("downloaded {got} bytes of {size}");
        }
        // Each upload counts against the quota: remove it, as a client deleting the message would.
        let res = http
            .post(format!("{}/boxes/{box_id}/events", c.boxes_url))
            .header("Authorization", &user.bearer)
            .json(&serde_json::json!({"type": "msg.delete", "referrer_id": event["id"]}))
            .send()
            .await
            .context("deleting the file message")?;
        if res.status() != 201 {
            bail!("msg.delete answered {}", res.status());
        }
    }

    let notes = format!("median of {runs} runs, one client; dd in the directory of FILES_DIR");
    let rows = [
        ("7. Upload a 64 MiB encrypted file", median(up), "dd write (conv=fdatasync)", median(dd_write)),
        ("7. Download a 64 MiB encrypted file", median(down), "dd read", median(dd_read)),
    ];
    for (scenario, took, baseline, dd_took) in rows {
        let (ours, theirs) = (mib_per_s(size, took), mib_per_s(size, dd_took));
        let ratio = ours / theirs;
        Row {
            scenario: scenario.into(),
            figure: format!("{} MiB/s", rate(ours)),
            latency: None,
            baseline: Some(format!("{baseline} {} MiB/s", rate(theirs))),
            ratio: Some(ratio),
            target: "≥ 0.5× baseline".into(),
            met: Some(ratio >= 0.5),
            notes: notes.clone(),
        }
        .emit(c.out.as_deref())?;
    }
    Ok(())
}
