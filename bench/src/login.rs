//! Scenario 6: `POST /auth/login` through auth-bridge with the reference host app's static codes,
//! so each login makes the two host-app calls, the internal identity upsert in boxes, and opens a
//! session. The rate per core divides by the CPU time of the service processes on that path.

use std::sync::Arc;

use anyhow::{bail, Context};
use boxes_client::body::LoginBody;

use crate::common::{self, rate, CpuWindow, Latency, Proc, Row};
use crate::Common;

pub async fn login(c: &Common, clients: usize) -> anyhow::Result<()> {
    let procs: Vec<(&str, Proc)> =
        [("auth-bridge", c.bridge_pid), ("reference-hostapp", c.hostapp_pid), ("boxes", c.boxes_pid)]
            .into_iter()
            .filter_map(|(n, p)| p.map(|p| (n, Proc(p))))
            .collect();
    if procs.len() != 3 {
        bail!("--bridge-pid, --hostapp-pid and --boxes-pid are required");
    }
    let http = common::http_client(clients)?;
    let url = format!("{}/auth/login", c.bridge_url);
    let bodies: Vec<LoginBody> = ["alice", "bob", "carol"]
        .iter()
        .map(|r| LoginBody {
            auth_code: format!("code-{r}"),
            app_id: "boxes-miniapp".into(),
            client_id: "ref-hostapp".into(),
        })
        .collect();
    let work = Arc::new((http, url, bodies));
    let warmup = c.warmup();
    let window = Arc::new(std::sync::Mutex::new(None::<CpuWindow>));
    let mark = {
        let (window, ps) = (window.clone(), procs.iter().map(|(_, p)| *p).collect::<Vec<_>>());
        tokio::spawn(async move {
            tokio::time::sleep(warmup).await;
            if let (Ok(mut slot), Ok(w)) = (window.lock(), CpuWindow::start(&ps)) {
                *slot = Some(w);
            }
        })
    };
    let r = common::closed_loop(clients, warmup, c.duration(), move |client, i| {
        let work = work.clone();
        async move {
            let (http, url, bodies) = &*work;
            let body = &bodies[(client + i as usize) % bodies.len()];
            let res = http.post(url).json(body).send().await.context("POST /auth/login")?;
            let status = res.status();
            let bytes = res.bytes().await.context("reading the answer")?;
            if status != 200 {
                bail!("answered {status}: {}", String::from_utf8_lossy(&bytes));
            }
            Ok(())
        }
    })
    .await?;
    mark.await.ok();
    let (used, wall) = window.lock().ok().and_then(|mut s| s.take()).context("CPU window")?.stop()?;
    let total: f64 = used.iter().sum();
    let per_core = if total > 0.0 { r.ok as f64 / total } else { 0.0 };
    let shares: Vec<String> = procs
        .iter()
        .zip(&used)
        .map(|((name, _), secs)| format!("{name} {:.0}%", 100.0 * secs / wall.max(0.001)))
        .collect();
    let mut notes =
        vec![format!("{} logins/s wall, {clients} clients; CPU of one core: {}", rate(r.rate()), shares.join(", "))];
    if r.errors > 0 {
        notes.push(r.error_note());
    }
    Row {
        scenario: "6. Login via auth-bridge + reference host app".into(),
        figure: format!("{} logins/s per core", rate(per_core)),
        latency: Some(Latency::of(&r.histogram)),
        baseline: None,
        ratio: None,
        target: "≥ 1,200/s per core".into(),
        met: Some(per_core >= 1_200.0 && r.errors == 0),
        notes: notes.join("; "),
    }
    .emit(c.out.as_deref())
}
