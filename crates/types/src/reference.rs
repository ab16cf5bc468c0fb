//! Image references as the user types them: registry references and local sources.

use std::fmt;
use std::path::PathBuf;

use crate::digest::Digest;

/// Docker Hub's canonical registry name.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that actually serves Docker Hub's registry API.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// Why an image reference could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    /// The reference is empty.
    #[error("empty image reference")]
    Empty,
    /// A repository path component is not valid.
    #[error(
        "invalid repository name {0:?}: components must be lowercase letters, digits and \
         separators (., _, __, -), separated by /"
    )]
    BadRepository(String),
    /// The tag is not valid.
    #[error(
        "invalid tag {0:?}: a tag is 1-128 characters of [A-Za-z0-9_.-] not starting with . or -"
    )]
    BadTag(String),
    /// The digest part is not valid.
    #[error("invalid digest in reference {0:?}")]
    BadDigest(String, #[source] crate::digest::DigestError),
    /// The registry host is not valid.
    #[error("invalid registry host {0:?}")]
    BadRegistry(String),
    /// A local source without a path.
    #[error("{0}: a path is required")]
    MissingPath(&'static str),
}

/// A reference to an image in a Docker/OCI distribution registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DockerRef {
    /// Registry host, with port if any (`docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// Repository path (`library/busybox`).
    pub repository: String,
    /// Tag, if given.
    pub tag: Option<String>,
    /// Digest, if given; wins over the tag when both are present.
    pub digest: Option<Digest>,
}

impl DockerRef {
    /// Parses `[HOST[:PORT]/]NAME[:TAG][@DIGEST]`, normalising Docker Hub short names
    /// (`busybox` → `docker.io/library/busybox`).
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (
                r,
                Some(
                    d.parse::<Digest>()
                        .map_err(|e| ReferenceError::BadDigest(s.to_owned(), e))?,
                ),
            ),
            None => (s, None),
        };
        // A tag follows the last ':' only if no '/' comes after it (else it is a port).
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(rest[i + 1..].to_owned())),
            _ => (rest, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_owned(), path.to_owned())
            }
            Some(_) => (DOCKER_HUB.to_owned(), name.to_owned()),
            None => (DOCKER_HUB.to_owned(), format!("library/{name}")),
        };
        let (registry, repository) =
            if registry == "index.docker.io" || registry == "registry-1.docker.io" {
                let repository = if repository.contains('/') {
                    repository
                } else {
                    format!("library/{repository}")
                };
                (DOCKER_HUB.to_owned(), repository)
            } else {
                (registry, repository)
            };
        validate_registry(&registry)?;
        validate_repository(&repository)?;
        if let Some(t) = &tag {
            validate_tag(t)?;
        }
        Ok(DockerRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The host to send registry API requests to.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// What to ask the registry for: the digest if given, else the tag, else `latest`.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_owned(),
        }
    }

    /// `registry/repository`, the name images are listed under.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The tag to record for this reference (`latest` when none was given).
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }
}

impl fmt::Display for DockerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn validate_registry(r: &str) -> Result<(), ReferenceError> {
    let ok = !r.is_empty()
        && r.len() <= 255
        && r.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        && !r.starts_with(['-', '.', ':']);
    if ok {
        Ok(())
    } else {
        Err(ReferenceError::BadRegistry(r.to_owned()))
    }
}

fn validate_repository(repo: &str) -> Result<(), ReferenceError> {
    let bad = || ReferenceError::BadRepository(repo.to_owned());
    if repo.is_empty() || repo.len() > 255 {
        return Err(bad());
    }
    for comp in repo.split('/') {
        // [a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)*
        let b = comp.as_bytes();
        if b.is_empty() || !is_alnum_lower(b[0]) || !is_alnum_lower(b[b.len() - 1]) {
            return Err(bad());
        }
        let mut i = 0;
        while i < b.len() {
            if is_alnum_lower(b[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < b.len() && !is_alnum_lower(b[i]) {
                i += 1;
            }
            let sep = &comp[start..i];
            let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
            if !ok {
                return Err(bad());
            }
        }
    }
    Ok(())
}

fn is_alnum_lower(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn validate_tag(t: &str) -> Result<(), ReferenceError> {
    let ok = !t.is_empty()
        && t.len() <= 128
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && !t.starts_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err(ReferenceError::BadTag(t.to_owned()))
    }
}

/// Where an image comes from, as parsed from a command-line argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// `docker://REF` or `oci://REF`: a distribution (v2) registry.
    Registry(DockerRef),
    /// `oci:DIR[:REF]`: an OCI image layout directory; REF selects by
    /// `org.opencontainers.image.ref.name`.
    OciLayout {
        /// The layout directory.
        path: PathBuf,
        /// The ref name to select, if the index has several manifests.
        reference: Option<String>,
    },
    /// `oci-archive:FILE[:REF]`: a tar of an OCI image layout.
    OciArchive {
        /// The archive.
        path: PathBuf,
        /// The ref name to select.
        reference: Option<String>,
    },
    /// `docker-archive:FILE[:NAME:TAG]`: a `docker save` archive.
    DockerArchive {
        /// The archive.
        path: PathBuf,
        /// The `RepoTags` entry to select when the archive holds several images.
        reference: Option<String>,
    },
    /// `http(s)://…`: an ACI served over HTTP.
    Url(String),
    /// A local file or directory whose format is detected from its content (`file://` or a path).
    Path(PathBuf),
    /// Anything else: an image id (or prefix) or `name[:tag]` already in the store, or a file in
    /// the current directory of that name.
    Name(String),
}

impl ImageSource {
    /// Parses a command-line image argument.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if let Some(r) = s
            .strip_prefix("docker://")
            .or_else(|| s.strip_prefix("oci://"))
        {
            return Ok(ImageSource::Registry(DockerRef::parse(r)?));
        }
        if s.starts_with("http://") || s.starts_with("https://") {
            return Ok(ImageSource::Url(s.to_owned()));
        }
        if let Some(p) = s.strip_prefix("file://") {
            if p.is_empty() {
                return Err(ReferenceError::MissingPath("file://"));
            }
            return Ok(ImageSource::Path(PathBuf::from(p)));
        }
        for (prefix, kind) in [("oci:", 0), ("oci-archive:", 1), ("docker-archive:", 2)] {
            if let Some(rest) = s.strip_prefix(prefix) {
                let (path, reference) = split_path_ref(rest);
                if path.is_empty() {
                    return Err(ReferenceError::MissingPath(prefix));
                }
                let path = PathBuf::from(path);
                return Ok(match kind {
                    0 => ImageSource::OciLayout { path, reference },
                    1 => ImageSource::OciArchive { path, reference },
                    _ => ImageSource::DockerArchive { path, reference },
                });
            }
        }
        if s.starts_with('/') || s.starts_with("./") || s.starts_with("../") {
            return Ok(ImageSource::Path(PathBuf::from(s)));
        }
        Ok(ImageSource::Name(s.to_owned()))
    }
}

/// Splits `PATH[:REF]` where REF may itself contain ':' (docker-archive `name:tag`).
///
/// The path ends at the first ':' (paths with ':' cannot be given this way; use a plain path
/// and format detection instead).
fn split_path_ref(s: &str) -> (&str, Option<String>) {
    match s.split_once(':') {
        Some((p, r)) if !r.is_empty() => (p, Some(r.to_owned())),
        Some((p, _)) => (p, None),
        None => (s, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> DockerRef {
        DockerRef::parse(s).unwrap()
    }

    #[test]
    fn docker_hub_short_names() {
        let b = r("busybox");
        assert_eq!(b.registry, "docker.io");
        assert_eq!(b.repository, "library/busybox");
        assert_eq!(b.manifest_reference(), "latest");
        assert_eq!(b.api_host(), "registry-1.docker.io");
        assert_eq!(r("user/app:1.0").repository, "user/app");
        assert_eq!(r("index.docker.io/busybox").repository, "library/busybox");
    }

    #[test]
    fn hosts_ports_tags_digests() {
        let x = r("127.0.0.1:5000/a/b:v1");
        assert_eq!(x.registry, "127.0.0.1:5000");
        assert_eq!(x.repository, "a/b");
        assert_eq!(x.tag.as_deref(), Some("v1"));
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let y = r(&format!("localhost:5000/a@{d}"));
        assert_eq!(y.manifest_reference(), d);
        assert_eq!(y.tag, None);
        assert_eq!(r("localhost/a").registry, "localhost");
        assert_eq!(r("quay.io/x/y").to_string(), "quay.io/x/y");
    }

    #[test]
    fn rejects_bad_references() {
        assert!(DockerRef::parse("").is_err());
        assert!(DockerRef::parse("UPPER/case").is_err());
        assert!(DockerRef::parse("a/../b").is_err());
        assert!(DockerRef::parse("a:-bad").is_err());
        assert!(DockerRef::parse("a@sha256:zz").is_err());
        assert!(DockerRef::parse("h:5000/a//b").is_err());
    }

    #[test]
    fn sources() {
        assert!(matches!(
            ImageSource::parse("docker://busybox").unwrap(),
            ImageSource::Registry(_)
        ));
        assert_eq!(
            ImageSource::parse("oci:/tmp/l:v1").unwrap(),
            ImageSource::OciLayout {
                path: "/tmp/l".into(),
                reference: Some("v1".into())
            }
        );
        assert_eq!(
            ImageSource::parse("docker-archive:/a.tar:busybox:latest").unwrap(),
            ImageSource::DockerArchive {
                path: "/a.tar".into(),
                reference: Some("busybox:latest".into())
            }
        );
        assert_eq!(
            ImageSource::parse("./x.aci").unwrap(),
            ImageSource::Path("./x.aci".into())
        );
        assert_eq!(
            ImageSource::parse("busybox:1").unwrap(),
            ImageSource::Name("busybox:1".into())
        );
        assert!(ImageSource::parse("oci:").is_err());
    }
}
