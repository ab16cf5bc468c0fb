//! Client behaviour against loopback servers written in the tests: auth, redirects, caps,
//! retries, digests and error messages.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use futures_util::StreamExt;
use rkt_types::oci::{self, Descriptor};
use rkt_types::{Digest, DockerRef, MAX_DOCUMENT_BYTES};

use super::test_server::{Reply, Req, Server};
use super::{RegistryClient, RegistryError};
use crate::credentials::Credential;
use crate::http::{HttpClient, HttpOptions};

const REPO: &str = "library/busybox";

fn client(creds: Vec<(String, Credential)>) -> RegistryClient {
    let http = HttpClient::new(HttpOptions {
        allow_http: true,
        attempts: 3,
        retry_delay: Duration::from_millis(10),
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(5),
        ..HttpOptions::default()
    })
    .unwrap();
    RegistryClient::with_http(http, creds)
}

fn image(server: &Server) -> DockerRef {
    DockerRef::parse(&format!("{}/{REPO}:latest", server.host())).unwrap()
}

fn basic(u: &str, p: &str) -> Credential {
    Credential::Basic {
        username: u.into(),
        password: p.into(),
    }
}

fn basic_value(u: &str, p: &str) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
    format!("Basic {b}")
}

fn desc(media_type: &str, data: &[u8]) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest: Digest::sha256_of(data),
        size: data.len() as u64,
        urls: None,
        annotations: Default::default(),
        platform: None,
    }
}

/// A manifest naming `config` and `layer`.
fn manifest_for(config: &[u8], layer: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci::MEDIA_DOCKER_MANIFEST,
        "config": desc(oci::MEDIA_DOCKER_CONFIG, config),
        "layers": [desc(oci::MEDIA_DOCKER_LAYER, layer)],
    }))
    .unwrap()
}

fn blob_path(data: &[u8]) -> String {
    format!("/v2/{REPO}/blobs/{}", Digest::sha256_of(data))
}

fn manifest_path(reference: &str) -> String {
    format!("/v2/{REPO}/manifests/{reference}")
}

async fn collect(client: &RegistryClient, r: &DockerRef, d: &Descriptor) -> (Vec<u8>, Vec<String>) {
    let mut s = client.blob_stream(r, d).await.unwrap();
    let (mut data, mut errors) = (Vec::new(), Vec::new());
    while let Some(item) = s.next().await {
        match item {
            Ok(b) => data.extend_from_slice(&b),
            Err(e) => errors.push(e.to_string()),
        }
    }
    (data, errors)
}

/// Registry A wants a token from server C (basic creds); blobs redirect to storage host B.
/// B must never see an Authorization header; C must see the credentials once (tokens cached).
#[tokio::test]
async fn token_auth_and_redirects_keep_credentials_home() {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = vec![7u8; 10_000];
    let manifest = manifest_for(config, &layer);

    let storage = Server::start({
        let (config, layer) = (config.to_vec(), layer.clone());
        move |_| {
            move |req: &Req| match req.path.as_str() {
                "/config?sig=1" => Reply::ok(config.clone()),
                "/layer?sig=1" => Reply::ok(layer.clone()),
                _ => Reply::status(404),
            }
        }
    })
    .await;
    let token_server = Server::start(|_| {
        |req: &Req| {
            if req.header("authorization") == Some(&basic_value("alice", "pw")) {
                Reply::ok(r#"{"token":"tok-1","expires_in":300}"#)
            } else {
                Reply::status(401)
            }
        }
    })
    .await;
    let realm = format!("http://{}/token", token_server.host());
    let storage_base = format!("http://{}", storage.host());
    let registry = Server::start({
        let (manifest, config, layer) = (manifest.clone(), config.to_vec(), layer.clone());
        move |_| {
            move |req: &Req| {
                if req.header("authorization") != Some("Bearer tok-1") {
                    let ch = format!(
                        r#"Bearer realm="{realm}",service="test-registry",scope="repository:{REPO}:pull""#
                    );
                    return Reply::status(401).header("WWW-Authenticate", &ch);
                }
                if req.path == manifest_path("latest") {
                    Reply::ok(manifest.clone())
                        .header("Content-Type", oci::MEDIA_DOCKER_MANIFEST)
                } else if req.path == blob_path(&config) {
                    Reply::status(307).header("Location", &format!("{storage_base}/config?sig=1"))
                } else if req.path == blob_path(&layer) {
                    Reply::status(302).header("Location", &format!("{storage_base}/layer?sig=1"))
                } else {
                    Reply::status(404)
                }
            }
        }
    })
    .await;

    let c = client(vec![(registry.host(), basic("alice", "pw"))]);
    let r = image(&registry);
    let m = c.manifest(&r, "latest").await.unwrap();
    assert_eq!(m.bytes, manifest);
    assert_eq!(m.media_type, oci::MEDIA_DOCKER_MANIFEST);
    assert_eq!(m.digest, Digest::sha256_of(&manifest));
    let cfg = c
        .blob_bytes(&r, &desc(oci::MEDIA_DOCKER_CONFIG, config))
        .await
        .unwrap();
    assert_eq!(cfg, config);
    let (data, errors) = collect(&c, &r, &desc(oci::MEDIA_DOCKER_LAYER, &layer)).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(data, layer);

    let seen = storage.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for req in &seen {
        assert_eq!(
            req.header("authorization"),
            None,
            "storage got credentials: {req:?}"
        );
    }
    let tokens = token_server.requests();
    assert_eq!(tokens.len(), 1, "the token is cached: {tokens:?}");
    assert!(
        tokens[0].path.contains("service=test-registry"),
        "{}",
        tokens[0].path
    );
    assert!(
        tokens[0]
            .path
            .contains("scope=repository%3Alibrary%2Fbusybox%3Apull")
    );
    // Only the first request went without a token; later ones authenticated up front.
    let reg = registry.requests();
    assert_eq!(
        reg.iter()
            .filter(|q| q.header("authorization").is_none())
            .count(),
        1,
        "{reg:?}"
    );
}

/// A 401 from a host a redirect led to is not answered with the registry's credentials.
#[tokio::test]
async fn challenges_from_other_hosts_are_not_answered() {
    let storage = Server::start(|_| {
        |_: &Req| Reply::status(401).header("WWW-Authenticate", r#"Basic realm="storage""#)
    })
    .await;
    let target = format!("http://{}/blob", storage.host());
    let registry = Server::start(move |_| {
        move |req: &Req| {
            if req.header("authorization") != Some(&basic_value("u", "p")) {
                return Reply::status(401).header("WWW-Authenticate", r#"Basic realm="reg""#);
            }
            Reply::status(307).header("Location", &target)
        }
    })
    .await;
    let c = client(vec![(registry.host(), basic("u", "p"))]);
    let err = c
        .blob_bytes(&image(&registry), &desc("x", b"abc"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Status { status: 401, .. }),
        "{err}"
    );
    assert!(
        storage
            .requests()
            .iter()
            .all(|q| q.header("authorization").is_none())
    );
}

fn basic_registry(
    manifest: Vec<u8>,
) -> impl FnOnce(String) -> Box<dyn Fn(&Req) -> Reply + Send + Sync> {
    move |_| {
        Box::new(move |req: &Req| {
            if req.header("authorization") != Some(&basic_value("bob", "right")) {
                return Reply::status(401)
                    .header("WWW-Authenticate", r#"Basic realm="Registry Realm""#);
            }
            if req.path == manifest_path("latest") {
                Reply::ok(manifest.clone()).header("Content-Type", oci::MEDIA_DOCKER_MANIFEST)
            } else {
                Reply::status(404)
            }
        })
    }
}

#[tokio::test]
async fn basic_auth_right_wrong_and_missing_credentials() {
    let manifest = manifest_for(b"{}", b"l");
    let server = Server::start(basic_registry(manifest.clone())).await;
    let r = image(&server);

    let ok = client(vec![(
        format!("http://{}/", server.host()),
        basic("bob", "right"),
    )]);
    assert_eq!(ok.manifest(&r, "latest").await.unwrap().bytes, manifest);

    let wrong = client(vec![(server.host(), basic("bob", "wrong"))]);
    let err = wrong.manifest(&r, "latest").await.unwrap_err();
    assert!(matches!(err, RegistryError::AuthFailed { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("authentication failed for {}", server.host())),
        "{msg}"
    );
    assert!(
        msg.contains("~/.docker/config.json") && msg.contains("dockerAuth"),
        "{msg}"
    );

    let none = client(Vec::new());
    let err = none.manifest(&r, "latest").await.unwrap_err();
    assert!(matches!(err, RegistryError::AuthRequired { .. }), "{err}");
}

#[tokio::test]
async fn token_server_refusing_credentials_is_an_auth_failure() {
    let token_server = Server::start(|_| |_: &Req| Reply::status(401)).await;
    let realm = format!("http://{}/token", token_server.host());
    let server = Server::start(move |_| {
        move |_: &Req| {
            Reply::status(401).header(
                "WWW-Authenticate",
                &format!(r#"Bearer realm="{realm}",service="s""#),
            )
        }
    })
    .await;
    let c = client(vec![(server.host(), basic("eve", "guess"))]);
    let err = c.manifest(&image(&server), "latest").await.unwrap_err();
    assert!(matches!(err, RegistryError::AuthFailed { .. }), "{err}");
    // The registry itself never saw the basic credentials: they go to the realm it named.
    assert!(
        server
            .requests()
            .iter()
            .all(|q| q.header("authorization").is_none())
    );
    assert_eq!(
        token_server.requests()[0].header("authorization"),
        Some(basic_value("eve", "guess").as_str())
    );
}

/// Credentials never travel to a plain-http token server unless plain http is allowed.
#[tokio::test]
async fn plain_http_realm_needs_permission() {
    let strict = RegistryClient::with_http(
        HttpClient::new(HttpOptions::default()).unwrap(),
        vec![("reg.example".into(), basic("u", "p"))],
    );
    let challenges = super::challenge::parse(r#"Bearer realm="http://127.0.0.1:1/token""#);
    let err = strict
        .auth_for_tests()
        .authorize(
            "reg.example",
            &url::Url::parse("https://reg.example/v2/").unwrap(),
            &challenges,
            "",
            "repository:a:pull",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::BadRealm { .. }), "{err}");
    assert!(err.to_string().contains("--insecure-options=http"), "{err}");
}

#[tokio::test]
async fn manifests_over_the_cap_are_refused() {
    let big = vec![b' '; MAX_DOCUMENT_BYTES as usize + 1];
    let server = Server::start(move |_| {
        move |req: &Req| {
            if req.path.ends_with("/sized") {
                Reply::ok(big.clone())
            } else {
                // No Content-Length: the cap must hold while reading.
                Reply::Unsized {
                    status: 200,
                    body: big.clone(),
                }
            }
        }
    })
    .await;
    let c = client(Vec::new());
    for tag in ["sized", "unsized"] {
        let err = c.manifest(&image(&server), tag).await.unwrap_err();
        assert!(
            matches!(err, RegistryError::TooLarge { .. }),
            "{tag}: {err}"
        );
    }
}

#[tokio::test]
async fn blobs_are_cut_off_at_their_size() {
    let data = vec![1u8; 5000];
    let long = [data.clone(), vec![2u8; 70_000]].concat();
    let short = data[..3000].to_vec();
    let server = Server::start({
        let (long, short) = (long.clone(), short.clone());
        move |_| {
            move |req: &Req| match req.path.as_str() {
                p if p.starts_with("/v2/long-unsized/") => Reply::Unsized {
                    status: 200,
                    body: long.clone(),
                },
                p if p.starts_with("/v2/long-sized/") => Reply::ok(long.clone()),
                _ => Reply::Unsized {
                    status: 200,
                    body: short.clone(),
                },
            }
        }
    })
    .await;
    let c = client(Vec::new());
    let d = desc("x", &data);
    let base = image(&server);
    // Paths are chosen by repository name so one server can play each case.
    let with_repo = |repo: &str| DockerRef {
        repository: repo.into(),
        ..base.clone()
    };

    let (got, errors) = collect(&c, &with_repo("long-unsized"), &d).await;
    assert_eq!(
        got.len() as u64,
        d.size + 1,
        "one byte past the size, no more"
    );
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("longer than"), "{errors:?}");

    let err = c
        .blob_stream(&with_repo("long-sized"), &d)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, RegistryError::BlobTooLong { .. }), "{err}");
    let err = c
        .blob_bytes(&with_repo("long-unsized"), &d)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::BlobTooLong { .. }), "{err}");

    let (got, errors) = collect(&c, &with_repo("short"), &d).await;
    assert_eq!(got, short);
    assert!(
        errors.len() == 1 && errors[0].contains("ended after 3000"),
        "{errors:?}"
    );
    let err = c.blob_bytes(&with_repo("short"), &d).await.unwrap_err();
    assert!(matches!(err, RegistryError::BlobTruncated { .. }), "{err}");
}

#[tokio::test]
async fn retries_on_503_and_hangups() {
    let hits = Arc::new(AtomicUsize::new(0));
    let manifest = manifest_for(b"{}", b"x");
    let server = Server::start({
        let (hits, manifest) = (hits.clone(), manifest.clone());
        move |_| {
            move |req: &Req| {
                if req.path.contains("always") {
                    return Reply::status(503);
                }
                match hits.fetch_add(1, Ordering::SeqCst) {
                    0 => Reply::status(503).header("Retry-After", "0"),
                    1 => Reply::Hangup,
                    _ => Reply::ok(manifest.clone()),
                }
            }
        }
    })
    .await;
    let c = client(Vec::new());
    let r = image(&server);
    assert_eq!(c.manifest(&r, "latest").await.unwrap().bytes, manifest);
    assert_eq!(hits.load(Ordering::SeqCst), 3);

    // A body that breaks off midway is fetched again.
    let broken = Arc::new(AtomicUsize::new(0));
    let flaky = Server::start({
        let (broken, manifest) = (broken.clone(), manifest.clone());
        move |_| {
            move |_: &Req| {
                if broken.fetch_add(1, Ordering::SeqCst) == 0 {
                    let half = manifest[..manifest.len() / 2].to_vec();
                    let full_len = manifest.len().to_string();
                    Reply::ok(half).header("Content-Length", &full_len)
                } else {
                    Reply::ok(manifest.clone())
                }
            }
        }
    })
    .await;
    let got = c.manifest(&image(&flaky), "latest").await.unwrap();
    assert_eq!(got.bytes, manifest);
    assert_eq!(broken.load(Ordering::SeqCst), 2);

    let before = server.requests().len();
    let err = c.manifest(&r, "always").await.unwrap_err();
    assert!(
        matches!(err, RegistryError::Status { status: 503, .. }),
        "{err}"
    );
    assert_eq!(
        server.requests().len() - before,
        3,
        "three attempts, then give up"
    );
}

#[tokio::test]
async fn manifest_digests_are_verified() {
    let manifest = manifest_for(b"{}", b"x");
    let good = Digest::sha256_of(&manifest);
    let other = Digest::sha256_of(b"something else");
    let server = Server::start({
        let (manifest, good, other) = (manifest.clone(), good.clone(), other.clone());
        move |_| {
            move |req: &Req| {
                let body = manifest.clone();
                if req.path.ends_with("/lying-header") {
                    Reply::ok(body).header("Docker-Content-Digest", &other.to_string())
                } else if req.path.ends_with("/honest")
                    || req.path == manifest_path(&good.to_string())
                {
                    Reply::ok(body)
                        .header("Docker-Content-Digest", &good.to_string())
                        .header("Content-Type", "application/json")
                } else {
                    // Asked for `other` but serves `manifest`.
                    Reply::ok(body)
                }
            }
        }
    })
    .await;
    let c = client(Vec::new());
    let r = image(&server);

    let m = c.manifest(&r, &good.to_string()).await.unwrap();
    assert_eq!(m.digest, good);
    // application/json is generic: the document's own mediaType wins.
    assert_eq!(m.media_type, oci::MEDIA_DOCKER_MANIFEST);
    let err = c.manifest(&r, &other.to_string()).await.unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    let err = c.manifest(&r, "lying-header").await.unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    assert_eq!(c.manifest(&r, "honest").await.unwrap().digest, good);
}

#[tokio::test]
async fn head_gives_the_digest_without_a_body() {
    let manifest = manifest_for(b"{}", b"x");
    let digest = Digest::sha256_of(&manifest);
    let log = Arc::new(Mutex::new(Vec::new()));
    let server = Server::start({
        let (manifest, digest, log) = (manifest.clone(), digest.clone(), log.clone());
        move |_| {
            move |req: &Req| {
                log.lock().unwrap().push(req.method.clone());
                if req.path.ends_with("/nodigest") {
                    return Reply::ok(manifest.clone());
                }
                Reply::ok(manifest.clone()).header("Docker-Content-Digest", &digest.to_string())
            }
        }
    })
    .await;
    let c = client(Vec::new());
    let r = image(&server);
    assert_eq!(c.manifest_digest(&r, "latest").await.unwrap(), digest);
    assert_eq!(*log.lock().unwrap(), ["HEAD"]);
    // Without the header, a GET works it out.
    assert_eq!(c.manifest_digest(&r, "nodigest").await.unwrap(), digest);
    assert_eq!(*log.lock().unwrap(), ["HEAD", "HEAD", "GET"]);
}

#[tokio::test]
async fn index_by_tag_keeps_its_media_type() {
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [desc(oci::MEDIA_OCI_MANIFEST, b"m")],
    }))
    .unwrap();
    let server = Server::start({
        let index = index.clone();
        move |_| {
            move |req: &Req| {
                assert!(req.header("accept").unwrap().contains(oci::MEDIA_OCI_INDEX));
                Reply::ok(index.clone()).header(
                    "Content-Type",
                    &format!("{}; charset=utf-8", oci::MEDIA_OCI_INDEX),
                )
            }
        }
    })
    .await;
    let m = client(Vec::new())
        .manifest(&image(&server), "multi")
        .await
        .unwrap();
    assert_eq!(m.media_type, oci::MEDIA_OCI_INDEX);
    assert_eq!(m.bytes, index);
}

#[tokio::test]
async fn errors_say_what_happened() {
    let server = Server::start(|_| {
        |req: &Req| {
            if req.path.contains("/blobs/") {
                Reply::status(403)
            } else {
                Reply::status(404).header("Content-Type", "application/json")
            }
        }
    })
    .await;
    let c = client(Vec::new());
    let r = image(&server);
    let err = c.manifest(&r, "../../other/manifests/x").await.unwrap_err();
    assert!(matches!(err, RegistryError::BadReference { .. }), "{err}");
    let err = c.manifest(&r, "nope").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("image {REPO}:nope not found on {}", server.host())
    );
    let err = c.blob_bytes(&r, &desc("x", b"y")).await.unwrap_err();
    assert!(matches!(err, RegistryError::Denied { .. }), "{err}");

    // Nothing listens on a port we just closed.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let gone = DockerRef::parse(&format!("127.0.0.1:{port}/a:b")).unwrap();
    let strict = RegistryClient::with_http(
        HttpClient::new(HttpOptions {
            attempts: 1,
            ..HttpOptions::default()
        })
        .unwrap(),
        Vec::new(),
    );
    let err = strict.manifest(&gone, "b").await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("127.0.0.1:{port}")) && msg.contains("refused"),
        "{msg}"
    );

    // A plain-http registry without --insecure-options=http: the TLS error says what to do.
    let err = strict.manifest(&image(&server), "x").await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("--insecure-options=http"), "{msg}");
}
