//! The configuration kinds, as rkt's `*.json` files spell them.

use serde::{Deserialize, Serialize};

/// Credentials of an `auth` entry, by type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "credentials", rename_all = "lowercase")]
pub enum AuthCredentials {
    /// HTTP basic auth.
    Basic {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// A bearer token (`Authorization: Bearer …`).
    Oauth {
        /// The token.
        token: String,
    },
}

impl AuthCredentials {
    /// The value of an `Authorization` header for these credentials.
    pub fn header_value(&self) -> String {
        use base64::Engine as _;
        match self {
            AuthCredentials::Basic { user, password } => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            ),
            AuthCredentials::Oauth { token } => format!("Bearer {token}"),
        }
    }

    /// A copy with every secret replaced, for display.
    pub fn redacted(&self) -> Self {
        match self {
            AuthCredentials::Basic { user, .. } => AuthCredentials::Basic {
                user: user.clone(),
                password: REDACTED.into(),
            },
            AuthCredentials::Oauth { .. } => AuthCredentials::Oauth {
                token: REDACTED.into(),
            },
        }
    }
}

/// What secrets are shown as.
pub const REDACTED: &str = "<redacted>";

/// Credentials for plain HTTP(S) fetches (ACI URLs), per domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthConfig {
    /// Host names the credentials are sent to.
    pub domains: Vec<String>,
    /// The credentials.
    #[serde(flatten)]
    pub credentials: AuthCredentials,
}

/// Credentials for a docker registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerAuthConfig {
    /// Registry hosts (`host[:port]`).
    pub registries: Vec<String>,
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
}

/// The `paths` kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PathsConfig {
    /// Data directory (`--dir`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Where stage1 images are looked up.
    #[serde(rename = "stage1-images", skip_serializing_if = "Option::is_none")]
    pub stage1_images: Option<String>,
}

/// The `stage1` kind: the default stage1 image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stage1Config {
    /// Image name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Image version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Fallback location.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}
