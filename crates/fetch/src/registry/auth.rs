//! Registry authentication: credential lookup, Basic auth, and the Bearer token dance
//! (challenge → token server → cached token).
//!
//! Where credentials go. A registry's credentials are sent (1) to the registry's own origin as
//! Basic auth when it answers with a Basic challenge, and (2) to the token server (`realm`) that
//! the registry names in a Bearer challenge. The realm often lives on another host (Docker Hub:
//! `auth.docker.io`); sending credentials there is what docker does and what the protocol
//! needs, and it is safe because the realm is named by the registry itself: challenges are only
//! read from responses that came from the registry's origin, never from a host a redirect led
//! to. The realm must be https (plain http only with `allow_http`), credentials are never
//! forwarded when the token server redirects elsewhere ([`crate::http`] strips them), and tokens
//! are cached per registry so one registry's token is never shown to another.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use url::Url;

use super::RegistryError;
use super::body::{read_capped, read_detail};
use super::challenge::{Challenge, Scheme};
use crate::credentials::{self, Credential, registry_key};
use crate::http::{HttpClient, HttpRequest};

/// Token lifetime assumed when the server states none or less (distribution's token spec).
const MIN_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Tokens are dropped this long before they expire, so one is not sent just as it lapses.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);
/// Token responses are small JSON documents.
const MAX_TOKEN_RESPONSE: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TokenKey {
    registry: String,
    realm: String,
    service: String,
    scope: String,
}

struct Token {
    value: String,
    expires: Instant,
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Credentials and tokens for every registry one client talks to.
pub(crate) struct Auth {
    http: HttpClient,
    /// Ordered (registry, credential) entries; see [`credentials::resolve`].
    credentials: Arc<Vec<(String, Credential)>>,
    /// Resolved credentials by registry key (credential helpers are slow processes).
    resolved: tokio::sync::Mutex<HashMap<String, Option<Credential>>>,
    /// The challenge each registry last answered with, so later requests authenticate up front.
    learned: Mutex<HashMap<String, Challenge>>,
    tokens: Mutex<HashMap<TokenKey, Token>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Poisoning only means another task panicked mid-insert; the maps stay consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Auth {
    pub(crate) fn new(http: HttpClient, credentials: Vec<(String, Credential)>) -> Self {
        Auth {
            http,
            credentials: Arc::new(credentials),
            resolved: tokio::sync::Mutex::new(HashMap::new()),
            learned: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The credential for `registry`, if any (running a credential helper at most once).
    pub(crate) async fn credential(
        &self,
        registry: &str,
    ) -> Result<Option<Credential>, RegistryError> {
        let key = registry_key(registry);
        let mut cache = self.resolved.lock().await;
        if let Some(c) = cache.get(&key) {
            return Ok(c.clone());
        }
        let (list, reg) = (self.credentials.clone(), registry.to_owned());
        let found = tokio::task::spawn_blocking(move || credentials::resolve(&list, &reg))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
            .map_err(|source| RegistryError::Credentials {
                registry: registry.to_owned(),
                source,
            })?;
        cache.insert(key, found.clone());
        Ok(found)
    }

    /// The `Authorization` to send up front, from what the registry asked for last time.
    pub(crate) async fn cached_authorization(
        &self,
        registry: &str,
        scope: &str,
    ) -> Result<Option<HeaderValue>, RegistryError> {
        let Some(ch) = lock(&self.learned).get(registry).cloned() else {
            return Ok(None);
        };
        match ch.scheme {
            Scheme::Basic => match self.credential(registry).await? {
                Some(Credential::Basic { username, password }) => {
                    Ok(Some(basic_header(&username, &password)))
                }
                _ => Ok(None),
            },
            Scheme::Bearer => {
                let key = token_key(registry, &ch, scope);
                let tokens = lock(&self.tokens);
                Ok(tokens
                    .get(&key)
                    .filter(|t| t.expires > Instant::now())
                    .map(|t| bearer_header(&t.value)))
            }
            Scheme::Other(_) => Ok(None),
        }
    }

    /// Answers a 401 from the registry: picks a challenge we can meet and returns a fresh
    /// `Authorization` for it (a new token for Bearer, never a cached one).
    pub(crate) async fn authorize(
        &self,
        registry: &str,
        registry_url: &Url,
        challenges: &[Challenge],
        raw: &str,
        scope: &str,
    ) -> Result<HeaderValue, RegistryError> {
        let pick = challenges
            .iter()
            .find(|c| c.scheme == Scheme::Bearer)
            .or_else(|| challenges.iter().find(|c| c.scheme == Scheme::Basic))
            .ok_or_else(|| RegistryError::UnsupportedAuth {
                registry: registry.to_owned(),
                challenge: raw.to_owned(),
            })?;
        lock(&self.learned).insert(registry.to_owned(), pick.clone());
        let cred = self.credential(registry).await?;
        if pick.scheme == Scheme::Basic {
            return match cred {
                Some(Credential::Basic { username, password }) => {
                    Ok(basic_header(&username, &password))
                }
                // resolve() never yields Helper; an identity token cannot answer Basic.
                Some(_) => Err(RegistryError::UnsupportedAuth {
                    registry: registry.to_owned(),
                    challenge: format!("{raw}, but the stored credential is an identity token"),
                }),
                None => Err(RegistryError::AuthRequired {
                    registry: registry.to_owned(),
                }),
            };
        }
        let key = token_key(registry, pick, scope);
        lock(&self.tokens).remove(&key);
        let token = self
            .fetch_token(registry, registry_url, pick, scope, cred.as_ref())
            .await?;
        let header = bearer_header(&token.value);
        lock(&self.tokens).insert(key, token);
        Ok(header)
    }

    /// The error for a registry that still says 401 after we authenticated.
    pub(crate) async fn refused(&self, registry: &str) -> RegistryError {
        match self.credential(registry).await {
            Ok(Some(_)) => RegistryError::AuthFailed {
                registry: registry.to_owned(),
            },
            Ok(None) => RegistryError::AuthRequired {
                registry: registry.to_owned(),
            },
            Err(e) => e,
        }
    }

    async fn fetch_token(
        &self,
        registry: &str,
        registry_url: &Url,
        ch: &Challenge,
        scope: &str,
        cred: Option<&Credential>,
    ) -> Result<Token, RegistryError> {
        let raw_realm = ch.param("realm").unwrap_or_default();
        let bad = |problem| RegistryError::BadRealm {
            registry: registry.to_owned(),
            realm: raw_realm.to_owned(),
            problem,
        };
        let realm = Url::parse(raw_realm).map_err(|_| bad("is not a URL"))?;
        match realm.scheme() {
            "https" => {}
            "http" if self.http.options().allow_http => {}
            "http" => {
                return Err(bad(
                    "is plain http (pass --insecure-options=http to allow it)",
                ));
            }
            _ => return Err(bad("is not an http(s) URL")),
        }
        let service = ch.param("service");
        // Ask for what the registry named and what we need (they may differ, e.g. a registry
        // that wants a broader scope); the token covers both.
        let mut scopes = vec![scope];
        if let Some(s) = ch.param("scope").filter(|s| *s != scope) {
            scopes.push(s);
        }
        let mut req = match cred {
            Some(Credential::IdentityToken(refresh)) => {
                // OAuth2 refresh-token grant, as docker does for identity tokens.
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "refresh_token")
                    .append_pair("client_id", "rkt")
                    .append_pair("refresh_token", refresh)
                    .append_pair("scope", &scopes.join(" "));
                if let Some(s) = service {
                    form.append_pair("service", s);
                }
                let mut r = HttpRequest::new(Method::POST, realm.clone());
                r.headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                );
                r.body = Some(Bytes::from(form.finish()));
                r
            }
            _ => {
                let mut url = realm.clone();
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    for s in &scopes {
                        q.append_pair("scope", s);
                    }
                    if let Some(Credential::Basic { username, .. }) = cred {
                        q.append_pair("account", username);
                    }
                }
                let mut r = HttpRequest::new(Method::GET, url);
                if let Some(Credential::Basic { username, password }) = cred {
                    r.authorization = Some(basic_header(username, password));
                }
                r
            }
        };
        req.trust_as = Some(registry_url.clone());
        tracing::debug!(%registry, realm = %realm, ?scopes, with_credentials = cred.is_some(),
            "requesting registry token");
        let resp = self.http.send(&req).await?;
        let status = resp.status();
        let timeout = self.http.options().read_timeout;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(if cred.is_some() {
                RegistryError::AuthFailed {
                    registry: registry.to_owned(),
                }
            } else {
                RegistryError::AuthRequired {
                    registry: registry.to_owned(),
                }
            });
        }
        if !status.is_success() {
            let detail = read_detail(resp, 512).await;
            return Err(RegistryError::TokenServer {
                registry: registry.to_owned(),
                realm: realm.to_string(),
                status: status.as_u16(),
                detail: String::from_utf8_lossy(&detail).trim().to_owned(),
            });
        }
        let malformed = |detail: String| RegistryError::TokenServer {
            registry: registry.to_owned(),
            realm: realm.to_string(),
            status: status.as_u16(),
            detail,
        };
        let body = read_capped(resp, MAX_TOKEN_RESPONSE, timeout, || {
            malformed("token response too large".into())
        })
        .await?;
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| malformed(format!("malformed token response: {e}")))?;
        let value = parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| malformed("the response holds no token".into()))?;
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(0)).max(MIN_TOKEN_LIFETIME);
        Ok(Token {
            value,
            expires: Instant::now() + lifetime - EXPIRY_MARGIN,
        })
    }
}

fn token_key(registry: &str, ch: &Challenge, scope: &str) -> TokenKey {
    TokenKey {
        registry: registry.to_owned(),
        realm: ch.param("realm").unwrap_or_default().to_owned(),
        service: ch.param("service").unwrap_or_default().to_owned(),
        scope: scope.to_owned(),
    }
}

fn basic_header(username: &str, password: &str) -> HeaderValue {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    sensitive(&format!("Basic {b64}"))
}

fn bearer_header(token: &str) -> HeaderValue {
    sensitive(&format!("Bearer {token}"))
}

fn sensitive(v: &str) -> HeaderValue {
    // Tokens and base64 are visible ASCII; anything else would be a server bug, and an empty
    // header then fails auth with a clear 401 rather than a panic here.
    let mut h = HeaderValue::from_str(v).unwrap_or_else(|_| HeaderValue::from_static(""));
    h.set_sensitive(true);
    h
}
