//! Content digests (`sha256:<hex>`, `sha512:<hex>`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest as _;

/// Hash algorithm of a [`Digest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256: OCI and Docker blobs, layer diff ids, our own image ids.
    Sha256,
    /// SHA-512: appc image ids (the hash of the uncompressed ACI).
    Sha512,
}

impl Algorithm {
    /// The name used in digest strings.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the hex encoding of this algorithm's output.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// Why a string is not a digest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    /// No `algorithm:` or `algorithm-` prefix.
    #[error("{0:?} is not a digest: expected sha256:<64 hex digits> or sha512:<128 hex digits>")]
    Malformed(String),
    /// An algorithm we do not implement.
    #[error("digest {0:?} uses an unsupported algorithm (only sha256 and sha512 are supported)")]
    UnsupportedAlgorithm(String),
    /// Wrong length or a non-hex character.
    #[error("digest {0:?} has a malformed hex part: expected {1} lowercase hex digits")]
    BadHex(String, usize),
}

/// A validated content digest. Displays as `algorithm:hex` (the OCI form).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// Builds a digest from an algorithm and hex string, validating both.
    pub fn new(algorithm: Algorithm, hex: &str) -> Result<Self, DigestError> {
        let ok = hex.len() == algorithm.hex_len()
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !ok {
            return Err(DigestError::BadHex(
                format!("{}:{hex}", algorithm.name()),
                algorithm.hex_len(),
            ));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_owned(),
        })
    }

    /// SHA-256 of `data`.
    pub fn sha256_of(data: &[u8]) -> Self {
        Self::from_sha256_bytes(&sha2::Sha256::digest(data).into())
    }

    /// Wraps a finished SHA-256 output.
    pub fn from_sha256_bytes(bytes: &[u8; 32]) -> Self {
        Digest {
            algorithm: Algorithm::Sha256,
            hex: hex::encode(bytes),
        }
    }

    /// Wraps a finished SHA-512 output.
    pub fn from_sha512_bytes(bytes: &[u8; 64]) -> Self {
        Digest {
            algorithm: Algorithm::Sha512,
            hex: hex::encode(bytes),
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lowercase hex part.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// rkt's file-name-safe form, `sha256-<hex>`.
    pub fn dashed(&self) -> String {
        format!("{}-{}", self.algorithm.name(), self.hex)
    }

    /// The short form shown in tables: algorithm plus the first 12 hex digits.
    pub fn short(&self) -> String {
        format!("{}:{}", self.algorithm.name(), &self.hex[..12])
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    /// Accepts `sha256:<hex>` (OCI) and `sha256-<hex>` (rkt's on-disk and CLI form).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (algo, hex) = s
            .split_once(':')
            .or_else(|| s.split_once('-'))
            .ok_or_else(|| DigestError::Malformed(s.to_owned()))?;
        let algorithm = match algo {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            "" => return Err(DigestError::Malformed(s.to_owned())),
            other => return Err(DigestError::UnsupportedAlgorithm(other.to_owned())),
        };
        Digest::new(algorithm, hex)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Incremental hasher that produces a [`Digest`].
#[derive(Clone)]
pub enum Hasher {
    /// SHA-256 state.
    Sha256(sha2::Sha256),
    /// SHA-512 state.
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// A fresh hasher for `algorithm`.
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// Finishes and returns the digest.
    pub fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(h) => Digest::from_sha256_bytes(&h.finalize().into()),
            Hasher::Sha512(h) => Digest::from_sha512_bytes(&h.finalize().into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const E3: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_both_separators() {
        let a: Digest = format!("sha256:{E3}").parse().unwrap();
        let b: Digest = format!("sha256-{E3}").parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), format!("sha256:{E3}"));
        assert_eq!(a.dashed(), format!("sha256-{E3}"));
        assert_eq!(a, Digest::sha256_of(b""));
    }

    #[test]
    fn rejects_bad_digests() {
        assert!(matches!(
            "abc".parse::<Digest>(),
            Err(DigestError::Malformed(_))
        ));
        assert!(matches!(
            format!("md5:{E3}").parse::<Digest>(),
            Err(DigestError::UnsupportedAlgorithm(_))
        ));
        assert!(matches!(
            "sha256:abc".parse::<Digest>(),
            Err(DigestError::BadHex(..))
        ));
        let upper = E3.to_uppercase();
        assert!(format!("sha256:{upper}").parse::<Digest>().is_err());
        assert!(format!("sha256:../{}", &E3[3..]).parse::<Digest>().is_err());
    }

    #[test]
    fn hasher_matches_one_shot() {
        let mut h = Hasher::new(Algorithm::Sha256);
        h.update(b"hello ");
        h.update(b"world");
        assert_eq!(h.finish(), Digest::sha256_of(b"hello world"));
        let mut h = Hasher::new(Algorithm::Sha512);
        h.update(b"");
        assert_eq!(h.finish().hex().len(), 128);
    }
}
