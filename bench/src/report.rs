//! The results table: figure, latency, baseline, ratio, target and whether it is met, one line per
//! row of the JSON-lines file, followed by each row's notes.

use std::path::Path;

use anyhow::Context;

use crate::common::Row;

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

pub fn print(file: &Path, markdown: bool) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let rows: Vec<Row> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("parsing result row {l}")))
        .collect::<anyhow::Result<_>>()?;
    let header = ["Scenario", "Figure", "p50 ms", "p99 ms", "max ms", "Baseline", "Ratio", "Target", "Met"];
    let table: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            let (p50, p99, max) = match r.latency {
                Some(l) => (ms(l.p50_ms), ms(l.p99_ms), ms(l.max_ms)),
                None => ("–".into(), "–".into(), "–".into()),
            };
            [
                r.scenario.clone(),
                r.figure.clone(),
                p50,
                p99,
                max,
                r.baseline.clone().unwrap_or_else(|| "–".into()),
                r.ratio.map(|x| format!("{x:.2}×")).unwrap_or_else(|| "–".into()),
                r.target.clone(),
                match r.met {
                    Some(true) => "yes".into(),
                    Some(false) => "NO".into(),
                    None => "–".into(),
                },
            ]
        })
        .collect();
    if markdown {
        println!("| {} |", header.join(" | "));
        println!("|{}", "---|".repeat(header.len()));
        for r in &table {
            println!("| {} |", r.join(" | "));
        }
    } else {
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for r in &table {
            for (w, cell) in widths.iter_mut().zip(r) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: Vec<String>| {
            cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c}{}", " ".repeat(w.saturating_sub(c.chars().count()))))
                .collect::<Vec<_>>()
                .join("  ")
        };
        println!("{}", line(header.iter().map(|h| (*h).to_owned()).collect()));
        println!("{}", widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
        for r in &table {
            println!("{}", line(r.to_vec()));
        }
    }
    println!();
    for r in rows.iter().filter(|r| !r.notes.is_empty()) {
        println!("- {}: {}", r.scenario, r.notes);
    }
    Ok(())
}
