//! CNI specification versions: parsing, ordering, and what each version changed for a runtime.

use std::cmp::Ordering;
use std::fmt;

/// A CNI spec version (`major.minor.patch`; a pre-release suffix is ignored for ordering, as no
/// released spec has one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SpecVersion(pub u32, pub u32, pub u32);

impl SpecVersion {
    /// The newest spec whose results this crate reads.
    pub const NEWEST: SpecVersion = SpecVersion(1, 1, 0);
    /// Chaining (`plugins` lists, `prevResult`) and the rich result type.
    pub const CHAINING: SpecVersion = SpecVersion(0, 3, 0);
    /// CHECK, and `prevResult` on DEL.
    pub const CHECK: SpecVersion = SpecVersion(0, 4, 0);

    /// Parses `1.0.0`, `0.3.1`, `0.4` (missing parts are 0).
    pub fn parse(s: &str) -> Option<SpecVersion> {
        let core = s.split(['-', '+']).next()?;
        let mut parts = core.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().map_or(Some(0), |p| p.parse().ok())?;
        let patch = parts.next().map_or(Some(0), |p| p.parse().ok())?;
        if parts.next().is_some() {
            return None;
        }
        Some(SpecVersion(major, minor, patch))
    }
}

impl Ord for SpecVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.0, self.1, self.2).cmp(&(other.0, other.1, other.2))
    }
}

impl PartialOrd for SpecVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for SpecVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// Whether `v` (a version string from a config) is at least `min`. Unparseable versions were
/// refused when the config was loaded, so they count as old here.
pub(crate) fn at_least(v: &str, min: SpecVersion) -> bool {
    SpecVersion::parse(v).is_some_and(|v| v >= min)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        assert_eq!(SpecVersion::parse("1.0.0"), Some(SpecVersion(1, 0, 0)));
        assert_eq!(SpecVersion::parse("0.4"), Some(SpecVersion(0, 4, 0)));
        assert_eq!(SpecVersion::parse("1.1.0-rc1"), Some(SpecVersion(1, 1, 0)));
        assert_eq!(SpecVersion::parse("x"), None);
        assert_eq!(SpecVersion::parse("1.2.3.4"), None);
        assert!(SpecVersion(0, 10, 0) > SpecVersion(0, 4, 0));
        assert!(at_least("0.4.0", SpecVersion::CHECK));
        assert!(!at_least("0.3.1", SpecVersion::CHECK));
    }
}
