//! `rkt image export` (OCI archives that skopeo and rkt read back, ACIs byte for byte) and
//! `rkt image verify` (catches a changed layer tree or blob), end to end.

mod e2e_local_support;

use std::fs;
use std::process::Command;

use e2e_local_support::*;
use rkt_tests::rkt::Rkt;
use rkt_types::Digest;
use serde_json::Value;

/// `skopeo inspect ARGS…` as JSON, with a private HOME.
fn skopeo_inspect(args: &[&str]) -> Value {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new("skopeo")
        .arg("inspect")
        .args(args)
        .env("HOME", home.path())
        .output()
        .expect("skopeo is not installed; run scripts/install.sh --tests");
    assert!(
        out.status.success(),
        "skopeo inspect {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn an_oci_archive_export_reads_back_as_the_same_image() {
    let fx = fx();
    let sources = [
        (
            oci(&fx.busybox),
            "oci",
            Some(&fx.busybox.image.manifest.digest),
        ),
        // The archive has no manifest of its own; the one rkt made is what the export carries.
        (
            format!("docker-archive:{}", fx.docker_archive.path.display()),
            "docker",
            None,
        ),
    ];
    for (src, format, manifest_digest) in sources {
        let rkt = Rkt::new();
        let id = fetch1(&rkt, &src);
        let names = names_of(&rkt, &id);
        let out = rkt.dir().join("exported.tar");
        rkt.ok(&["image", "export", id.as_str(), &out.to_string_lossy()]);

        let stored = rkt.ok(&["image", "cat-manifest", id.as_str()]).stdout;
        let stored = stored.strip_suffix('\n').unwrap_or(&stored);
        let stored_digest = Digest::sha256_of(stored.as_bytes());
        if let Some(d) = manifest_digest {
            assert_eq!(&stored_digest, d);
        }
        let v = skopeo_inspect(&[&format!("oci-archive:{}", out.display())]);
        assert_eq!(v["Digest"], stored_digest.to_string(), "{src}: {v}");
        assert_eq!(v["Layers"].as_array().unwrap().len(), 2, "{src}: {v}");
        let config = skopeo_inspect(&["--config", &format!("oci-archive:{}", out.display())]);
        assert_eq!(config["architecture"], fx.architecture.as_str());

        let again = Rkt::new();
        let id2 = fetch1(&again, format!("oci-archive:{}", out.display()));
        assert_eq!(id2, id, "{src}: re-import gives the same id");
        assert_eq!(names_of(&again, &id2), names, "{src}: the name travels");
        assert_eq!(listed(&again, &id2).unwrap()["format"], format);
        let v = again.ok(&["image", "verify", id2.as_str()]);
        assert!(v.stdout.contains("OK"), "{v}");
    }
}

#[test]
fn an_aci_export_is_the_uncompressed_original() {
    let fx = fx();
    let plain = fs::read(&fx.aci.plain).unwrap();
    let rkt = Rkt::new();
    let id = fetch1(&rkt, &fx.aci.xz);
    let out = rkt.dir().join("busybox.aci");
    rkt.ok(&["image", "export", id.as_str(), &out.to_string_lossy()]);
    assert!(
        fs::read(&out).unwrap() == plain,
        "export differs from busybox.aci"
    );
    let again = Rkt::new();
    assert_eq!(fetch1(&again, &out), id);
}

#[test]
fn export_overwrites_only_when_asked_and_only_in_a_matching_format() {
    let fx = fx();
    let rkt = Rkt::new();
    let oci_id = fetch1(&rkt, oci(&fx.busybox));
    let aci_id = fetch1(&rkt, &fx.aci.gzip);
    let dir = rkt.dir().join("exports");
    fs::create_dir(&dir).unwrap();
    let target = dir.join("image.tar");
    fs::write(&target, b"precious").unwrap();
    let t = target.to_string_lossy().into_owned();

    let out = fail(&rkt, &["image", "export", oci_id.as_str(), &t]);
    assert!(out.stderr.contains("--overwrite"), "{out}");
    assert_eq!(fs::read(&target).unwrap(), b"precious");

    rkt.ok(&["image", "export", "--overwrite", oci_id.as_str(), &t]);
    assert_ne!(fs::read(&target).unwrap(), b"precious");
    let v = skopeo_inspect(&[&format!("oci-archive:{t}")]);
    assert_eq!(v["Digest"], fx.busybox.image.manifest.digest.to_string());

    let aci_as_oci = dir.join("aci.tar");
    let out = fail(
        &rkt,
        &[
            "image",
            "export",
            "--format=oci",
            aci_id.as_str(),
            &aci_as_oci.to_string_lossy(),
        ],
    );
    assert!(out.stderr.contains("appc"), "{out}");
    let out = fail(
        &rkt,
        &[
            "image",
            "export",
            "--format=aci",
            oci_id.as_str(),
            &dir.join("oci.aci").to_string_lossy(),
        ],
    );
    assert!(out.stderr.contains("OCI archive"), "{out}");
    fail(
        &rkt,
        &[
            "image",
            "export",
            "sha256:0000",
            &dir.join("x").to_string_lossy(),
        ],
    );
    let left: Vec<_> = entries(&dir);
    assert_eq!(left, [target], "no partial or temp files left behind");
}

#[test]
fn verify_names_a_changed_layer_tree_and_a_damaged_blob() {
    let fx = fx();
    let rkt = Rkt::new();
    let id = fetch1(&rkt, oci(&fx.busybox));
    let aci = fetch1(&rkt, &fx.aci.plain);
    let out = rkt.ok(&["image", "verify", id.as_str(), aci.as_str()]);
    assert_eq!(out.stdout.matches(": OK").count(), 2, "{out}");

    let base = &fx.busybox.image.diff_ids[0];
    let file = layer_dir(&rkt, base).join("tree/etc/os-release");
    let mut content = fs::read(&file).unwrap();
    content.extend_from_slice(b"TAMPERED=1\n");
    fs::write(&file, content).unwrap();
    let out = fail(&rkt, &["image", "verify", id.as_str(), aci.as_str()]);
    assert!(out.stdout.contains(&format!("{id}: FAILED")), "{out}");
    let bad: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains("layer tree"))
        .collect();
    assert_eq!(bad.len(), 1, "only the changed layer: {out}");
    assert!(bad[0].contains(&base.to_string()), "names the layer: {out}");
    assert!(out.stdout.contains(&format!("{aci}: OK")), "{out}");

    let top_blob = blob_file(&rkt, &fx.busybox.image.layers[1].digest);
    let mut blob = fs::read(&top_blob).unwrap();
    blob[0] ^= 0xff;
    fs::write(&top_blob, blob).unwrap();
    let out = fail(&rkt, &["image", "verify", id.as_str()]);
    assert!(
        out.stdout.lines().any(|l| l.contains("layer blob")
            && l.contains(&fx.busybox.image.layers[1].digest.to_string())),
        "names the blob: {out}"
    );
}
