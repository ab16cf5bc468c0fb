//! The fixtures are valid images: skopeo (containers/image, an independent implementation)
//! reads each one and reports the digests the harness promises.

mod common;

use std::io::Read;
use std::process::Command;

use common::{config_digest, inspect, raw_digest, reported_digest};
use rkt_tests::Fixtures;
use rkt_tests::fixtures::{AdversarialKind, OciLayout};
use rkt_types::Digest;

fn oci_ref(l: &OciLayout) -> String {
    format!("oci:{}", l.reference())
}

fn check_layout(l: &OciLayout) {
    let r = oci_ref(l);
    let v = inspect(&[&r]);
    assert_eq!(reported_digest(&v), l.image.manifest.digest, "{r}");
    assert_eq!(raw_digest(&[&r]), l.image.manifest.digest, "{r}");
    assert_eq!(config_digest(&[&r]), l.image.config.digest, "{r}");
    let layers: Vec<String> = serde_json::from_value(v["Layers"].clone()).unwrap();
    let want: Vec<String> = l
        .image
        .layers
        .iter()
        .map(|d| d.digest.to_string())
        .collect();
    assert_eq!(layers, want, "{r}");
    assert_eq!(v["Architecture"], l.image.architecture, "{r}");
}

#[test]
fn busybox_layouts_are_valid_and_share_one_config() {
    let fx = Fixtures::get();
    // skopeo's oci: transport skips index entries with Docker media types, so busybox_docker
    // is checked here by hand and through a registry in harness_registry.
    for l in [&fx.busybox, &fx.busybox_zstd, &fx.busybox_uncompressed] {
        check_layout(l);
    }
    let docker = &fx.busybox_docker;
    let m = std::fs::read(
        docker
            .path
            .join("blobs/sha256")
            .join(docker.image.manifest.digest.hex()),
    )
    .unwrap();
    assert_eq!(Digest::sha256_of(&m), docker.image.manifest.digest);
    match rkt_types::oci::ManifestDoc::parse(&m, None).unwrap() {
        rkt_types::oci::ManifestDoc::Image(m) => {
            assert_eq!(
                m.media_type.as_deref(),
                Some(rkt_types::oci::MEDIA_DOCKER_MANIFEST)
            );
            assert_eq!(m.config.media_type, rkt_types::oci::MEDIA_DOCKER_CONFIG);
            assert_eq!(m.layers[0].media_type, rkt_types::oci::MEDIA_DOCKER_LAYER);
            // The same layer bytes as the OCI gzip image.
            assert_eq!(m.layers[0].digest, fx.busybox.image.layers[0].digest);
        }
        other => panic!("expected a manifest, got {other:?}"),
    }
    for l in [
        &fx.busybox,
        &fx.busybox_zstd,
        &fx.busybox_uncompressed,
        &fx.busybox_docker,
    ] {
        assert_eq!(l.image.diff_ids, fx.busybox.image.diff_ids);
        assert_eq!(l.image.image_id(), fx.busybox.image.image_id());
    }
    // Uncompressed layers are their own diff ids.
    let raw: Vec<Digest> = fx
        .busybox_uncompressed
        .image
        .layers
        .iter()
        .map(|d| d.digest.clone())
        .collect();
    assert_eq!(raw, fx.busybox.image.diff_ids);
    assert_ne!(
        fx.busybox.image.manifest.digest,
        fx.busybox_zstd.image.manifest.digest
    );
}

#[test]
fn multiarch_index_selects_by_platform() {
    let fx = Fixtures::get();
    // The Docker manifest list is checked through a registry (harness_registry).
    for m in [&fx.multiarch] {
        let r = format!("oci:{}", m.reference());
        assert_eq!(raw_digest(&[&r]), m.index.digest, "{r}");
        for arch in ["amd64", "arm64"] {
            let img = m.for_arch(arch).unwrap();
            let v = inspect(&["--override-arch", arch, &r]);
            assert_eq!(v["Architecture"], arch);
            assert_eq!(v["Labels"]["rkt.fixture.platform"], arch);
            assert_eq!(img.labels["rkt.fixture.platform"], arch);
            assert_eq!(
                config_digest(&["--override-arch", arch, &r]),
                img.config.digest
            );
        }
        assert_ne!(m.images[0].config.digest, m.images[1].config.digest);
    }
}

#[test]
fn archives_are_valid() {
    let fx = Fixtures::get();
    let r = format!(
        "oci-archive:{}:{}",
        fx.oci_archive.path.display(),
        fx.oci_archive.tag
    );
    assert_eq!(
        reported_digest(&inspect(&[&r])),
        fx.oci_archive.image.manifest.digest
    );
    assert_eq!(config_digest(&[&r]), fx.oci_archive.image.config.digest);

    let d = &fx.docker_archive;
    let r = format!("docker-archive:{}", d.path.display());
    let v = inspect(&[&r]);
    assert_eq!(config_digest(&[&r]), d.config_digest);
    assert_eq!(d.config_digest, *fx.busybox.image.image_id());
    let layers: Vec<Digest> = serde_json::from_value(v["Layers"].clone()).unwrap();
    assert_eq!(layers, d.diff_ids);
    let mut ar = tar::Archive::new(std::fs::File::open(&d.path).unwrap());
    let mut manifest = String::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some("manifest.json") {
            e.read_to_string(&mut manifest).unwrap();
        }
    }
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(manifest[0]["RepoTags"], serde_json::json!(d.repo_tags));
}

#[test]
fn acis_decompress_with_system_tools_to_the_same_tar() {
    let fx = Fixtures::get();
    let aci = &fx.aci;
    let plain = std::fs::read(&aci.plain).unwrap();
    let mut h = rkt_types::digest::Hasher::new(rkt_types::Algorithm::Sha512);
    h.update(&plain);
    assert_eq!(h.finish(), aci.image_id);
    for (tool, path) in [("gzip", &aci.gzip), ("bzip2", &aci.bzip2), ("xz", &aci.xz)] {
        let out = Command::new(tool).arg("-dc").arg(path).output().unwrap();
        assert!(out.status.success(), "{tool} -dc {}", path.display());
        assert!(
            out.stdout == plain,
            "{tool} output differs from the plain ACI"
        );
    }
    let mut ar = tar::Archive::new(&plain[..]);
    let mut names = Vec::new();
    let mut manifest = String::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        if name == "manifest" {
            e.read_to_string(&mut manifest).unwrap();
        }
        names.push(name);
    }
    assert_eq!(names[0], "manifest");
    assert!(names.iter().any(|n| n == "rootfs/bin/busybox"));
    assert!(names.iter().any(|n| n == "rootfs/bin/sh"));
    let m: rkt_types::appc::ImageManifest = serde_json::from_str(&manifest).unwrap();
    assert_eq!(m.name, "example.com/busybox");
    assert_eq!(m.app.unwrap().mount_points[0].path, "/data");
}

#[test]
fn adversarial_images_carry_their_tricks() {
    let fx = Fixtures::get();
    for a in &fx.adversarial {
        let layer = a.image.image.layers.last().unwrap();
        let blob = a.image.path.join("blobs/sha256").join(layer.digest.hex());
        let bytes = std::fs::read(&blob).unwrap();
        assert_eq!(bytes.len() as u64, layer.size, "{}", a.kind.name());
        match a.kind {
            AdversarialKind::BlobDigestMismatch => {
                assert_ne!(Digest::sha256_of(&bytes), layer.digest);
                let t = a.tampered_blob.as_ref().unwrap();
                let pristine = std::fs::read(&t.pristine).unwrap();
                assert_eq!(Digest::sha256_of(&pristine), layer.digest);
            }
            AdversarialKind::ZipBomb => {
                assert_eq!(Digest::sha256_of(&bytes), layer.digest);
                assert!(bytes.len() < 4 << 20, "the bomb is {} bytes", bytes.len());
                // Stream it through a real gzip decoder: it expands as promised.
                let mut dec = flate2::read::GzDecoder::new(&bytes[..]);
                let mut buf = vec![0u8; 1 << 20];
                let mut total = 0u64;
                let mut h = rkt_types::digest::Hasher::new(rkt_types::Algorithm::Sha256);
                loop {
                    let n = dec.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                    total += n as u64;
                }
                assert_eq!(Some(total), a.expanded_size);
                assert_eq!(h.finish(), a.image.image.diff_ids[1]);
            }
            _ => {
                assert_eq!(Digest::sha256_of(&bytes), layer.digest, "{}", a.kind.name());
                let mut tar = Vec::new();
                flate2::read::GzDecoder::new(&bytes[..])
                    .read_to_end(&mut tar)
                    .unwrap();
                let diff = Digest::sha256_of(&tar);
                if a.kind == AdversarialKind::WrongDiffId {
                    assert_ne!(diff, a.image.image.diff_ids[1]);
                } else {
                    assert_eq!(diff, a.image.image.diff_ids[1], "{}", a.kind.name());
                }
                let names: Vec<String> = tar::Archive::new(&tar[..])
                    .entries()
                    .unwrap()
                    .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
                    .collect();
                let want = match a.kind {
                    AdversarialKind::PathTraversal => "../",
                    AdversarialKind::AbsolutePath => "/tmp/rkt-adversarial/",
                    AdversarialKind::SymlinkEscapeAbsolute
                    | AdversarialKind::SymlinkEscapeRelative => "escape/escaped",
                    AdversarialKind::HardlinkEscapeRelative
                    | AdversarialKind::HardlinkEscapeAbsolute => "canary-link",
                    AdversarialKind::DeviceNodes => "dev/mem",
                    AdversarialKind::OpaqueMisuse => "etc/.wh..wh..opq/",
                    AdversarialKind::WhiteoutDotDot => "etc/.wh...",
                    AdversarialKind::OverlayMarkers => "etc/passwd",
                    AdversarialKind::WrongDiffId => "etc/wrong-diff-id",
                    _ => unreachable!(),
                };
                assert!(
                    names.iter().any(|n| n.starts_with(want)),
                    "{}: no entry starting with {want:?} in {names:?}",
                    a.kind.name()
                );
            }
        }
        // skopeo reads every one of them (it does not unpack layers).
        if a.kind != AdversarialKind::BlobDigestMismatch {
            let r = oci_ref(&a.image);
            assert_eq!(
                reported_digest(&inspect(&[&r])),
                a.image.image.manifest.digest
            );
        }
    }
}

#[test]
fn adversarial_host_checks_catch_escapes() {
    let fx = Fixtures::get();
    let a = fx.adversarial(AdversarialKind::HardlinkEscapeAbsolute);
    a.prepare_host().unwrap();
    a.check_host().unwrap();
    std::fs::write(&a.canaries[0], "changed").unwrap();
    assert!(a.check_host().unwrap_err().contains("overwritten"));
    let s = fx.adversarial(AdversarialKind::SymlinkEscapeRelative);
    s.prepare_host().unwrap();
    std::fs::write(s.traps[0].join("escaped"), "x").unwrap();
    let err = s.check_host().unwrap_err();
    assert!(err.contains("was created") && err.contains("trap"), "{err}");
    s.prepare_host().unwrap();
    s.check_host().unwrap();
}

#[test]
fn fixtures_are_deterministic() {
    // A second build in a fresh cache gives the same digests.
    let fx = Fixtures::get();
    let tmp = tempfile::tempdir().unwrap();
    let again = Fixtures::build_in(tmp.path()).unwrap();
    assert_eq!(again.busybox.image, fx.busybox.image);
    assert_eq!(again.busybox_zstd.image, fx.busybox_zstd.image);
    assert_eq!(again.multiarch.index, fx.multiarch.index);
    assert_eq!(again.aci.image_id, fx.aci.image_id);
    assert_eq!(
        std::fs::read(&again.docker_archive.path).unwrap(),
        std::fs::read(&fx.docker_archive.path).unwrap()
    );
    for (a, b) in again.adversarial.iter().zip(&fx.adversarial) {
        assert_eq!(a.image.image, b.image.image, "{}", a.kind.name());
    }
}
