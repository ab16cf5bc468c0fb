//! Kubernetes-style quantities, as `--memory` and `--cpu` take them (and appc's
//! `resource/memory` / `resource/cpu` isolators).

/// Why a quantity was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{value:?} is not a valid {what}: {hint}")]
pub struct QuantityError {
    what: &'static str,
    value: String,
    hint: &'static str,
}

/// Parses a memory size: `134217728`, `128M` (10^6), `128Mi` (2^20), `1G`, `1Gi`, `512k`, ….
pub fn parse_memory(s: &str) -> Result<u64, QuantityError> {
    let err = || QuantityError {
        what: "memory size",
        value: s.to_owned(),
        hint: "use a number of bytes with an optional suffix k, M, G, T (powers of 1000) or \
               Ki, Mi, Gi, Ti (powers of 1024), e.g. 128Mi",
    };
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit {
        "" => 1,
        "k" | "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return Err(err()),
    };
    let v: f64 = num.parse().map_err(|_| err())?;
    if !(v.is_finite() && v > 0.0) {
        return Err(err());
    }
    let bytes = v * mult as f64;
    if bytes > u64::MAX as f64 {
        return Err(err());
    }
    Ok(bytes as u64)
}

/// Parses a CPU amount into millicores: `500m`, `0.5`, `2`.
pub fn parse_cpu_millis(s: &str) -> Result<u64, QuantityError> {
    let err = || QuantityError {
        what: "CPU amount",
        value: s.to_owned(),
        hint: "use cores (1, 0.5) or millicores (500m)",
    };
    let t = s.trim();
    let millis = if let Some(m) = t.strip_suffix('m') {
        m.parse::<u64>().map_err(|_| err())?
    } else {
        let v: f64 = t.parse().map_err(|_| err())?;
        if !(v.is_finite() && v > 0.0) || v > 1e9 {
            return Err(err());
        }
        (v * 1000.0).round() as u64
    };
    if millis == 0 {
        return Err(err());
    }
    Ok(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory() {
        assert_eq!(parse_memory("128Mi"), Ok(128 << 20));
        assert_eq!(parse_memory("128M"), Ok(128_000_000));
        assert_eq!(parse_memory("1.5Gi"), Ok(3 << 29));
        assert_eq!(parse_memory("4096"), Ok(4096));
        for bad in ["", "M", "-1", "12Q", "0"] {
            assert!(parse_memory(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cpu() {
        assert_eq!(parse_cpu_millis("500m"), Ok(500));
        assert_eq!(parse_cpu_millis("0.25"), Ok(250));
        assert_eq!(parse_cpu_millis("2"), Ok(2000));
        for bad in ["", "0", "0m", "x", "-1"] {
            assert!(parse_cpu_millis(bad).is_err(), "{bad}");
        }
    }
}
