//! What can go wrong talking to a registry, phrased so the user knows what to do next.

use rkt_types::Digest;

use crate::credentials::CredentialsError;
use crate::http::HttpError;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Transport trouble: connection, TLS, plain http refused, redirects.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// Reading the response body failed midway.
    #[error("reading the response from {url} failed")]
    Body {
        /// The URL.
        url: String,
        /// The error.
        #[source]
        source: HttpError,
    },
    /// The registry name does not make a valid URL.
    #[error("cannot form a URL for registry {registry} ({url:?})")]
    BadUrl {
        /// The registry.
        registry: String,
        /// What we tried.
        url: String,
    },
    /// A manifest reference that is neither a tag nor a digest.
    #[error("{reference:?} is neither a tag nor a digest (asked for in {image})")]
    BadReference {
        /// The image.
        image: String,
        /// The reference.
        reference: String,
    },
    /// Credentials were sent and refused.
    #[error(
        "authentication failed for {registry}: check credentials in ~/.docker/config.json or \
         rkt's auth.d dockerAuth"
    )]
    AuthFailed {
        /// The registry, as the user named it.
        registry: String,
    },
    /// The registry wants credentials and we have none.
    #[error(
        "{registry} refused anonymous access (the repository may not exist, or it needs \
         credentials) and no credentials for it were found: add them to ~/.docker/config.json \
         (docker login {registry}) or to rkt's auth.d dockerAuth"
    )]
    AuthRequired {
        /// The registry.
        registry: String,
    },
    /// The registry asks for an authentication scheme we cannot answer.
    #[error("{registry} asks for authentication we do not support ({challenge})")]
    UnsupportedAuth {
        /// The registry.
        registry: String,
        /// The `WWW-Authenticate` value.
        challenge: String,
    },
    /// A token server named by the registry is unusable.
    #[error("{registry} named token server {realm:?}, which {problem}")]
    BadRealm {
        /// The registry.
        registry: String,
        /// The realm URL as given.
        realm: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The token server answered with something other than a token.
    #[error("token server {realm} for {registry} answered {status}: {detail}")]
    TokenServer {
        /// The registry.
        registry: String,
        /// The realm URL.
        realm: String,
        /// HTTP status.
        status: u16,
        /// What went wrong.
        detail: String,
    },
    /// Credentials could not be looked up.
    #[error("could not look up credentials for {registry}")]
    Credentials {
        /// The registry.
        registry: String,
        /// The error.
        #[source]
        source: CredentialsError,
    },
    /// The registry refused access (403).
    #[error(
        "{registry} denied access to {name}: check that your account may pull it \
         (credentials in ~/.docker/config.json or rkt's auth.d dockerAuth)"
    )]
    Denied {
        /// The registry.
        registry: String,
        /// The repository.
        name: String,
    },
    /// No manifest for this tag or digest.
    #[error("image {image} not found on {registry}")]
    ManifestNotFound {
        /// `repository:tag` or `repository@digest`.
        image: String,
        /// The registry.
        registry: String,
    },
    /// No blob with this digest.
    #[error("blob {digest} of {name} not found on {registry}")]
    BlobNotFound {
        /// The blob.
        digest: Digest,
        /// The repository.
        name: String,
        /// The registry.
        registry: String,
    },
    /// Any other unexpected status.
    #[error("{registry} answered {status} for {url}{}", fmt_detail(.detail))]
    Status {
        /// The registry.
        registry: String,
        /// The URL asked for.
        url: String,
        /// HTTP status.
        status: u16,
        /// The registry's error message, if it sent one.
        detail: String,
    },
    /// A document exceeded its size cap.
    #[error("{what} from {url} is larger than {limit} bytes; refusing it")]
    TooLarge {
        /// Which document.
        what: &'static str,
        /// Where from.
        url: String,
        /// The cap.
        limit: u64,
    },
    /// Content does not hash to the digest it was fetched by or announced with.
    #[error(
        "{what} from {registry} has digest {actual} but {expected} was expected: the registry or \
         something between us altered it"
    )]
    DigestMismatch {
        /// What was checked.
        what: String,
        /// The registry.
        registry: String,
        /// The digest asked for or announced.
        expected: Digest,
        /// The digest of the bytes received.
        actual: Digest,
    },
    /// The registry sent a `Docker-Content-Digest` that is not a digest, or none where needed.
    #[error("{registry} sent no usable Docker-Content-Digest for {image} ({value:?})")]
    BadDigestHeader {
        /// The registry.
        registry: String,
        /// The image.
        image: String,
        /// The header value, if any.
        value: Option<String>,
    },
    /// A blob is longer than its descriptor says.
    #[error("blob {digest} is longer than the {size} bytes its descriptor states; refusing it")]
    BlobTooLong {
        /// The blob.
        digest: Digest,
        /// Its declared size.
        size: u64,
    },
    /// A blob ended before its declared size.
    #[error("blob {digest} ended after {got} of its {size} bytes")]
    BlobTruncated {
        /// The blob.
        digest: Digest,
        /// Bytes received.
        got: u64,
        /// Its declared size.
        size: u64,
    },
}

fn fmt_detail(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}
