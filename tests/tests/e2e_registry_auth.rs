//! `rkt fetch docker://…` against the real `docker-registry` over plain http, TLS, basic auth
//! and token auth: what `--insecure-options` each needs, where trust and credentials come
//! from (`certs.d`, `auth.d` dockerAuth, `~/.docker/config.json`, `$DOCKER_CONFIG`), and how
//! refusals are reported.

mod e2e_support;

use std::fs;
use std::path::Path;

use base64::Engine as _;
use e2e_support::{assert_nothing_stored, docker, fetch, fetch_ok, listed, printed_id};
use rkt_tests::rkt::Rkt;
use rkt_tests::{Fixtures, Registry, RegistryOptions};

/// Checks what a successful fetch of the busybox fixture left: the printed id, and the image
/// list's name, format and platform.
fn check_busybox(rkt: &Rkt, reg: &Registry, id: &rkt_types::Digest) {
    let fx = Fixtures::get();
    assert_eq!(id, fx.busybox.image.image_id());
    let entry = listed(rkt, id);
    assert_eq!(entry["name"], format!("{}/busybox:latest", reg.host()));
    assert_eq!(entry["format"], "oci");
    assert_eq!(entry["platform"], format!("linux/{}", fx.architecture));
}

fn docker_config_json(reg: &Registry, password: &str) -> String {
    let (user, _) = reg.credentials().expect("registry with auth");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    serde_json::json!({"auths": {reg.host(): {"auth": auth}}}).to_string()
}

fn write_docker_config(dir: &Path, reg: &Registry, password: &str) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("config.json"), docker_config_json(reg, password)).unwrap();
}

/// Trust only (certs.d), no credentials.
fn write_certs_d(rkt: &Rkt, reg: &Registry) {
    let dir = rkt.local_config().join("certs.d").join(reg.host());
    fs::create_dir_all(&dir).unwrap();
    fs::copy(reg.ca_pem().unwrap(), dir.join("ca.crt")).unwrap();
}

#[test]
fn plain_http_needs_insecure_http_and_image() {
    let reg = Registry::start(RegistryOptions::plain());
    reg.push_fixture("busybox:latest", "busybox");
    let rkt = Rkt::new();
    let image = docker(&reg, "busybox:latest");

    let out = fetch(&rkt, "image", &image, &[]);
    assert_eq!(out.code(), Some(254), "{out}");
    assert!(out.stderr.contains("--insecure-options=http"), "{out}");

    let out = fetch(&rkt, "http", &image, &[]);
    assert_eq!(out.code(), Some(254), "{out}");
    assert!(out.stderr.contains("--insecure-options=image"), "{out}");
    assert!(e2e_support::rkt_requests(&reg, "busybox").is_empty());
    assert!(rkt.image_list().is_empty());

    let out = fetch(&rkt, "image,http", &image, &[]);
    assert!(out.success(), "{out}");
    check_busybox(&rkt, &reg, &printed_id(&out));
    // Quiet when stderr is not a terminal: no progress bars, no chatter.
    assert_eq!(out.stderr, "", "{out}");
    assert_eq!(out.stdout.lines().count(), 1, "{out}");
}

#[test]
fn tls_trusts_certs_d_or_insecure_tls() {
    let reg = Registry::start(RegistryOptions::tls());
    reg.push_fixture("busybox:latest", "busybox");
    let image = docker(&reg, "busybox:latest");

    // Not trusted: refused, and the message says both ways out.
    let rkt = Rkt::new();
    let out = fetch(&rkt, "image", &image, &[]);
    assert_eq!(out.code(), Some(254), "{out}");
    assert!(out.stderr.contains("certs.d"), "{out}");
    assert!(out.stderr.contains("--insecure-options=tls"), "{out}");
    assert!(rkt.image_list().is_empty());
    // Plain http does not make an untrusted TLS registry acceptable.
    let out = fetch(&rkt, "image,http", &image, &[]);
    assert_eq!(out.code(), Some(254), "{out}");

    // Skipping verification works.
    let out = fetch(&rkt, "image,tls", &image, &[]);
    assert!(out.success(), "{out}");
    check_busybox(&rkt, &reg, &printed_id(&out));

    // Trusted through --local-config certs.d.
    let rkt = Rkt::new();
    write_certs_d(&rkt, &reg);
    let out = fetch(&rkt, "image", &image, &[]);
    assert!(out.success(), "{out}");
    check_busybox(&rkt, &reg, &printed_id(&out));
}

#[test]
fn basic_auth_with_docker_auth() {
    let reg = Registry::start(RegistryOptions::basic());
    reg.push_fixture("busybox:latest", "busybox");

    // Trust but no credentials: refused, naming where credentials go.
    let rkt = Rkt::new();
    write_certs_d(&rkt, &reg);
    let out = fetch(&rkt, "image", &docker(&reg, "busybox:latest"), &[]);
    assert_eq!(out.code(), Some(254), "{out}");
    assert!(out.stderr.contains("dockerAuth"), "{out}");
    assert!(rkt.image_list().is_empty());

    let id = fetch_ok(&rkt, &reg, "busybox:latest", &[]);
    check_busybox(&rkt, &reg, &id);
}

#[test]
fn token_auth_with_docker_auth() {
    let reg = Registry::start(RegistryOptions::token());
    reg.push_fixture("busybox:latest", "busybox");
    let issued = reg.tokens_issued();
    let rkt = Rkt::new();
    let id = fetch_ok(&rkt, &reg, "busybox:latest", &[]);
    check_busybox(&rkt, &reg, &id);
    assert!(reg.tokens_issued() > issued, "rkt got no token");
    // One token covers the whole pull.
    assert_eq!(reg.tokens_issued() - issued, 1);
}

#[test]
fn token_auth_with_home_docker_config() {
    let reg = Registry::start(RegistryOptions::token());
    reg.push_fixture("busybox:latest", "busybox");
    let rkt = Rkt::new();
    write_certs_d(&rkt, &reg);
    let (_, password) = reg.credentials().unwrap();
    write_docker_config(&rkt.home().join(".docker"), &reg, password);
    let before = reg.tokens_issued();
    let out = fetch(&rkt, "image", &docker(&reg, "busybox:latest"), &[]);
    assert!(out.success(), "{out}");
    check_busybox(&rkt, &reg, &printed_id(&out));
    assert!(reg.tokens_issued() > before);
}

#[test]
fn token_auth_with_docker_config_env() {
    let reg = Registry::start(RegistryOptions::token());
    reg.push_fixture("busybox:latest", "busybox");
    let mut rkt = Rkt::new();
    write_certs_d(&rkt, &reg);
    let (_, password) = reg.credentials().unwrap();
    // A wrong password in ~/.docker proves $DOCKER_CONFIG is the one read.
    write_docker_config(&rkt.home().join(".docker"), &reg, "not-the-password");
    let elsewhere = rkt.home().join("elsewhere");
    write_docker_config(&elsewhere, &reg, password);
    rkt.set_env("DOCKER_CONFIG", &elsewhere);
    let out = fetch(&rkt, "image", &docker(&reg, "busybox:latest"), &[]);
    assert!(out.success(), "{out}");
    check_busybox(&rkt, &reg, &printed_id(&out));
}

const BAD_PASSWORD: &str = "not-the-password-7c1e";

#[test]
fn wrong_password_is_an_authentication_error() {
    for opts in [RegistryOptions::basic(), RegistryOptions::token()] {
        let auth = opts.auth;
        let reg = Registry::start(opts);
        reg.push_fixture("busybox:latest", "busybox");
        let rkt = Rkt::new();
        write_certs_d(&rkt, &reg);
        let doc = serde_json::json!({
            "rktKind": "dockerAuth",
            "rktVersion": "v1",
            "registries": [reg.host()],
            "credentials": {"user": reg.credentials().unwrap().0, "password": BAD_PASSWORD},
        });
        let auth_d = rkt.local_config().join("auth.d");
        fs::create_dir_all(&auth_d).unwrap();
        fs::write(auth_d.join("registry.json"), doc.to_string()).unwrap();
        let out = fetch(&rkt, "image", &docker(&reg, "busybox:latest"), &[]);
        assert_eq!(out.code(), Some(254), "{auth:?}: {out}");
        assert!(
            out.stderr.contains("authentication failed"),
            "{auth:?}: {out}"
        );
        assert!(
            out.stderr.contains("auth.d") && out.stderr.contains(".docker/config.json"),
            "{auth:?}: the message must say where credentials come from: {out}"
        );
        assert!(
            !out.stderr.contains(BAD_PASSWORD),
            "the password leaked: {out}"
        );
        assert_nothing_stored(&rkt, &Default::default(), &Default::default());
        assert!(e2e_support::blob_gets(&reg, "busybox").is_empty());
    }
}
