//! rkt-style output: aligned columns with an upper-case legend, human times and sizes.

use std::time::{Duration, SystemTime};

/// Prints rows as columns separated by at least two spaces, with `legend` first unless
/// `no_legend`.
pub fn print(legend: &[&str], rows: &[Vec<String>], no_legend: bool) {
    let mut widths: Vec<usize> = legend.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            s.push_str(c);
            if i < last {
                let pad = widths[i].saturating_sub(c.chars().count()) + 2;
                s.extend(std::iter::repeat_n(' ', pad));
            }
        }
        println!("{}", s.trim_end());
    };
    if !no_legend {
        line(legend.to_vec());
    }
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

/// `3 minutes ago`, or an RFC 3339 timestamp when `full`.
pub fn time(t: SystemTime, full: bool) -> String {
    if full {
        return humantime::format_rfc3339_seconds(t).to_string();
    }
    let ago = SystemTime::now()
        .duration_since(t)
        .unwrap_or(Duration::ZERO);
    let s = ago.as_secs();
    let (n, unit) = match s {
        0..60 => return "just now".to_owned(),
        60..3600 => (s / 60, "minute"),
        3600..86400 => (s / 3600, "hour"),
        86400..2_592_000 => (s / 86400, "day"),
        2_592_000..31_536_000 => (s / 2_592_000, "month"),
        _ => (s / 31_536_000, "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// `12.3 MiB`, or the exact byte count when `full`.
pub fn size(bytes: u64, full: bool) -> String {
    if full {
        return bytes.to_string();
    }
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(size(512, false), "512 B");
        assert_eq!(size(1536, false), "1.5 KiB");
        assert_eq!(size(1536, true), "1536");
        let t = SystemTime::now() - Duration::from_secs(7200);
        assert_eq!(time(t, false), "2 hours ago");
        assert!(time(t, true).ends_with('Z'));
    }
}
