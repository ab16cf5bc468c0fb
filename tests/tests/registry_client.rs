//! rkt-fetch's registry client against the real Debian `docker-registry` in each variant
//! (plain http, TLS, basic auth, token auth): it pulls the fixture images' manifests, configs
//! and layers and checks every digest, and it reports wrong credentials and untrusted
//! certificates the way a user can act on.

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use rkt_fetch::credentials::Credential;
use rkt_fetch::http::HttpError;
use rkt_fetch::registry::{ClientOptions, RegistryClient, RegistryError};
use rkt_tests::fixtures::{AdversarialKind, ImageInfo};
use rkt_tests::{Fixtures, Registry, RegistryOptions};
use rkt_types::digest::Hasher;
use rkt_types::oci::{self, Index, Manifest};
use rkt_types::{Digest, DockerRef};

/// Client options for `reg`: plain http allowed only for a plain registry, its CA trusted
/// through a `certs.d/<host:port>/ca.crt` tree under `certs_d` when given, and `creds`.
fn options(reg: &Registry, certs_d: Option<&Path>, creds: Option<(&str, &str)>) -> ClientOptions {
    let cert_dirs = match (certs_d, reg.ca_pem()) {
        (Some(root), Some(ca)) => {
            let host_dir = root.join(reg.host());
            std::fs::create_dir_all(&host_dir).unwrap();
            std::fs::copy(ca, host_dir.join("ca.crt")).unwrap();
            vec![root.to_path_buf()]
        }
        _ => Vec::new(),
    };
    ClientOptions {
        allow_http: reg.ca_pem().is_none(),
        insecure_tls: false,
        cert_dirs,
        user_agent: "rkt-tests".into(),
        credentials: creds
            .map(|(u, p)| {
                let c = Credential::Basic {
                    username: u.into(),
                    password: p.into(),
                };
                vec![(reg.host(), c)]
            })
            .unwrap_or_default(),
    }
}

/// The registry's own credentials, when it has any.
fn good_creds(reg: &Registry) -> Option<(&str, &str)> {
    reg.credentials()
}

fn image(reg: &Registry, name: &str) -> DockerRef {
    DockerRef::parse(&reg.reference(name)).unwrap()
}

fn certs_d() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("certs.d");
    (dir, root)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Pulls `info` (a single image, already pushed as `r`'s tag) and checks every digest.
async fn pull_and_check(c: &RegistryClient, r: &DockerRef, info: &ImageInfo) {
    let tag = r.tag_or_latest();
    let m = c.manifest(r, tag).await.unwrap();
    assert_eq!(m.digest, info.manifest.digest);
    assert_eq!(m.media_type, info.manifest.media_type);
    assert_eq!(
        c.manifest_digest(r, tag).await.unwrap(),
        info.manifest.digest
    );
    let by_digest = c.manifest(r, &m.digest.to_string()).await.unwrap();
    assert_eq!(by_digest.bytes, m.bytes);
    check_image(c, r, &m.bytes, info).await;
}

/// Fetches the config and layers `manifest_bytes` names and checks them against `info`.
async fn check_image(c: &RegistryClient, r: &DockerRef, manifest_bytes: &[u8], info: &ImageInfo) {
    let manifest: Manifest = serde_json::from_slice(manifest_bytes).unwrap();
    assert_eq!(manifest.config, info.config);
    assert_eq!(manifest.layers, info.layers);
    let config = c.blob_bytes(r, &manifest.config).await.unwrap();
    assert_eq!(Digest::sha256_of(&config), info.config.digest);
    for layer in &manifest.layers {
        let mut stream = c.blob_stream(r, layer).await.unwrap();
        let mut h = Hasher::new(layer.digest.algorithm());
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap();
            n += chunk.len() as u64;
            h.update(&chunk);
        }
        assert_eq!(n, layer.size);
        assert_eq!(h.finish(), layer.digest);
    }
}

#[test]
fn plain_registry_oci_and_docker_images() {
    let fx = Fixtures::get();
    let reg = Registry::start(RegistryOptions::plain());
    reg.push_fixture("busybox:oci", "busybox");
    reg.push_fixture("busybox:docker", "busybox-docker");
    reg.push_fixture("busybox:zstd", "busybox-zstd");
    runtime().block_on(async {
        let c = RegistryClient::new(options(&reg, None, None)).unwrap();
        pull_and_check(&c, &image(&reg, "busybox:oci"), &fx.busybox.image).await;
        pull_and_check(&c, &image(&reg, "busybox:docker"), &fx.busybox_docker.image).await;
        pull_and_check(&c, &image(&reg, "busybox:zstd"), &fx.busybox_zstd.image).await;

        let err = c
            .manifest(&image(&reg, "busybox:nope"), "nope")
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("image busybox:nope not found on {}", reg.host())
        );

        // Without --insecure-options=http the client insists on TLS, and says what to do.
        let strict = ClientOptions {
            allow_http: false,
            ..options(&reg, None, None)
        };
        let err = RegistryClient::new(strict)
            .unwrap()
            .manifest(&image(&reg, "busybox:oci"), "oci")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("--insecure-options=http"), "{err}");
    });
}

#[test]
fn indexes_and_manifest_lists_by_tag() {
    let fx = Fixtures::get();
    let reg = Registry::start(RegistryOptions::plain());
    reg.push_fixture("multi:oci", "multiarch");
    reg.push_fixture("multi:docker", "multiarch-docker");
    runtime().block_on(async {
        let c = RegistryClient::new(options(&reg, None, None)).unwrap();
        for (tag, layout) in [("oci", &fx.multiarch), ("docker", &fx.multiarch_docker)] {
            let r = image(&reg, &format!("multi:{tag}"));
            let top = c.manifest(&r, tag).await.unwrap();
            assert_eq!(top.digest, layout.index.digest);
            assert_eq!(top.media_type, layout.index.media_type);
            assert!(oci::is_index_media_type(&top.media_type));
            let index: Index = serde_json::from_slice(&top.bytes).unwrap();
            for info in &layout.images {
                // The caller picks the platform; the client fetches the entry by digest.
                let entry = index
                    .manifests
                    .iter()
                    .find(|d| d.platform.as_ref().unwrap().architecture == info.architecture)
                    .unwrap();
                let m = c.manifest(&r, &entry.digest.to_string()).await.unwrap();
                assert_eq!(m.digest, info.manifest.digest);
                assert_eq!(m.media_type, info.manifest.media_type);
                check_image(&c, &r, &m.bytes, info).await;
            }
        }
    });
}

#[test]
fn tls_registry_needs_its_ca_or_insecure_tls() {
    let fx = Fixtures::get();
    let reg = Registry::start(RegistryOptions::tls());
    reg.push_fixture("busybox:latest", "busybox");
    let (_tmp, root) = certs_d();
    runtime().block_on(async {
        let r = image(&reg, "busybox:latest");
        let untrusted = RegistryClient::new(options(&reg, None, None)).unwrap();
        let err = untrusted.manifest(&r, "latest").await.unwrap_err();
        assert!(
            matches!(err, RegistryError::Http(HttpError::Tls { .. })),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("--insecure-options=tls") && msg.contains("certs.d"),
            "{msg}"
        );

        let trusted = RegistryClient::new(options(&reg, Some(&root), None)).unwrap();
        pull_and_check(&trusted, &r, &fx.busybox.image).await;

        let insecure = ClientOptions {
            insecure_tls: true,
            ..options(&reg, None, None)
        };
        let insecure = RegistryClient::new(insecure).unwrap();
        pull_and_check(&insecure, &r, &fx.busybox.image).await;
    });
}

#[test]
fn basic_auth_registry() {
    let fx = Fixtures::get();
    let reg = Registry::start(RegistryOptions::basic());
    reg.push_fixture("busybox:latest", "busybox");
    let (_tmp, root) = certs_d();
    runtime().block_on(async {
        let r = image(&reg, "busybox:latest");
        let good = RegistryClient::new(options(&reg, Some(&root), good_creds(&reg))).unwrap();
        pull_and_check(&good, &r, &fx.busybox.image).await;

        let wrong =
            RegistryClient::new(options(&reg, Some(&root), Some(("rkt", "wrong")))).unwrap();
        let err = wrong.manifest(&r, "latest").await.unwrap_err();
        assert!(matches!(err, RegistryError::AuthFailed { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!(
                "authentication failed for {}: check credentials in ~/.docker/config.json or \
                 rkt's auth.d dockerAuth",
                reg.host()
            )
        );

        let anonymous = RegistryClient::new(options(&reg, Some(&root), None)).unwrap();
        let err = anonymous.manifest(&r, "latest").await.unwrap_err();
        assert!(matches!(err, RegistryError::AuthRequired { .. }), "{err}");
    });
}

#[test]
fn token_auth_registry() {
    let fx = Fixtures::get();
    let reg = Registry::start(RegistryOptions::token());
    reg.push_fixture("busybox:latest", "busybox");
    reg.push_fixture("multi:latest", "multiarch");
    let (_tmp, root) = certs_d();
    // Credentials go to a plain-http token server only with --insecure-options=http.
    let plain_realm = reg.token_realm().unwrap().starts_with("http://");
    let token_opts = |creds| ClientOptions {
        allow_http: plain_realm,
        ..options(&reg, Some(&root), creds)
    };
    runtime().block_on(async {
        let r = image(&reg, "busybox:latest");
        if plain_realm {
            let strict = RegistryClient::new(options(&reg, Some(&root), good_creds(&reg)));
            let err = strict.unwrap().manifest(&r, "latest").await.unwrap_err();
            assert!(matches!(err, RegistryError::BadRealm { .. }), "{err}");
            assert!(err.to_string().contains("--insecure-options=http"), "{err}");
        }
        let before = reg.tokens_issued();
        // The token server lives on another port; the registry's certs.d CA vouches for it.
        let good = RegistryClient::new(token_opts(good_creds(&reg))).unwrap();
        pull_and_check(&good, &r, &fx.busybox.image).await;
        assert_eq!(
            reg.tokens_issued() - before,
            1,
            "one token serves the whole pull of one repository"
        );
        // Another repository needs a token of its own scope.
        let multi = image(&reg, "multi:latest");
        let top = good.manifest(&multi, "latest").await.unwrap();
        assert_eq!(top.digest, fx.multiarch.index.digest);
        assert_eq!(reg.tokens_issued() - before, 2);

        let refused_before = reg.tokens_refused();
        let wrong = RegistryClient::new(token_opts(Some(("rkt", "wrong")))).unwrap();
        let err = wrong.manifest(&r, "latest").await.unwrap_err();
        assert!(matches!(err, RegistryError::AuthFailed { .. }), "{err}");
        assert!(err.to_string().contains("~/.docker/config.json"), "{err}");
        assert!(reg.tokens_refused() > refused_before);
    });
}

/// A blob that does not hash to its digest (corrupted in the registry's storage) is refused
/// when read whole; streamed, it is the caller's hashing that catches it.
#[test]
fn corrupted_blob_is_refused() {
    let fx = Fixtures::get();
    let evil = fx
        .adversarial
        .iter()
        .find(|a| a.kind == AdversarialKind::BlobDigestMismatch)
        .unwrap();
    let tampered = evil.tampered_blob.as_ref().unwrap().digest.clone();
    let reg = Registry::start(RegistryOptions::plain());
    reg.push_fixture("evil:latest", "adversarial/blob-digest-mismatch");
    runtime().block_on(async {
        let c = RegistryClient::new(options(&reg, None, None)).unwrap();
        let r = image(&reg, "evil:latest");
        let m = c.manifest(&r, "latest").await.unwrap();
        assert_eq!(m.digest, evil.image.image.manifest.digest);
        let manifest: Manifest = serde_json::from_slice(&m.bytes).unwrap();
        let d = manifest
            .layers
            .iter()
            .find(|d| d.digest == tampered)
            .unwrap();
        assert!(
            d.size <= rkt_types::MAX_DOCUMENT_BYTES,
            "the tampered layer is small"
        );
        let err = c.blob_bytes(&r, d).await.unwrap_err();
        assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
        // The intact base layer reads fine.
        let base = &manifest.layers[0];
        assert_ne!(base.digest, tampered);
        let mut s = c.blob_stream(&r, base).await.unwrap();
        let mut h = Hasher::new(base.digest.algorithm());
        while let Some(chunk) = s.next().await {
            h.update(&chunk.unwrap());
        }
        assert_eq!(h.finish(), base.digest);
    });
}
