//! A real distribution v2 registry (Debian's `docker-registry`) on a free loopback port.
//!
//! ```no_run
//! use rkt_tests::{Fixtures, registry::{Registry, RegistryOptions}};
//! let reg = Registry::start(RegistryOptions::token());
//! let pushed = reg.push_fixture("busybox:latest", "busybox");
//! println!("docker://{}", reg.reference("busybox:latest"));
//! assert_eq!(pushed.digest, Fixtures::get().busybox.image.manifest.digest);
//! ```
//!
//! Variants: plain HTTP, TLS (a CA generated per registry; trust [`Registry::ca_pem`]), basic
//! auth (htpasswd with bcrypt) and token auth (a token server of our own, see [`token`]).
//! Storage is a temp directory. Drop kills the process and removes the directory; the process
//! also dies with the test process (see [`crate::spawn`]).

pub mod pki;
pub mod token;

use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use rkt_types::Digest;
use tempfile::TempDir;

use crate::fixtures::{Fixtures, chain};
use crate::push::{PushError, PushedImage, Pusher};

/// The registry binary from Debian's `docker-registry` package.
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
/// Default user for basic and token auth.
pub const DEFAULT_USER: &str = "rkt";
/// Default password for basic and token auth.
pub const DEFAULT_PASSWORD: &str = "rkt-test-password";

/// How clients authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Anonymous access.
    None,
    /// HTTP basic auth against an htpasswd file.
    Basic,
    /// Bearer tokens from [`token::TokenServer`].
    Token,
}

/// How to run the registry.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Serve HTTPS with a generated CA.
    pub tls: bool,
    /// Authentication.
    pub auth: Auth,
    /// The user basic or token auth accepts.
    pub username: String,
    /// Its password.
    pub password: String,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self::plain()
    }
}

impl RegistryOptions {
    /// Plain HTTP, anonymous.
    pub fn plain() -> Self {
        RegistryOptions {
            tls: false,
            auth: Auth::None,
            username: DEFAULT_USER.into(),
            password: DEFAULT_PASSWORD.into(),
        }
    }

    /// HTTPS, anonymous.
    pub fn tls() -> Self {
        RegistryOptions {
            tls: true,
            ..Self::plain()
        }
    }

    /// HTTPS with basic auth.
    pub fn basic() -> Self {
        RegistryOptions {
            tls: true,
            auth: Auth::Basic,
            ..Self::plain()
        }
    }

    /// HTTPS with token auth.
    pub fn token() -> Self {
        RegistryOptions {
            tls: true,
            auth: Auth::Token,
            ..Self::plain()
        }
    }
}

/// Why the registry could not be started or used.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// File or process I/O.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The registry binary is missing.
    #[error("{REGISTRY_BIN} is missing: install the docker-registry package (scripts/install.sh)")]
    Missing,
    /// Certificate generation failed.
    #[error("cannot generate the test {what}")]
    Pki {
        /// Which part.
        what: &'static str,
        /// The error.
        #[source]
        source: rcgen::Error,
    },
    /// htpasswd hashing failed.
    #[error("cannot hash the test password for htpasswd")]
    Htpasswd(#[source] bcrypt::BcryptError),
    /// The process exited or never answered `/v2/`.
    #[error("docker-registry on {addr} did not come up: {why}\n--- registry log ---\n{log}")]
    NotReady {
        /// The address it was given.
        addr: SocketAddr,
        /// What was seen.
        why: String,
        /// The tail of its log.
        log: String,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> RegistryError {
    let what = what.into();
    move |source| RegistryError::Io { what, source }
}

/// A running registry.
pub struct Registry {
    child: Child,
    addr: SocketAddr,
    opts: RegistryOptions,
    pki: pki::Pki,
    token: Option<token::TokenServer>,
    log: PathBuf,
    data: PathBuf,
    // Last: removed after the process is gone.
    dir: TempDir,
}

impl Registry {
    /// Starts a registry and waits until `/v2/` answers.
    ///
    /// # Panics
    /// If it cannot start; the message includes the registry's log.
    pub fn start(opts: RegistryOptions) -> Registry {
        Registry::try_start(opts)
            .unwrap_or_else(|e| panic!("starting the test registry failed: {}", chain(&e)))
    }

    /// Starts a registry and waits until `/v2/` answers.
    pub fn try_start(opts: RegistryOptions) -> Result<Registry, RegistryError> {
        if !Path::new(REGISTRY_BIN).exists() {
            return Err(RegistryError::Missing);
        }
        // A free port can be taken between probing and binding; try a few.
        let mut last = None;
        for _ in 0..5 {
            match Registry::start_once(opts.clone()) {
                Err(RegistryError::NotReady { log, .. })
                    if log.contains("address already in use") =>
                {
                    last = Some(log);
                }
                other => return other,
            }
        }
        Err(RegistryError::NotReady {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            why: "every port tried was taken".into(),
            log: last.unwrap_or_default(),
        })
    }

    fn start_once(opts: RegistryOptions) -> Result<Registry, RegistryError> {
        let dir = tempfile::Builder::new()
            .prefix("rkt-test-registry-")
            .tempdir()
            .map_err(io_err("cannot create the registry's temp directory"))?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(io_err("cannot find a free loopback port"))?
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let pki = pki::generate(dir.path())?;
        let data = dir.path().join("data");
        fs::create_dir_all(&data).map_err(io_err("cannot create the registry storage"))?;

        let mut cfg = format!(
            "version: 0.1\n\
             log:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\n\
             storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n  \
             maintenance:\n    uploadpurging:\n      enabled: false\n\
             http:\n  addr: {addr}\n  secret: rkt-test-registry-secret\n  headers:\n    \
             X-Content-Type-Options: [nosniff]\n",
            data = data.display(),
        );
        if opts.tls {
            cfg.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                pki.server_cert.display(),
                pki.server_key.display()
            ));
        }
        let token = match opts.auth {
            Auth::None => None,
            Auth::Basic => {
                let hash = bcrypt::hash(&opts.password, 4).map_err(RegistryError::Htpasswd)?;
                let htpasswd = dir.path().join("htpasswd");
                fs::write(&htpasswd, format!("{}:{hash}\n", opts.username))
                    .map_err(io_err("cannot write htpasswd"))?;
                cfg.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: rkt-test-registry\n    path: {}\n",
                    htpasswd.display()
                ));
                None
            }
            Auth::Token => {
                let tls = if opts.tls {
                    Some(pki.rustls_server_config().map_err(|e| RegistryError::Io {
                        what: "cannot set up TLS for the token server".into(),
                        source: io::Error::other(e),
                    })?)
                } else {
                    None
                };
                let ts = token::TokenServer::start(
                    &pki.token_key_pkcs8,
                    &pki.token_cert_der,
                    &opts.username,
                    &opts.password,
                    tls,
                )
                .map_err(io_err("cannot start the token server"))?;
                cfg.push_str(&format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    \
                     rootcertbundle: {}\n",
                    ts.realm(),
                    token::SERVICE,
                    token::ISSUER,
                    pki.ca_pem.display()
                ));
                Some(ts)
            }
        };
        let config = dir.path().join("config.yml");
        fs::write(&config, &cfg).map_err(io_err("cannot write the registry config"))?;
        let log = dir.path().join("registry.log");
        let log_file = fs::File::create(&log).map_err(io_err("cannot create the registry log"))?;
        let log_err = log_file
            .try_clone()
            .map_err(io_err("cannot create the registry log"))?;

        let mut cmd = crate::spawn::tied_command(Path::new(REGISTRY_BIN));
        cmd.arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            // The registry reads REGISTRY_* variables as config overrides; keep the host's out.
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        let child =
            crate::spawn::spawn(cmd).map_err(io_err(format!("cannot run {REGISTRY_BIN}")))?;
        let mut reg = Registry {
            child,
            addr,
            opts,
            pki,
            token,
            log,
            data,
            dir,
        };
        reg.wait_ready()?;
        Ok(reg)
    }

    fn wait_ready(&mut self) -> Result<(), RegistryError> {
        let client = self.http_client()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = format!("{}/v2/", self.url());
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.not_ready(format!("it exited with {status}")));
            }
            match client.get(&url).send() {
                Ok(r) if r.status() == 200 || r.status() == 401 => return Ok(()),
                Ok(r) => {
                    return Err(self.not_ready(format!("GET /v2/ answered {}", r.status())));
                }
                Err(e) if Instant::now() > deadline => {
                    return Err(self.not_ready(format!("GET /v2/ kept failing: {}", chain(&e))));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    fn not_ready(&self, why: String) -> RegistryError {
        RegistryError::NotReady {
            addr: self.addr,
            why,
            log: self.log_tail(60),
        }
    }

    /// A blocking HTTP client that trusts this registry's CA (and nothing else).
    pub fn http_client(&self) -> Result<reqwest::blocking::Client, RegistryError> {
        crate::push::client(self.ca_pem()).map_err(|e| RegistryError::Io {
            what: "cannot build an HTTP client for the registry".into(),
            source: io::Error::other(chain(&e)),
        })
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT`, as image references start.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT` or `https://…`.
    pub fn url(&self) -> String {
        let scheme = if self.opts.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// `127.0.0.1:PORT/<name>` for `name` like `busybox:latest` or `busybox@sha256:…`.
    pub fn reference(&self, name: &str) -> String {
        format!("{}/{name}", self.addr)
    }

    /// The options it runs with.
    pub fn options(&self) -> &RegistryOptions {
        &self.opts
    }

    /// The CA certificate (PEM) when serving TLS.
    pub fn ca_pem(&self) -> Option<&Path> {
        self.opts.tls.then_some(self.pki.ca_pem.as_path())
    }

    /// A directory holding `ca.crt`, for `skopeo --cert-dir` or a `certs.d/<host>` layout,
    /// when serving TLS.
    pub fn cert_dir(&self) -> Option<&Path> {
        self.opts.tls.then_some(self.pki.cert_dir.as_path())
    }

    /// Writes what rkt needs to use this registry into the configuration directory `dir`
    /// (as passed to `--local-config` or `--user-config`): `certs.d/<host:port>/ca.crt` for
    /// the registry and the token server when serving TLS, and an `auth.d` `dockerAuth` file with the credentials when auth is on.
    pub fn write_rkt_config(&self, dir: &Path) -> io::Result<()> {
        if self.opts.tls {
            // The token server listens on its own port, and trust is per host:port.
            let mut hosts = vec![self.host()];
            hosts.extend(self.token.as_ref().map(|t| t.addr().to_string()));
            for h in hosts {
                let certs = dir.join("certs.d").join(h);
                fs::create_dir_all(&certs)?;
                fs::copy(&self.pki.ca_pem, certs.join("ca.crt"))?;
            }
        }
        if let Some((user, password)) = self.credentials() {
            let auth = dir.join("auth.d");
            fs::create_dir_all(&auth)?;
            let doc = serde_json::json!({
                "rktKind": "dockerAuth",
                "rktVersion": "v1",
                "registries": [self.host()],
                "credentials": {"user": user, "password": password},
            });
            fs::write(
                auth.join(format!("rkt-test-registry-{}.json", self.addr.port())),
                serde_json::to_vec_pretty(&doc)?,
            )?;
        }
        Ok(())
    }

    /// `(user, password)` when auth is on.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        (self.opts.auth != Auth::None).then_some((&self.opts.username, &self.opts.password))
    }

    /// The token server's realm URL (token auth only).
    pub fn token_realm(&self) -> Option<String> {
        self.token.as_ref().map(token::TokenServer::realm)
    }

    /// Tokens issued so far (0 without token auth).
    pub fn tokens_issued(&self) -> u64 {
        self.token.as_ref().map_or(0, token::TokenServer::issued)
    }

    /// Token requests refused so far (0 without token auth).
    pub fn tokens_refused(&self) -> u64 {
        self.token.as_ref().map_or(0, token::TokenServer::refused)
    }

    /// The registry's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The registry's temp directory: config, log, certificates and storage.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The registry's storage root (`docker/registry/v2/…` below it).
    pub fn storage_dir(&self) -> &Path {
        &self.data
    }

    /// The whole log (access log and errors).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// A pusher authenticated and trusting the CA as needed.
    pub fn pusher(&self) -> Result<Pusher, PushError> {
        Pusher::new(
            &self.url(),
            self.ca_pem(),
            self.credentials()
                .map(|(u, p)| (u.to_owned(), p.to_owned())),
        )
    }

    /// Pushes ref `layout_tag` of the OCI layout `layout` as `name` (`repo:tag`).
    ///
    /// # Panics
    /// If the push fails; the message includes the registry log.
    pub fn push(&self, layout: &Path, layout_tag: &str, name: &str) -> PushedImage {
        let (repo, tag) = split_name(name);
        self.pusher()
            .and_then(|p| p.push_layout(layout, layout_tag, repo, tag))
            .unwrap_or_else(|e| {
                panic!(
                    "pushing {} to {name} failed: {}\n--- registry log ---\n{}",
                    layout.display(),
                    chain(&e),
                    self.log_tail(30)
                )
            })
    }

    /// Pushes the fixture called `fixture` (see [`Fixtures::names`]) as `name` (`repo:tag`).
    /// The blob-digest-mismatch fixture is pushed intact and then corrupted in storage, since
    /// the registry refuses a mismatched upload.
    ///
    /// # Panics
    /// If the fixture is unknown or the push fails.
    pub fn push_fixture(&self, name: &str, fixture: &str) -> PushedImage {
        self.try_push_fixture(name, fixture).unwrap_or_else(|e| {
            panic!(
                "pushing fixture {fixture} as {name} failed: {e}\n--- registry log ---\n{}",
                self.log_tail(30)
            )
        })
    }

    /// [`Registry::push_fixture`] without panicking.
    pub fn try_push_fixture(&self, name: &str, fixture: &str) -> Result<PushedImage, String> {
        self.try_push_from(Fixtures::get(), name, fixture)
    }

    /// [`Registry::try_push_fixture`] from a given set of fixtures.
    pub fn try_push_from(
        &self,
        fx: &Fixtures,
        name: &str,
        fixture: &str,
    ) -> Result<PushedImage, String> {
        let p = fx.pushable(fixture).map_err(|e| chain(&e))?;
        let (repo, tag) = split_name(name);
        let mut overrides = std::collections::HashMap::new();
        if let Some(t) = p.tampered {
            overrides.insert(t.digest.clone(), t.pristine.clone());
        }
        let pushed = self
            .pusher()
            .and_then(|ps| ps.push_layout_with(p.layout, p.tag, repo, tag, &overrides))
            .map_err(|e| chain(&e))?;
        if let Some(t) = p.tampered {
            let bytes = fs::read(&t.tampered).map_err(|e| e.to_string())?;
            self.replace_blob(&t.digest, &bytes)
                .map_err(|e| format!("cannot corrupt the pushed blob: {e}"))?;
        }
        Ok(pushed)
    }

    /// Replaces the stored bytes of blob `digest` behind the registry's back, so it serves
    /// content that does not match its digest (the registry does not re-hash on reads).
    pub fn replace_blob(&self, digest: &Digest, bytes: &[u8]) -> io::Result<()> {
        let hex = digest.hex();
        let path = self
            .data
            .join("docker/registry/v2/blobs")
            .join(digest.algorithm().name())
            .join(&hex[..2])
            .join(hex)
            .join("data");
        if !path.exists() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "blob {digest} is not in the registry's storage ({})",
                    path.display()
                ),
            ));
        }
        fs::write(path, bytes)
    }
}

/// Splits `repo:tag` (a missing tag means `latest`).
pub fn split_name(name: &str) -> (&str, &str) {
    match name.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, t),
        _ => (name, "latest"),
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- docker-registry log ({}) ---\n{}\n--- end of registry log ---",
                self.addr,
                self.log_tail(15)
            );
        }
        // The token server stops and the temp dir goes when the fields drop.
    }
}
