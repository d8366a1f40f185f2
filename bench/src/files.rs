//! Scenario 7: encrypted files. One client uploads a 64 MiB file (`POST /boxes/{id}/encrypted-files`)
//! and downloads it (`GET /encrypted-files/{id}`), against `dd` writing the same number of bytes
//! with `conv=fdatasync` and reading them back (from the page cache, as the download reads a blob
//! just written) in the same directory as boxes' `FILES_DIR`, so on the same disk.
//!
//! A download crosses the loopback, which `dd` does not: the notes also give the same bytes sent
//! over the loopback without HTTP, from the page cache with `sendfile` (no copy on the sending
//! side) by a process on the services' core and read by this one. On the 2-core machine of
//! BENCHMARKS.md that transfer was slower than boxes' own download, so it is a reference for the
//! loopback's cost, not a ceiling.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use boxes_client::body::FileMessage;
use domain::FileId;
use futures_util::StreamExt;

use crate::common::{self, rate, Row};
use crate::Common;

const MIB: usize = 1024 * 1024;

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
    let (mut dd_write, mut dd_read, mut raw) = (Vec::new(), Vec::new(), Vec::new());

    let minter = c.minter()?;
    let http = common::http_client(4)?;
    let user = common::create_users(&http, &c.boxes_internal_url, &c.internal_token, &minter, 1, 1).await?.remove(0);
    let box_id = common::create_box(&http, &c.boxes_url, &user, "files").await?;
    // A 64 MiB upload may take minutes while the machine is loaded: a client of its own, with a
    // longer timeout than the other scenarios'.
    let files_http = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(300))
        .build()
        .context("building the HTTP client")?;
    let as_user = common::api(&files_http, &c.boxes_url, &user);
    let message = FileMessage { encrypted: common::b64u_filler(64), public_key: None };
    let file = bytes::Bytes::from((0..size).map(|i| (i % 251) as u8).collect::<Vec<u8>>());

    let (mut up, mut down) = (Vec::new(), Vec::new());
    // Baselines and service alternate run by run, so that a change in the machine's load weighs
    // on both.
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
        raw.push(loopback(&target, size)?);

        let started = Instant::now();
        let event = as_user.upload_file(box_id, &message, file.clone()).await.context("uploading")?;
        up.push(started.elapsed());
        let id =
            event.content.as_ref().and_then(|c| c["encrypted_file_id"].as_str()).context("no encrypted_file_id")?;
        let id = FileId::parse(id).context("a malformed encrypted_file_id")?;

        let started = Instant::now();
        let res = as_user.file_response(id).await.context("downloading")?;
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
        as_user.delete_message(box_id, event.id).await.context("deleting the file message")?;
    }

    let _ = std::fs::remove_file(&target);

    let (down_rate, raw_rate) = (mib_per_s(size, median(down.clone())), mib_per_s(size, median(raw)));
    let dd_read_rate = mib_per_s(size, median(dd_read.clone()));
    let notes = format!("median of {runs} runs, one client; dd in the directory of FILES_DIR");
    let download_notes = format!(
        "{notes}; the same bytes over the loopback without HTTP (sendfile from the page cache to this process) \
         {} MiB/s = {:.2}× dd read, the download {:.2}× of that",
        rate(raw_rate),
        raw_rate / dd_read_rate,
        down_rate / raw_rate
    );
    let rows = [
        ("7. Upload a 64 MiB encrypted file", median(up), "dd write (conv=fdatasync)", median(dd_write), notes),
        ("7. Download a 64 MiB encrypted file", median(down), "dd read", median(dd_read), download_notes),
    ];
    for (scenario, took, baseline, dd_took, notes) in rows {
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
            notes,
        }
        .emit(c.out.as_deref())?;
    }
    Ok(())
}

/// Times `size` bytes of `path` crossing the loopback from a `send-file` process (on the
/// services' core when `BENCH_SERVICE_CPUS` names it) into a 1 MiB buffer here, from the accepted
/// connection to the end of the stream.
fn loopback(path: &Path, size: usize) -> anyhow::Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the loopback reference's listener")?;
    let addr = listener.local_addr()?;
    let exe = std::env::current_exe().context("finding loadgen")?;
    let mut cmd = match std::env::var("BENCH_SERVICE_CPUS") {
        Ok(cpus) if !cpus.is_empty() => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", &cpus]).arg(exe);
            cmd
        }
        _ => Command::new(exe),
    };
    let mut sender = cmd
        .args(["send-file", "--path"])
        .arg(path)
        .arg(format!("--addr={addr}"))
        .spawn()
        .context("starting the sender")?;
    let (mut stream, _) = listener.accept().context("accepting the sender")?;
    let started = Instant::now();
    let mut buf = vec![0u8; MIB];
    let mut got = 0;
    loop {
        match stream.read(&mut buf).context("reading from the sender")? {
            0 => break,
            n => got += n,
        }
    }
    let took = started.elapsed();
    let status = sender.wait().context("waiting for the sender")?;
    if !status.success() || got != size {
        bail!("the loopback reference's sender failed ({status}) after {got} of {size} bytes");
    }
    Ok(took)
}

/// The `send-file` subcommand: `std::io::copy` from a file to a TCP stream is `sendfile` on Linux.
pub fn send_file(path: &Path, addr: SocketAddr) -> anyhow::Result<()> {
    let mut file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut stream = TcpStream::connect(addr).context("connecting to the reader")?;
    std::io::copy(&mut file, &mut stream).context("sending")?;
    Ok(())
}
