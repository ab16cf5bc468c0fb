//! The loopback registry in each variant serves what the pusher pushed, as seen by skopeo
//! (an independent client), and refuses wrong credentials.

mod common;

use common::{config_digest, inspect, raw_digest, reported_digest, skopeo_output};
use rkt_tests::fixtures::AdversarialKind;
use rkt_tests::{Auth, Fixtures, Registry, RegistryOptions};
use rkt_types::Digest;

fn docker_ref(reg: &Registry, name: &str) -> String {
    format!("docker://{}", reg.reference(name))
}

/// skopeo flags to reach `reg`: its CA when TLS, plain HTTP otherwise.
fn tls_flags(reg: &Registry) -> Vec<String> {
    match reg.cert_dir() {
        Some(d) => vec![format!("--cert-dir={}", d.display())],
        None => vec!["--tls-verify=false".into()],
    }
}

fn args<'a>(v: &'a [String], extra: &[&'a str]) -> Vec<&'a str> {
    let mut a: Vec<&str> = v.iter().map(String::as_str).collect();
    a.extend_from_slice(extra);
    a
}

#[test]
fn plain_registry_serves_pushed_images_and_skips_known_blobs() {
    let fx = Fixtures::get();
    let reg = Registry::start(RegistryOptions::plain());
    let pushed = reg.push_fixture("busybox:latest", "busybox");
    assert_eq!(pushed.digest, fx.busybox.image.manifest.digest);
    assert_eq!(pushed.uploaded.len(), 3, "config and two layers");
    let flags = tls_flags(&reg);
    let r = docker_ref(&reg, "busybox:latest");
    let v = inspect(&args(&flags, &[&r]));
    assert_eq!(reported_digest(&v), fx.busybox.image.manifest.digest);
    assert_eq!(
        config_digest(&args(&flags, &[&r])),
        *fx.busybox.image.image_id()
    );

    // The same image under another tag uploads nothing; zstd shares the config only.
    let again = reg.push_fixture("busybox:again", "busybox");
    assert!(again.uploaded.is_empty(), "{again:?}");
    assert_eq!(again.skipped.len(), 3);
    let zstd = reg.push_fixture("busybox:zstd", "busybox-zstd");
    assert_eq!(zstd.skipped, vec![fx.busybox.image.config.digest.clone()]);
    let r = docker_ref(&reg, "busybox:zstd");
    assert_eq!(
        reported_digest(&inspect(&args(&flags, &[&r]))),
        fx.busybox_zstd.image.manifest.digest
    );
    assert!(!reg.log().is_empty());
}

#[test]
fn docker_media_types_and_indexes_round_trip() {
    let fx = Fixtures::get();
    let reg = Registry::start(RegistryOptions::plain());
    let flags = tls_flags(&reg);
    let d = reg.push_fixture("busybox:docker", "busybox-docker");
    assert_eq!(d.digest, fx.busybox_docker.image.manifest.digest);
    assert_eq!(d.media_type, rkt_types::oci::MEDIA_DOCKER_MANIFEST);
    let r = docker_ref(&reg, "busybox:docker");
    assert_eq!(raw_digest(&args(&flags, &[&r])), d.digest);
    assert_eq!(
        config_digest(&args(&flags, &[&r])),
        *fx.busybox.image.image_id()
    );

    for (tag, fixture, m) in [
        ("multi", "multiarch", &fx.multiarch),
        ("multi-docker", "multiarch-docker", &fx.multiarch_docker),
    ] {
        let p = reg.push_fixture(&format!("busybox:{tag}"), fixture);
        assert_eq!(p.digest, m.index.digest);
        let r = docker_ref(&reg, &format!("busybox:{tag}"));
        assert_eq!(raw_digest(&args(&flags, &[&r])), m.index.digest);
        for arch in ["amd64", "arm64"] {
            let v = inspect(&args(&flags, &["--override-arch", arch, &r]));
            assert_eq!(v["Labels"]["rkt.fixture.platform"], arch, "{fixture}");
            // skopeo reports the digest of what the tag points at: the index.
            assert_eq!(reported_digest(&v), m.index.digest);
            assert_eq!(
                config_digest(&args(&flags, &["--override-arch", arch, &r])),
                m.for_arch(arch).unwrap().config.digest
            );
        }
    }
}

#[test]
fn tls_registry_needs_its_ca() {
    let fx = Fixtures::get();
    let reg = Registry::start(RegistryOptions::tls());
    assert!(reg.url().starts_with("https://"));
    reg.push_fixture("busybox:latest", "busybox");
    let r = docker_ref(&reg, "busybox:latest");
    let flags = tls_flags(&reg);
    assert_eq!(
        reported_digest(&inspect(&args(&flags, &[&r]))),
        fx.busybox.image.manifest.digest
    );
    // Without the CA the certificate is not trusted.
    let out = skopeo_output(&["inspect", &r]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("certificate"), "{err}");
}

fn check_auth(reg: &Registry) {
    let fx = Fixtures::get();
    let pushed = reg.push_fixture("busybox:latest", "busybox");
    assert_eq!(pushed.digest, fx.busybox.image.manifest.digest);
    let (user, pass) = reg.credentials().unwrap();
    let flags = tls_flags(reg);
    let r = docker_ref(reg, "busybox:latest");
    let good = format!("--creds={user}:{pass}");
    assert_eq!(
        reported_digest(&inspect(&args(&flags, &[&good, &r]))),
        fx.busybox.image.manifest.digest
    );
    let bad = format!("--creds={user}:wrong-password");
    let mut a = vec!["inspect"];
    a.extend(args(&flags, &[&bad, &r]));
    let out = skopeo_output(&a);
    assert!(!out.status.success(), "a wrong password was accepted");
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(err.contains("unauthorized") || err.contains("401"), "{err}");
    let mut a = vec!["inspect"];
    a.extend(args(&flags, &["--no-creds", &r]));
    let out = skopeo_output(&a);
    assert!(!out.status.success(), "anonymous access was allowed");

    // The registry itself refuses a wrong password.
    let client = reg.http_client().unwrap();
    let resp = client
        .get(format!("{}/v2/busybox/manifests/latest", reg.url()))
        .basic_auth(user, Some("wrong-password"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
    // A pusher with a wrong password gets nowhere.
    let p = rkt_tests::Pusher::new(&reg.url(), reg.ca_pem(), Some((user.into(), "nope".into())))
        .unwrap();
    let err = p
        .push_layout(&fx.busybox.path, "latest", "busybox", "other")
        .unwrap_err();
    assert!(rkt_tests::fixtures::chain(&err).contains("401"), "{err:?}");
}

#[test]
fn basic_auth_registry_accepts_only_its_user() {
    let reg = Registry::start(RegistryOptions::basic());
    assert_eq!(reg.options().auth, Auth::Basic);
    check_auth(&reg);
}

#[test]
fn token_auth_registry_issues_and_checks_tokens() {
    let reg = Registry::start(RegistryOptions::token());
    assert!(reg.token_realm().unwrap().starts_with("https://127.0.0.1:"));
    check_auth(&reg);
    assert!(
        reg.tokens_issued() >= 2,
        "pusher and skopeo each got a token"
    );
    assert!(reg.tokens_refused() >= 1, "the wrong password was refused");
    // A token for one repository does not open another.
    let client = reg.http_client().unwrap();
    let (user, pass) = reg.credentials().unwrap();
    let realm = reg.token_realm().unwrap();
    let tok = client
        .get(format!(
            "{realm}?service=rkt-test-registry&scope=repository:other:pull"
        ))
        .basic_auth(user, Some(pass))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let tok: serde_json::Value = serde_json::from_slice(&tok).unwrap();
    let t = tok["token"].as_str().unwrap();
    let url = format!("{}/v2/busybox/manifests/latest", reg.url());
    let resp = client.get(&url).bearer_auth(t).send().unwrap();
    assert_eq!(resp.status(), 401);
}

#[test]
fn tampered_blob_is_served_with_wrong_bytes() {
    let fx = Fixtures::get();
    let a = fx.adversarial(AdversarialKind::BlobDigestMismatch);
    let reg = Registry::start(RegistryOptions::plain());
    let pushed = reg.push_fixture("evil:latest", "adversarial/blob-digest-mismatch");
    assert_eq!(pushed.digest, a.image.image.manifest.digest);
    let t = a.tampered_blob.as_ref().unwrap();
    let client = reg.http_client().unwrap();
    let body = client
        .get(format!("{}/v2/evil/blobs/{}", reg.url(), t.digest))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert_eq!(body.len() as u64, a.image.image.layers[1].size);
    assert_ne!(Digest::sha256_of(&body), t.digest);
    assert_eq!(body.as_ref(), std::fs::read(&t.tampered).unwrap());
}

#[test]
fn every_adversarial_image_can_be_pushed() {
    let fx = Fixtures::get();
    let reg = Registry::start(RegistryOptions::plain());
    for a in &fx.adversarial {
        let name = format!("adversarial/{}", a.kind.name());
        let p = reg.push_fixture(&format!("{name}:latest"), &name);
        assert_eq!(p.digest, a.image.image.manifest.digest, "{name}");
    }
}

#[test]
fn drop_stops_the_registry_and_removes_its_files() {
    let reg = Registry::start(RegistryOptions::token());
    let pid = reg.pid();
    let storage = reg.storage_dir().to_owned();
    let addr = reg.addr();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    drop(reg);
    assert!(!storage.exists(), "storage left behind");
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "still listening on {addr}"
    );
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    assert!(
        status.is_empty() || status.contains("State:\tZ"),
        "{status}"
    );
}

#[test]
fn token_auth_works_over_plain_http_too() {
    let reg = Registry::start(RegistryOptions {
        tls: false,
        ..RegistryOptions::token()
    });
    assert!(reg.token_realm().unwrap().starts_with("http://127.0.0.1:"));
    check_auth(&reg);
    assert!(reg.tokens_issued() >= 2);
}
