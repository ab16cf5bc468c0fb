//! TLS behaviour against a real TLS server: `openssl s_server -HTTP` on 127.0.0.1, serving
//! hand-written HTTP responses with certificates made by the `openssl` command (which Debian's
//! ca-certificates always brings along). Checks: untrusted certificates are refused with a
//! useful message, certs.d and `insecure_tls` make them trusted, and an https → http redirect
//! is refused unless plain http is allowed.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rkt_types::{Digest, DockerRef};

use super::test_server::{Reply, Req, Server};
use super::{RegistryClient, RegistryError};
use crate::http::{HttpClient, HttpError, HttpOptions};

const MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[]}"#;

fn openssl(dir: &Path, args: &[&str]) -> bool {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A TLS server whose certificate (for IP 127.0.0.1) is signed by a throwaway CA.
struct TlsServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TlsServer {
    /// Starts `openssl s_server -HTTP`, which answers `GET /p` with the file `p`, verbatim.
    /// `None` (with a printed reason) where the openssl command is not installed.
    fn start(files: &[(&str, Vec<u8>)]) -> Option<TlsServer> {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        if !openssl(d, &["version"]) {
            eprintln!("skipping: the openssl command is not installed (Debian: ca-certificates)");
            return None;
        }
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        assert!(openssl(
            d,
            &[
                &["req", "-x509"][..],
                &ec,
                &["-keyout", "ca.key", "-out", "ca.crt", "-days", "2"],
                &["-subj", "/CN=rkt test CA"],
                &["-addext", "basicConstraints=critical,CA:TRUE"],
                &["-addext", "keyUsage=critical,keyCertSign"],
            ]
            .concat()
        ));
        assert!(openssl(
            d,
            &[
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    "srv.key",
                    "-out",
                    "srv.csr",
                    "-subj",
                    "/CN=127.0.0.1"
                ],
            ]
            .concat()
        ));
        std::fs::write(
            d.join("ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        assert!(openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "srv.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "srv.crt",
                "-days",
                "2",
                "-extfile",
                "ext",
            ]
        ));
        let www = d.join("www");
        for (path, content) in files {
            let p = www.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        // s_server block-buffers its "ACCEPT host:port" line when stdout is a pipe, so pick
        // the port here and wait for it to listen.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let child = Command::new("openssl")
            .args(["s_server", "-HTTP", "-quiet", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(d.join("srv.crt"))
            .arg("-key")
            .arg(d.join("srv.key"))
            .current_dir(&www)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = TlsServer { child, port, dir };
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(server);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("openssl s_server did not start listening on 127.0.0.1:{port}");
    }

    fn image(&self) -> DockerRef {
        DockerRef::parse(&format!("127.0.0.1:{}/library/busybox:latest", self.port)).unwrap()
    }

    /// A certs.d tree that trusts this server's CA.
    fn certs_d(&self) -> std::path::PathBuf {
        let certs = self.dir.path().join("certs.d");
        let host_dir = certs.join(format!("127.0.0.1:{}", self.port));
        std::fs::create_dir_all(&host_dir).unwrap();
        std::fs::copy(self.dir.path().join("ca.crt"), host_dir.join("ca.crt")).unwrap();
        certs
    }
}

fn response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    [out.into_bytes(), body.to_vec()].concat()
}

fn client(opts: HttpOptions) -> RegistryClient {
    let http = HttpClient::new(HttpOptions {
        attempts: 1,
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(5),
        ..opts
    })
    .unwrap();
    RegistryClient::with_http(http, Vec::new())
}

#[tokio::test]
async fn untrusted_certificates_are_refused_until_trusted() {
    let manifest = response(
        "200 OK",
        &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
        MANIFEST,
    );
    let files = [("v2/library/busybox/manifests/latest", manifest)];
    let Some(server) = TlsServer::start(&files) else {
        return;
    };
    let r = server.image();

    let err = client(HttpOptions::default())
        .manifest(&r, "latest")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RegistryError::Http(e @ HttpError::Tls { .. }) if e.is_certificate_error()),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("--insecure-options=tls") && msg.contains("certs.d"),
        "{msg}"
    );

    // Even with plain http allowed, a certificate problem is reported, not "fixed" by http.
    let lax = client(HttpOptions {
        allow_http: true,
        ..HttpOptions::default()
    });
    let err = lax.manifest(&r, "latest").await.unwrap_err();
    assert!(
        matches!(err, RegistryError::Http(HttpError::Tls { .. })),
        "{err}"
    );

    let trusted = client(HttpOptions {
        cert_dirs: vec![server.certs_d()],
        ..HttpOptions::default()
    });
    let m = trusted.manifest(&r, "latest").await.unwrap();
    assert_eq!(m.digest, Digest::sha256_of(MANIFEST));

    let insecure = client(HttpOptions {
        insecure_tls: true,
        ..HttpOptions::default()
    });
    assert_eq!(
        insecure.manifest(&r, "latest").await.unwrap().bytes,
        MANIFEST
    );
}

#[tokio::test]
async fn https_to_http_redirects_need_permission() {
    let plain = Server::start(|_| |_: &Req| Reply::ok(MANIFEST)).await;
    let redirect = response(
        "307 Temporary Redirect",
        &[("Location", &format!("http://{}/manifest", plain.host()))],
        b"",
    );
    // (s_server -HTTP refuses paths with ':', so this is a manifest by tag, not a blob.)
    let files = [("v2/library/busybox/manifests/latest", redirect)];
    let Some(server) = TlsServer::start(&files) else {
        return;
    };
    let r = server.image();

    let strict = client(HttpOptions {
        insecure_tls: true,
        ..HttpOptions::default()
    });
    let err = strict.manifest(&r, "latest").await.unwrap_err();
    assert!(
        matches!(err, RegistryError::Http(HttpError::Downgrade { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("--insecure-options=http"), "{err}");
    assert!(
        plain.requests().is_empty(),
        "nothing may reach the http host"
    );

    let lax = client(HttpOptions {
        insecure_tls: true,
        allow_http: true,
        ..HttpOptions::default()
    });
    assert_eq!(lax.manifest(&r, "latest").await.unwrap().bytes, MANIFEST);
    assert_eq!(plain.requests().len(), 1);
}

/// `SSL_CERT_FILE` replaces the platform roots (rustls-native-certs reads it when the client
/// is built). The environment cannot be changed inside this process without `unsafe`, so the
/// check runs in a child: this test binary again, running only [`ssl_cert_file_child`].
#[test]
fn ssl_cert_file_is_honoured() {
    let manifest = response("200 OK", &[], MANIFEST);
    let files = [("v2/library/busybox/manifests/latest", manifest)];
    let Some(server) = TlsServer::start(&files) else {
        return;
    };
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "registry::tls_tests::ssl_cert_file_child",
        ])
        .env("SSL_CERT_FILE", server.dir.path().join("ca.crt"))
        .env_remove("SSL_CERT_DIR")
        .env("RKT_TEST_TLS_PORT", server.port.to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("1 passed"),
        "the child test did not run: {text}"
    );
}

#[test]
#[ignore = "run by ssl_cert_file_is_honoured, with SSL_CERT_FILE pointing at the test CA"]
fn ssl_cert_file_child() {
    let Some(port) = std::env::var_os("RKT_TEST_TLS_PORT") else {
        eprintln!("skipping: only meaningful when run by ssl_cert_file_is_honoured");
        return;
    };
    let r = DockerRef::parse(&format!(
        "127.0.0.1:{}/library/busybox:latest",
        port.to_string_lossy()
    ))
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let m = rt
        .block_on(client(HttpOptions::default()).manifest(&r, "latest"))
        .unwrap();
    assert_eq!(m.digest, Digest::sha256_of(MANIFEST));
}
