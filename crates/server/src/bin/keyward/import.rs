//! `keyward import --format <estuary|stratum|sha256> FILE`: another service's keys, from a JSON
//! lines file, through `keyward_core::import` (see there for batches and what a bad row does),
//! with a progress bar on a terminal and a report at the end.

use std::io::BufRead;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use keyward_core::auth::Caller;
use keyward_core::import::{ImportOptions, Importer};
use keyward_core::Keyward;

/// Runs the import of `file`; an error when any row was refused (after the report).
pub async fn import(
    kw: &Keyward,
    operator: &Caller,
    file: &Path,
    options: ImportOptions,
) -> anyhow::Result<()> {
    let opened =
        std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let size = opened.metadata().map(|m| m.len()).unwrap_or(0);
    let mut reader = std::io::BufReader::with_capacity(1 << 20, opened);
    let bar = indicatif::ProgressBar::new(size);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes}  {msg}  {binary_bytes_per_sec}  eta {eta}",
        )
        .context("progress template")?,
    );
    let started = Instant::now();
    let mut importer = Importer::start(kw, operator, options)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut line = String::new();
    let mut number = 0u64;
    loop {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .with_context(|| format!("reading {} after line {number}", file.display()))?;
        if read == 0 {
            break;
        }
        number += 1;
        // A byte order mark some editors write is not part of the first row.
        let text = if number == 1 {
            line.strip_prefix('\u{feff}').unwrap_or(&line)
        } else {
            &line
        };
        importer
            .line(number, text)
            .await
            .map_err(|e| anyhow::anyhow!("line {number}: {e}"))?;
        bar.inc(read as u64);
        if number.is_multiple_of(10_000) {
            let rows = importer.report().rows;
            let rate = rows as f64 / started.elapsed().as_secs_f64().max(1e-3);
            bar.set_message(format!("{rows} rows ({rate:.0} rows/s)"));
        }
    }
    let report = importer
        .finish()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{} rows in {secs:.1} s ({:.0} rows/s): {} imported, {} already present (unchanged), {} owners created",
        report.rows,
        report.rows as f64 / secs.max(1e-3),
        report.imported,
        report.already_present,
        report.owners_created,
    );
    if report.sessions_skipped > 0 {
        println!(
            "{} Estuary login sessions left out (not keys)",
            report.sessions_skipped
        );
    }
    if report.revoked > 0 {
        println!(
            "{} keys imported before are revoked now (the file's revoked_at)",
            report.revoked
        );
    }
    if report.imported == 0 && report.revoked == 0 && report.bad_count == 0 {
        println!("nothing changed: every key was imported before");
    }
    for bad in &report.bad {
        println!("line {}: {}", bad.line, bad.reason);
    }
    if report.bad_count > report.bad.len() as u64 {
        println!(
            "… and {} more bad rows",
            report.bad_count - report.bad.len() as u64
        );
    }
    if report.bad_count > 0 {
        anyhow::bail!(
            "{} rows refused; their batches ({} good rows) were not written: fix them and run the import again",
            report.bad_count,
            report.not_written
        );
    }
    Ok(())
}
