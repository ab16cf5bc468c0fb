//! Choosing one image manifest out of an index (manifest list) for a platform.
//!
//! Names are compared after normalisation, as containerd does it: `x86_64` is `amd64`,
//! `aarch64` is `arm64`, `arm64` without a variant is `arm64/v8`, `arm` without a variant is
//! `arm/v7`, and `amd64` has no variants worth telling apart (`v1` is the same as none).
//! Attestation entries (BuildKit writes provenance and SBOMs into the index with platform
//! `unknown/unknown` and a `vnd.docker.reference.type` annotation) are never chosen.

use rkt_types::Platform;
use rkt_types::oci::{Descriptor, DescriptorPlatform, Index};

/// Annotation BuildKit puts on attestation manifests inside an index.
const ANNOTATION_REFERENCE_TYPE: &str = "vnd.docker.reference.type";

/// Why no manifest could be chosen from an index.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlatformError {
    /// Entries exist, but none for the wanted platform.
    #[error(
        "the image has no variant for platform {want} (it has: {}); choose one of those with \
         --platform",
        .available.join(", ")
    )]
    NoMatch {
        /// The platform asked for.
        want: String,
        /// The platforms the index offers, as `os/arch[/variant]`.
        available: Vec<String>,
    },
    /// Nothing in the index is an image at all (empty, or only attestations).
    #[error(
        "the image index lists no runnable image manifests (it is empty or holds only attestations)"
    )]
    Empty,
}

/// Picks the entry of `idx` that serves `want`.
///
/// When `want` names no variant, the first entry whose os and architecture match is taken, in
/// index order (publishers list their preferred variant first). An entry without a platform
/// is taken only when it is the only candidate in the index, which is how single-image OCI
/// layouts are usually written.
pub fn select_manifest<'a>(
    idx: &'a Index,
    want: &Platform,
) -> Result<&'a Descriptor, PlatformError> {
    let candidates: Vec<&Descriptor> = idx
        .manifests
        .iter()
        .filter(|d| !is_attestation(d))
        .collect();
    if candidates.is_empty() {
        return Err(PlatformError::Empty);
    }
    let want_n = Normalized::from_platform(want);
    if let Some(found) = candidates.iter().find(|d| {
        d.platform
            .as_ref()
            .is_some_and(|p| want_n.accepts(&Normalized::from_descriptor(p)))
    }) {
        return Ok(found);
    }
    if let [only] = candidates.as_slice()
        && only.platform.is_none()
    {
        return Ok(only);
    }
    Err(PlatformError::NoMatch {
        want: want.to_string(),
        available: candidates
            .iter()
            .map(|d| match &d.platform {
                Some(p) => Normalized::from_descriptor(p).to_string(),
                None => format!("(unspecified: {})", d.digest.short()),
            })
            .collect(),
    })
}

/// Whether an index entry is an attestation (provenance, SBOM) rather than an image.
pub fn is_attestation(d: &Descriptor) -> bool {
    d.annotations.contains_key(ANNOTATION_REFERENCE_TYPE)
        || d.platform
            .as_ref()
            .is_some_and(|p| p.os == "unknown" && p.architecture == "unknown")
}

/// A platform with its names normalised, so equal platforms compare equal.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Normalized {
    os: String,
    arch: String,
    variant: Option<String>,
    /// Whether the variant was stated (true) or filled in as the architecture's default.
    explicit_variant: bool,
}

impl Normalized {
    fn new(os: &str, arch: &str, variant: Option<&str>) -> Self {
        let os = os.to_ascii_lowercase();
        let (arch, implied) = match arch.to_ascii_lowercase().as_str() {
            "x86_64" | "x86-64" => ("amd64".to_owned(), None),
            "aarch64" => ("arm64".to_owned(), None),
            "armhf" => ("arm".to_owned(), Some("v7")),
            "armel" => ("arm".to_owned(), Some("v6")),
            "i386" | "i486" | "i586" | "i686" => ("386".to_owned(), None),
            other => (other.to_owned(), None),
        };
        let stated = variant
            .filter(|v| !v.is_empty())
            .map(str::to_ascii_lowercase);
        let explicit_variant = stated.is_some() || implied.is_some();
        let variant = stated.or(implied.map(str::to_owned));
        let variant = match (arch.as_str(), variant.as_deref()) {
            ("amd64", Some("v1")) => None,
            ("arm64", None | Some("8") | Some("v8")) => Some("v8".to_owned()),
            ("arm", None) => Some("v7".to_owned()),
            ("arm", Some(v)) if !v.starts_with('v') => Some(format!("v{v}")),
            _ => variant,
        };
        Normalized {
            os,
            arch,
            variant,
            explicit_variant,
        }
    }

    fn from_platform(p: &Platform) -> Self {
        Self::new(&p.os, &p.architecture, p.variant.as_deref())
    }

    fn from_descriptor(p: &DescriptorPlatform) -> Self {
        Self::new(&p.os, &p.architecture, p.variant.as_deref())
    }

    /// Whether an entry with platform `have` serves a request for `self`.
    fn accepts(&self, have: &Normalized) -> bool {
        self.os == have.os
            && self.arch == have.arch
            && (!self.explicit_variant || self.variant == have.variant)
    }
}

impl std::fmt::Display for Normalized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant
            && self.explicit_variant
        {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rkt_types::Digest;
    use rkt_types::oci::MEDIA_OCI_MANIFEST;

    use super::*;

    fn entry(n: u8, os: &str, arch: &str, variant: Option<&str>) -> Descriptor {
        Descriptor {
            media_type: MEDIA_OCI_MANIFEST.into(),
            digest: Digest::sha256_of(&[n]),
            size: 100,
            urls: None,
            annotations: BTreeMap::new(),
            platform: Some(DescriptorPlatform {
                architecture: arch.into(),
                os: os.into(),
                variant: variant.map(Into::into),
                os_version: None,
            }),
        }
    }

    fn index(manifests: Vec<Descriptor>) -> Index {
        Index {
            schema_version: 2,
            media_type: None,
            manifests,
            annotations: BTreeMap::new(),
        }
    }

    fn want(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    #[test]
    fn picks_by_os_and_arch_and_variant() {
        let idx = index(vec![
            entry(1, "linux", "amd64", None),
            entry(2, "linux", "arm", Some("v6")),
            entry(3, "linux", "arm", Some("v7")),
            entry(4, "linux", "arm64", Some("v8")),
            entry(5, "windows", "amd64", None),
        ]);
        let pick = |p| select_manifest(&idx, &want(p)).unwrap().digest.clone();
        assert_eq!(pick("linux/amd64"), idx.manifests[0].digest);
        assert_eq!(pick("linux/amd64/v1"), idx.manifests[0].digest);
        assert_eq!(pick("linux/arm/v6"), idx.manifests[1].digest);
        assert_eq!(pick("linux/arm/7"), idx.manifests[2].digest);
        assert_eq!(pick("linux/arm64"), idx.manifests[3].digest);
        assert_eq!(pick("linux/aarch64"), idx.manifests[3].digest);
        assert_eq!(pick("windows/x86_64"), idx.manifests[4].digest);
    }

    #[test]
    fn arm64_without_variant_matches_v8_and_no_variant() {
        let idx = index(vec![entry(1, "linux", "arm64", None)]);
        assert!(select_manifest(&idx, &want("linux/arm64/v8")).is_ok());
        let idx = index(vec![entry(1, "linux", "arm64", Some("v8"))]);
        assert!(select_manifest(&idx, &want("linux/arm64")).is_ok());
    }

    #[test]
    fn skips_attestations_and_lists_what_exists() {
        let mut att = entry(9, "unknown", "unknown", None);
        att.annotations.insert(
            ANNOTATION_REFERENCE_TYPE.into(),
            "attestation-manifest".into(),
        );
        let mut att2 = entry(8, "linux", "s390x", None);
        att2.annotations.insert(
            ANNOTATION_REFERENCE_TYPE.into(),
            "attestation-manifest".into(),
        );
        let idx = index(vec![
            att,
            att2,
            entry(1, "linux", "arm64", None),
            entry(2, "linux", "ppc64le", None),
        ]);
        let err = select_manifest(&idx, &want("linux/s390x")).unwrap_err();
        assert_eq!(
            err,
            PlatformError::NoMatch {
                want: "linux/s390x".into(),
                available: vec!["linux/arm64".into(), "linux/ppc64le".into()],
            }
        );
        let msg = err.to_string();
        assert!(
            msg.contains("--platform") && msg.contains("linux/arm64"),
            "{msg}"
        );
    }

    #[test]
    fn only_attestations_is_empty() {
        let att = entry(9, "unknown", "unknown", None);
        assert_eq!(
            select_manifest(&index(vec![att]), &want("linux/amd64")),
            Err(PlatformError::Empty)
        );
        assert_eq!(
            select_manifest(&index(vec![]), &want("linux/amd64")),
            Err(PlatformError::Empty)
        );
    }

    #[test]
    fn a_lone_entry_without_platform_is_taken() {
        let mut e = entry(1, "linux", "amd64", None);
        e.platform = None;
        let idx = index(vec![e.clone()]);
        assert_eq!(select_manifest(&idx, &want("linux/arm64")).unwrap(), &e);
        let idx = index(vec![e, entry(2, "linux", "s390x", None)]);
        assert!(select_manifest(&idx, &want("linux/arm64")).is_err());
    }
}
