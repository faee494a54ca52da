//! `keyward migrate --from URL --to URL`: a whole installation into an empty database, through
//! `keyward_store::copy`, with a progress bar on a terminal and the rows of every table on both
//! sides at the end.

use std::time::Instant;

use anyhow::Context;
use keyward_store::Store;

/// Copies `source` into `target` (empty) and prints the comparison; an error when any table's
/// counts differ.
pub async fn migrate(source: &dyn Store, target: &dyn Store) -> anyhow::Result<()> {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg}  {elapsed}")
            .context("progress template")?,
    );
    let started = Instant::now();
    let mut last_table = String::new();
    let mut progress = |table: &str, rows: u64| {
        if table != last_table {
            last_table = table.to_owned();
        }
        let rate = rows as f64 / started.elapsed().as_secs_f64().max(1e-3);
        bar.set_message(format!("{table}: {rows} rows ({rate:.0} rows/s overall)"));
        bar.tick();
    };
    let counts = keyward_store::copy::copy_installation(source, target, &mut progress)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let total: u64 = counts.iter().map(|c| c.target).sum();
    let rows = counts
        .iter()
        .map(|c| {
            vec![
                c.table.to_owned(),
                c.source.to_string(),
                c.target.to_string(),
                if c.source == c.target {
                    "ok"
                } else {
                    "DIFFERS"
                }
                .to_owned(),
            ]
        })
        .collect();
    crate::commands::table(&["table", "source rows", "target rows", ""], rows);
    println!(
        "copied {total} rows in {secs:.1} s ({:.0} rows/s)",
        total as f64 / secs.max(1e-3)
    );
    let differ: Vec<&str> = counts
        .iter()
        .filter(|c| c.source != c.target)
        .map(|c| c.table)
        .collect();
    if !differ.is_empty() {
        anyhow::bail!(
            "the counts differ in {}: was the source written to meanwhile?",
            differ.join(", ")
        );
    }
    Ok(())
}
