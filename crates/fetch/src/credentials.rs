//! Where registry credentials come from: docker's `config.json` (`auths`, `credHelpers`,
//! `credsStore`) and whatever the caller passes in (rkt's own `dockerAuth` configuration).
//!
//! Credentials are plain data: an ordered list of (registry, [`Credential`]). Entries from
//! docker's credential helpers are [`Credential::Helper`] and are only run by [`resolve`], when
//! a registry actually asks for authentication, so a pull of a public image never starts one.
//!
//! Registry names are compared in a normal form ([`registry_key`]): no scheme, no path,
//! lowercase, and every spelling of Docker Hub (`https://index.docker.io/v1/`,
//! `registry-1.docker.io`, …) folded to `docker.io`, which is what [`rkt_types::DockerRef`] uses.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;

/// How long a `docker-credential-*` helper may take before it is killed. Helpers that pop up a
/// GUI prompt would otherwise hang a fetch forever.
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// The key docker stores Docker Hub credentials under.
const DOCKER_HUB_LOGIN_KEY: &str = "https://index.docker.io/v1/";

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A user name and password, sent as HTTP Basic auth to the registry or its token server.
    Basic {
        /// The user name.
        username: String,
        /// The password (or a personal access token used as one).
        password: String,
    },
    /// An OAuth2 refresh token (docker's `identitytoken`), exchanged at the token server.
    IdentityToken(String),
    /// Ask this docker credential helper (`docker-credential-*`) when the registry wants
    /// credentials; see [`resolve`].
    Helper {
        /// The helper program.
        program: PathBuf,
    },
}

/// The registry key that matches every registry (docker's `credsStore`).
pub const ANY_REGISTRY: &str = "*";

impl fmt::Debug for Credential {
    // Secrets never reach logs, even at debug level.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Credential::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
            Credential::Helper { program } => {
                f.debug_struct("Helper").field("program", program).finish()
            }
        }
    }
}

/// Why docker credentials could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The config file exists but could not be read.
    #[error("could not read docker config {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid JSON of the expected shape.
    #[error("malformed docker config {path}: fix it, or point DOCKER_CONFIG elsewhere")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// An `auth` field is not base64 of `user:password`.
    #[error(
        "the \"auth\" entry for {registry} in {path} is not base64 of user:password; \
         run `docker login {registry}` again or fix the file"
    )]
    BadAuthField {
        /// The registry key.
        registry: String,
        /// The file.
        path: PathBuf,
    },
    /// A credential helper could not be run.
    #[error("could not run credential helper {helper}")]
    HelperSpawn {
        /// The helper binary.
        helper: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A credential helper failed.
    #[error("credential helper {helper} failed for {registry}: {message}")]
    HelperFailed {
        /// The helper binary.
        helper: PathBuf,
        /// The registry asked for.
        registry: String,
        /// What the helper printed.
        message: String,
    },
    /// A credential helper printed something that is not its JSON answer.
    #[error("credential helper {helper} gave a malformed answer for {registry}")]
    HelperOutput {
        /// The helper binary.
        helper: PathBuf,
        /// The registry asked for.
        registry: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

/// The normal form of a registry name, used to match credentials to registries.
///
/// `https://index.docker.io/v1/` → `docker.io`; `http://Host:5000/v2/` → `host:5000`.
pub fn registry_key(name: &str) -> String {
    let s = name.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or(s).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            rkt_types::reference::DOCKER_HUB.to_owned()
        }
        _ => host,
    }
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    auths: BTreeMap<String, RawAuth>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Deserialize)]
struct RawAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// What a credential helper prints for `get`.
#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// Credentials from docker's `config.json` as an ordered list: every `credHelpers` entry whose
/// helper is installed, then `credsStore` (under [`ANY_REGISTRY`]) if installed, then `auths`.
/// Helpers are not run here, only when [`resolve`] needs them.
///
/// `path` defaults to [`docker_config_path`]. A missing file is no credentials: most hosts that
/// run rkt have never run `docker login`.
pub fn credentials_from_docker_config(
    path: Option<&Path>,
) -> Result<Vec<(String, Credential)>, CredentialsError> {
    let Some(path) = path.map(Path::to_path_buf).or_else(docker_config_path) else {
        return Ok(Vec::new());
    };
    match std::fs::read(&path) {
        Ok(bytes) => parse_docker_config(&bytes, &path, std::env::var_os("PATH").as_deref()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(CredentialsError::Read { path, source }),
    }
}

/// Where docker keeps its config: `$DOCKER_CONFIG/config.json`, else
/// `$HOME/.docker/config.json`. `None` when neither variable is set.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

/// Parses a docker `config.json` (see [`credentials_from_docker_config`]); helpers are looked
/// for in `helper_search` (a `PATH`-style list). `path` is only used in messages.
pub fn parse_docker_config(
    bytes: &[u8],
    path: &Path,
    helper_search: Option<&OsStr>,
) -> Result<Vec<(String, Credential)>, CredentialsError> {
    let raw: RawConfig =
        serde_json::from_slice(bytes).map_err(|source| CredentialsError::Parse {
            path: path.to_owned(),
            source,
        })?;
    let mut out = Vec::new();
    let helper = |name: &str| {
        let binary = format!("docker-credential-{name}");
        let found = find_executable(&binary, helper_search);
        if found.is_none() {
            tracing::debug!(%binary, config = %path.display(),
                "credential helper named in docker config is not installed; ignoring it");
        }
        found.map(|program| Credential::Helper { program })
    };
    for (registry, name) in &raw.cred_helpers {
        if let Some(c) = helper(name) {
            out.push((registry_key(registry), c));
        }
    }
    if let Some(c) = raw.creds_store.as_deref().and_then(helper) {
        out.push((ANY_REGISTRY.to_owned(), c));
    }
    for (registry, a) in raw.auths {
        let cred = if let Some(t) = a.identitytoken.filter(|t| !t.is_empty()) {
            Credential::IdentityToken(t)
        } else if let Some(b64) = a.auth.filter(|s| !s.is_empty()) {
            decode_auth_field(&b64).ok_or_else(|| CredentialsError::BadAuthField {
                registry: registry.clone(),
                path: path.to_owned(),
            })?
        } else if let (Some(username), Some(password)) = (a.username, a.password) {
            Credential::Basic { username, password }
        } else {
            // `{}` placeholders are what docker leaves when a credsStore holds the secret.
            continue;
        };
        out.push((registry_key(&registry), cred));
    }
    Ok(out)
}

/// The credential for `registry` from an ordered list of (registry, credential) entries: the
/// first entry whose key matches (by [`registry_key`], or [`ANY_REGISTRY`]) and yields one.
/// Helpers are run here (a process: call from a blocking context); a helper that answers "not
/// found" falls through to later entries. Never returns [`Credential::Helper`].
pub fn resolve(
    list: &[(String, Credential)],
    registry: &str,
) -> Result<Option<Credential>, CredentialsError> {
    let key = registry_key(registry);
    for (k, cred) in list {
        if *k != ANY_REGISTRY && registry_key(k) != key {
            continue;
        }
        match cred {
            Credential::Helper { program } => {
                // docker stores Hub logins under the v1 URL, everything else under host[:port].
                let server = if key == rkt_types::reference::DOCKER_HUB {
                    DOCKER_HUB_LOGIN_KEY
                } else {
                    key.as_str()
                };
                if let Some(c) = run_helper(program, server)? {
                    return Ok(Some(c));
                }
            }
            c => return Ok(Some(c.clone())),
        }
    }
    Ok(None)
}

fn decode_auth_field(b64: &str) -> Option<Credential> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (username, password) = text.split_once(':')?;
    Some(Credential::Basic {
        username: username.to_owned(),
        password: password.to_owned(),
    })
}

fn find_executable(name: &str, search: Option<&OsStr>) -> Option<PathBuf> {
    std::env::split_paths(search?)
        .filter(|d| !d.as_os_str().is_empty())
        .map(|d| d.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Runs `helper get` with `server` on stdin, per docker's credential-helper protocol.
fn run_helper(helper: &Path, server: &str) -> Result<Option<Credential>, CredentialsError> {
    let spawn_err = |source| CredentialsError::HelperSpawn {
        helper: helper.to_owned(),
        source,
    };
    let mut child = Command::new(helper)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading gives EPIPE here; its exit status says more.
        let _ = stdin.write_all(server.as_bytes());
    }
    let deadline = Instant::now() + HELPER_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(spawn_err)? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(CredentialsError::HelperFailed {
                helper: helper.to_owned(),
                registry: server.to_owned(),
                message: format!("no answer within {}s", HELPER_TIMEOUT.as_secs()),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // Answers are a few hundred bytes; the pipe buffer holds them until we read after exit.
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    if !status.success() {
        let message = format!("{} {}", out.trim(), err.trim()).trim().to_owned();
        if message
            .to_ascii_lowercase()
            .contains("credentials not found")
        {
            return Ok(None);
        }
        return Err(CredentialsError::HelperFailed {
            helper: helper.to_owned(),
            registry: server.to_owned(),
            message: if message.is_empty() {
                status.to_string()
            } else {
                message
            },
        });
    }
    let answer: HelperAnswer =
        serde_json::from_str(&out).map_err(|source| CredentialsError::HelperOutput {
            helper: helper.to_owned(),
            registry: server.to_owned(),
            source,
        })?;
    Ok(Some(if answer.username == "<token>" {
        Credential::IdentityToken(answer.secret)
    } else {
        Credential::Basic {
            username: answer.username,
            password: answer.secret,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(u: &str, p: &str) -> Credential {
        Credential::Basic {
            username: u.into(),
            password: p.into(),
        }
    }

    fn parse(json: &[u8], search: Option<&Path>) -> Vec<(String, Credential)> {
        parse_docker_config(json, Path::new("c.json"), search.map(Path::as_os_str)).unwrap()
    }

    #[test]
    fn registry_keys_are_normalised() {
        assert_eq!(registry_key("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(registry_key("registry-1.docker.io"), "docker.io");
        assert_eq!(registry_key("docker.io"), "docker.io");
        assert_eq!(
            registry_key("http://Host.example:5000/v2/"),
            "host.example:5000"
        );
        assert_eq!(registry_key("127.0.0.1:5000"), "127.0.0.1:5000");
    }

    #[test]
    fn parses_auth_and_username_password_entries() {
        let list = parse(
            br#"{
            "auths": {
                "https://index.docker.io/v1/": {"auth": "aHViOnNlY3JldDpwYXJ0"},
                "127.0.0.1:5000": {"username": "alice", "password": "pw"},
                "quay.io": {"identitytoken": "refresh-me"},
                "stored.example": {}
            }
        }"#,
            None,
        );
        // Passwords may contain ':'; only the first one separates the user.
        assert_eq!(
            resolve(&list, "docker.io").unwrap(),
            Some(basic("hub", "secret:part"))
        );
        assert_eq!(
            resolve(&list, "http://127.0.0.1:5000").unwrap(),
            Some(basic("alice", "pw"))
        );
        assert_eq!(
            resolve(&list, "quay.io").unwrap(),
            Some(Credential::IdentityToken("refresh-me".into()))
        );
        assert_eq!(resolve(&list, "stored.example").unwrap(), None);
        assert_eq!(resolve(&list, "other.example").unwrap(), None);
        assert!(!format!("{:?}", basic("u", "hunter2")).contains("hunter2"));
    }

    #[test]
    fn explicit_entries_come_first() {
        let mut list = vec![("127.0.0.1:5000".to_owned(), basic("rkt", "a"))];
        list.extend(parse(
            br#"{"auths": {"127.0.0.1:5000": {"username": "docker", "password": "b"}}}"#,
            None,
        ));
        assert_eq!(
            resolve(&list, "127.0.0.1:5000").unwrap(),
            Some(basic("rkt", "a"))
        );
    }

    #[test]
    fn rejects_malformed_files() {
        let bad = br#"{"auths": {"x.io": {"auth": "not base64!"}}}"#;
        assert!(matches!(
            parse_docker_config(bad, Path::new("c.json"), None),
            Err(CredentialsError::BadAuthField { .. })
        ));
        assert!(matches!(
            parse_docker_config(b"{", Path::new("c.json"), None),
            Err(CredentialsError::Parse { .. })
        ));
        let missing =
            credentials_from_docker_config(Some(Path::new("/nonexistent/rkt/config.json")));
        assert!(missing.unwrap().is_empty());
    }

    /// Writes a real helper program that answers for one server and says "not found" otherwise.
    fn write_helper(dir: &Path, name: &str, server: &str, user: &str, secret: &str) {
        let script = format!(
            "#!/bin/sh\n\
             [ \"$1\" = get ] || exit 2\n\
             read -r server\n\
             if [ \"$server\" = '{server}' ]; then\n\
               printf '{{\"ServerURL\":\"%s\",\"Username\":\"{user}\",\"Secret\":\"{secret}\"}}' \"$server\"\n\
             else\n\
               echo 'credentials not found in native keychain'; exit 1\n\
             fi\n"
        );
        let path = dir.join(format!("docker-credential-{name}"));
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn cred_helpers_and_store_run_real_programs() {
        let bin = tempfile::tempdir().unwrap();
        write_helper(bin.path(), "rkttest", "127.0.0.1:5000", "helped", "s3cret");
        write_helper(
            bin.path(),
            "rktstore",
            DOCKER_HUB_LOGIN_KEY,
            "<token>",
            "idtok",
        );
        let list = parse(
            br#"{
            "auths": {"127.0.0.1:5000": {"username": "fallback", "password": "x"},
                      "localhost:6000": {"username": "plain", "password": "y"}},
            "credHelpers": {"127.0.0.1:5000": "rkttest", "absent.example": "nosuchhelper"},
            "credsStore": "rktstore"
        }"#,
            Some(bin.path()),
        );
        // The missing helper is not in the list at all.
        assert!(!list.iter().any(|(k, _)| k == "absent.example"));
        assert_eq!(
            resolve(&list, "127.0.0.1:5000").unwrap(),
            Some(basic("helped", "s3cret"))
        );
        // The store answers for Hub under docker's v1 key; "<token>" means an identity token.
        assert_eq!(
            resolve(&list, "docker.io").unwrap(),
            Some(Credential::IdentityToken("idtok".into()))
        );
        // The store says "not found": fall back to auths.
        assert_eq!(
            resolve(&list, "localhost:6000").unwrap(),
            Some(basic("plain", "y"))
        );
        assert_eq!(resolve(&list, "absent.example").unwrap(), None);
    }

    #[test]
    fn failing_helper_is_reported() {
        let bin = tempfile::tempdir().unwrap();
        let path = bin.path().join("docker-credential-broken");
        std::fs::write(&path, "#!/bin/sh\necho 'keyring locked' >&2\nexit 3\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let list = parse(br#"{"credsStore": "broken"}"#, Some(bin.path()));
        let err = resolve(&list, "x.example").unwrap_err();
        assert!(err.to_string().contains("keyring locked"), "{err}");
    }
}
