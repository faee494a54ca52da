//! Charts as SVG drawn on the server, for pages that work without JavaScript: bars whose
//! geometry is computed here and drawn by the templates, each bar carrying its numbers in an SVG
//! `<title>` (read by screen readers and by tests). Colours come from the stylesheet by class
//! (`code-VALID`, ...): the Content-Security-Policy allows no inline style.
//!
//! Our own code, not a charting crate's: the SVG backends we looked at (plotters') write no
//! per-element `<title>`, which is what makes a chart readable without sight.

use std::collections::BTreeMap;

use keyward_domain::VerifyCode;

/// Plot area, in SVG user units.
const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 160.0;

/// One drawn bar (or segment of a stacked bar).
pub struct Bar {
    pub x: String,
    pub y: String,
    pub width: String,
    pub height: String,
    /// The CSS class that colours it.
    pub class: String,
    /// What it says: e.g. `2026-11-30 VALID: 3`.
    pub title: String,
}

/// A chart: its bars and labels, ready to draw.
pub struct Chart {
    pub width: f64,
    pub height: f64,
    pub bars: Vec<Bar>,
    /// The largest total a bar reaches (the scale's top).
    pub max: u64,
    /// Labels under the bars: `(x, text)`.
    pub labels: Vec<(String, String)>,
}

fn units(v: f64) -> String {
    format!("{v:.1}")
}

/// Verifications per day, one bar per day, stacked by outcome code (oldest left).
pub fn stacked_days(days: &[(time::Date, BTreeMap<VerifyCode, u64>)]) -> Chart {
    let max = days
        .iter()
        .map(|(_, codes)| codes.values().sum::<u64>())
        .max()
        .unwrap_or(0);
    let slot = WIDTH / days.len().max(1) as f64;
    let scale = if max == 0 { 0.0 } else { HEIGHT / max as f64 };
    let mut bars = Vec::new();
    let mut labels = Vec::new();
    for (i, (day, codes)) in days.iter().enumerate() {
        let x = i as f64 * slot + slot * 0.1;
        let mut top = HEIGHT;
        for (code, n) in codes {
            let h = *n as f64 * scale;
            top -= h;
            bars.push(Bar {
                x: units(x),
                y: units(top),
                width: units(slot * 0.8),
                height: units(h.max(0.5)),
                class: format!("code-{}", code.as_str()),
                title: format!("{day} {}: {n}", code.as_str()),
            });
        }
        // Every seventh day, counted back from today (which is always labelled).
        if (days.len() - 1 - i).is_multiple_of(7) {
            labels.push((units(x), day.to_string()));
        }
    }
    Chart {
        width: WIDTH,
        height: HEIGHT,
        bars,
        max,
        labels,
    }
}

/// One bar per named value (left to right as given).
pub fn bars(values: impl Iterator<Item = (String, u64)>) -> Chart {
    let values: Vec<(String, u64)> = values.collect();
    let max = values.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let slot = WIDTH / values.len().max(1) as f64;
    let scale = if max == 0 { 0.0 } else { HEIGHT / max as f64 };
    let mut chart = Chart {
        width: WIDTH,
        height: HEIGHT,
        bars: Vec::new(),
        max,
        labels: Vec::new(),
    };
    for (i, (name, n)) in values.into_iter().enumerate() {
        let x = i as f64 * slot + slot * 0.15;
        let h = n as f64 * scale;
        chart.bars.push(Bar {
            x: units(x),
            y: units(HEIGHT - h),
            width: units(slot * 0.7),
            height: units(h.max(0.5)),
            class: format!("code-{name}"),
            title: format!("{name}: {n}"),
        });
        chart.labels.push((units(x), name));
    }
    chart
}

/// A sparkline: a tiny bar per day (oldest first), for a row of a listing; each bar's `<title>`
/// says its day's count.
pub fn sparkline(per_day: &[u64]) -> Chart {
    const W: f64 = 90.0;
    const H: f64 = 18.0;
    let max = per_day.iter().copied().max().unwrap_or(0);
    let slot = W / per_day.len().max(1) as f64;
    let scale = if max == 0 { 0.0 } else { H / max as f64 };
    let days = per_day.len();
    let bars = per_day
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let h = (*n as f64 * scale).max(0.5);
            Bar {
                x: units(i as f64 * slot),
                y: units(H - h),
                width: units(slot * 0.8),
                height: units(h),
                class: "spark".into(),
                title: format!("{} days ago: {n}", days - 1 - i),
            }
        })
        .collect();
    Chart {
        width: W,
        height: H,
        bars,
        max,
        labels: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacked_bars_say_their_numbers() {
        let day = time::macros::date!(2026 - 11 - 30);
        let codes = BTreeMap::from([(VerifyCode::Valid, 3), (VerifyCode::Revoked, 1)]);
        let chart = stacked_days(&[(day, codes), (day.next_day().unwrap(), BTreeMap::new())]);
        let titles: Vec<&str> = chart.bars.iter().map(|b| b.title.as_str()).collect();
        assert_eq!(titles, ["2026-11-30 VALID: 3", "2026-11-30 REVOKED: 1"]);
        assert_eq!(chart.max, 4);
        assert_eq!(chart.bars[0].height, "120.0");
        assert_eq!(chart.bars[1].y, "0.0");
    }
}
