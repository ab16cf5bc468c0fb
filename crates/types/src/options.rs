//! Options shared by several verbs: `--insecure-options` and `--pull-policy`.

use std::fmt;
use std::str::FromStr;

/// What `--insecure-options` switched off. Everything is secure by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InsecureOptions {
    /// Skip image signature verification.
    pub image: bool,
    /// Accept any TLS certificate.
    pub tls: bool,
    /// Allow plain HTTP.
    pub http: bool,
    /// Fetch keys insecurely.
    pub pubkey: bool,
    /// Grant every capability.
    pub capabilities: bool,
    /// Drop masked/read-only paths and device restrictions.
    pub paths: bool,
    /// Run without a seccomp filter.
    pub seccomp: bool,
}

/// A value of `--insecure-options` we do not know.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "unknown --insecure-options value {0:?}: use a comma list of none, image, tls, http, pubkey, \
     capabilities, paths, seccomp, all-fetch, all-run, all"
)]
pub struct UnknownInsecureOption(pub String);

impl FromStr for InsecureOptions {
    type Err = UnknownInsecureOption;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut o = InsecureOptions::default();
        for item in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
            match item {
                "none" | "ondisk" => {}
                "image" => o.image = true,
                "tls" => o.tls = true,
                "http" => o.http = true,
                "pubkey" => o.pubkey = true,
                "capabilities" => o.capabilities = true,
                "paths" => o.paths = true,
                "seccomp" => o.seccomp = true,
                "all-fetch" => {
                    o.image = true;
                    o.tls = true;
                    o.http = true;
                    o.pubkey = true;
                }
                "all-run" => {
                    o.capabilities = true;
                    o.paths = true;
                    o.seccomp = true;
                }
                "all" => {
                    o = InsecureOptions {
                        image: true,
                        tls: true,
                        http: true,
                        pubkey: true,
                        capabilities: true,
                        paths: true,
                        seccomp: true,
                    }
                }
                other => return Err(UnknownInsecureOption(other.to_owned())),
            }
        }
        Ok(o)
    }
}

impl fmt::Display for InsecureOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (self.image, "image"),
            (self.tls, "tls"),
            (self.http, "http"),
            (self.pubkey, "pubkey"),
            (self.capabilities, "capabilities"),
            (self.paths, "paths"),
            (self.seccomp, "seccomp"),
        ];
        let on: Vec<&str> = names.iter().filter(|(b, _)| *b).map(|(_, n)| *n).collect();
        if on.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&on.join(","))
        }
    }
}

/// When to contact the remote for an image that may already be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Store only; fail if missing.
    Never,
    /// Use the store; fetch only if missing.
    New,
    /// Always ask the remote; download only what changed.
    Update,
}

/// A `--pull-policy` value we do not know.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown --pull-policy {0:?}: use never, new or update")]
pub struct UnknownPullPolicy(pub String);

impl FromStr for PullPolicy {
    type Err = UnknownPullPolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "never" => Ok(PullPolicy::Never),
            "new" => Ok(PullPolicy::New),
            "update" => Ok(PullPolicy::Update),
            other => Err(UnknownPullPolicy(other.to_owned())),
        }
    }
}

impl fmt::Display for PullPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PullPolicy::Never => "never",
            PullPolicy::New => "new",
            PullPolicy::Update => "update",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_options() {
        let o: InsecureOptions = "image,http".parse().unwrap();
        assert!(o.image && o.http && !o.tls);
        assert_eq!(o.to_string(), "image,http");
        let all: InsecureOptions = "all".parse().unwrap();
        assert!(all.seccomp && all.pubkey);
        assert_eq!(
            "none".parse::<InsecureOptions>().unwrap().to_string(),
            "none"
        );
        assert!("imagee".parse::<InsecureOptions>().is_err());
        let f: InsecureOptions = "all-fetch".parse().unwrap();
        assert!(f.tls && !f.paths);
    }

    #[test]
    fn pull_policy() {
        assert_eq!("update".parse::<PullPolicy>().unwrap(), PullPolicy::Update);
        assert!("always".parse::<PullPolicy>().is_err());
    }
}
