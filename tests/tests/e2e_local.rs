//! `rkt fetch` from local sources, end to end through the real binary: OCI layouts and
//! archives, `docker save` archives, plain paths with format detection, `file://`, and ACIs in
//! every compression. Each checks the printed id, the names recorded and the format.

mod e2e_local_support;

use e2e_local_support::*;
use rkt_tests::rkt::Rkt;

/// One local source and what `rkt fetch` must make of it.
struct Case {
    source: String,
    id: String,
    names: Vec<&'static str>,
    format: &'static str,
}

#[test]
fn local_sources_print_the_image_id_and_record_their_names() {
    let fx = fx();
    let bb = fx.busybox.image.image_id().to_string();
    let docker_archive = fx.docker_archive.path.display().to_string();
    let oci_archive = fx.oci_archive.path.display().to_string();
    let arm64 = fx
        .multiarch
        .for_arch("arm64")
        .unwrap()
        .image_id()
        .to_string();
    let cases = [
        Case {
            source: format!("oci:{}", fx.busybox.path.display()),
            id: bb.clone(),
            names: vec!["localhost/busybox:latest"],
            format: "oci",
        },
        Case {
            source: oci(&fx.busybox),
            id: bb.clone(),
            names: vec!["localhost/busybox:latest"],
            format: "oci",
        },
        Case {
            source: oci(&fx.busybox_docker),
            id: bb.clone(),
            names: vec!["localhost/busybox-docker:latest"],
            format: "docker",
        },
        Case {
            source: format!("oci-archive:{oci_archive}"),
            id: bb.clone(),
            names: vec!["localhost/busybox-oci-archive:latest"],
            format: "oci",
        },
        Case {
            source: format!("oci-archive:{oci_archive}:latest"),
            id: bb.clone(),
            names: vec!["localhost/busybox-oci-archive:latest"],
            format: "oci",
        },
        // RepoTags `busybox:latest`, normalised the Docker way.
        Case {
            source: format!("docker-archive:{docker_archive}"),
            id: fx.docker_archive.config_digest.to_string(),
            names: vec!["docker.io/library/busybox:latest"],
            format: "docker",
        },
        Case {
            source: format!("docker-archive:{docker_archive}:busybox:latest"),
            id: fx.docker_archive.config_digest.to_string(),
            names: vec!["docker.io/library/busybox:latest"],
            format: "docker",
        },
        // Plain paths: the format is detected from the content.
        Case {
            source: fx.busybox_zstd.path.display().to_string(),
            id: bb.clone(),
            names: vec!["localhost/busybox-zstd:latest"],
            format: "oci",
        },
        Case {
            source: fx.busybox_uncompressed.path.display().to_string(),
            id: bb.clone(),
            names: vec!["localhost/busybox-uncompressed:latest"],
            format: "oci",
        },
        Case {
            source: oci_archive.clone(),
            id: bb.clone(),
            names: vec!["localhost/busybox-oci-archive:latest"],
            format: "oci",
        },
        Case {
            source: docker_archive.clone(),
            id: fx.docker_archive.config_digest.to_string(),
            names: vec!["docker.io/library/busybox:latest"],
            format: "docker",
        },
        Case {
            source: format!("file://{docker_archive}"),
            id: fx.docker_archive.config_digest.to_string(),
            names: vec!["docker.io/library/busybox:latest"],
            format: "docker",
        },
        Case {
            source: format!("file://{}", fx.busybox.path.display()),
            id: bb.clone(),
            names: vec!["localhost/busybox:latest"],
            format: "oci",
        },
        // An index: the host's platform by default, another with --platform.
        Case {
            source: format!("oci:{}", fx.multiarch.reference()),
            id: bb.clone(),
            names: vec!["localhost/multiarch:latest"],
            format: "oci",
        },
    ];
    for c in &cases {
        let rkt = Rkt::new();
        let id = fetch1(&rkt, &c.source);
        assert_eq!(id, c.id, "id printed for {}", c.source);
        let img = listed(&rkt, &id).unwrap_or_else(|| panic!("{} not listed", c.source));
        assert_eq!(img["format"], c.format, "format of {}", c.source);
        assert_eq!(names_of(&rkt, &id), c.names, "names of {}", c.source);
        assert_eq!(listed_ids(&rkt).len(), 1, "{}", c.source);
        assert_eq!(
            entries(&rkt.store().join("tmp")),
            Vec::<std::path::PathBuf>::new(),
            "scratch left behind by {}",
            c.source
        );
    }

    let rkt = Rkt::new();
    let out = rkt.ok(&[
        "--insecure-options=image",
        "fetch",
        "--platform=linux/arm64",
        &format!("oci:{}", fx.multiarch.reference()),
    ]);
    assert_eq!(out.last_line(), arm64);
    assert_eq!(listed(&rkt, &arm64).unwrap()["platform"], "linux/arm64");
}

#[test]
fn a_missing_ref_or_repo_tag_is_an_error_naming_what_the_source_has() {
    let fx = fx();
    let rkt = Rkt::new();
    let out = fail(
        &rkt,
        &[
            "--insecure-options=image",
            "fetch",
            &format!("oci:{}:nope", fx.busybox.path.display()),
        ],
    );
    assert!(out.stderr.contains("\"nope\""), "{out}");
    assert!(out.stderr.contains("latest"), "lists what it has: {out}");
    let out = fail(
        &rkt,
        &[
            "--insecure-options=image",
            "fetch",
            &format!(
                "docker-archive:{}:busybox:nope",
                fx.docker_archive.path.display()
            ),
        ],
    );
    assert!(out.stderr.contains("busybox:latest"), "{out}");
    let out = fail(
        &rkt,
        &[
            "--insecure-options=image",
            "fetch",
            &format!("oci-archive:{}:v9", fx.oci_archive.path.display()),
        ],
    );
    assert!(out.stderr.contains("\"v9\""), "{out}");
    assert_store_empty(&rkt, "after refused references");
}

#[test]
fn acis_in_every_compression_are_one_image_with_the_sha512_id() {
    let fx = fx();
    let aci = &fx.aci;
    let want = aci.image_id.to_string();
    assert!(want.starts_with("sha512:"));
    let shared = Rkt::new();
    for (c, path) in aci.all() {
        // Each alone in a fresh store…
        let rkt = Rkt::new();
        let id = fetch1(&rkt, path);
        assert_eq!(id, want, "{c:?}");
        let img = listed(&rkt, &id).unwrap();
        assert_eq!(img["format"], "appc");
        assert_eq!(
            names_of(&rkt, &id),
            vec![format!("{}:{}", aci.name, aci.version)],
            "ACI name:version"
        );
        // …and all into one store: the same image, one tree.
        assert_eq!(fetch1(&shared, path), want, "{c:?} into a shared store");
    }
    let url = format!("file://{}", aci.xz.display());
    assert_eq!(fetch1(&shared, &url), want);
    assert_eq!(listed_ids(&shared), vec![want]);
    assert_eq!(layer_dirs(&shared).len(), 1, "one tree for one ACI");
}

#[test]
fn local_images_need_insecure_options_image() {
    let fx = fx();
    let rkt = Rkt::new();
    let sources = [
        oci(&fx.busybox),
        format!("oci-archive:{}", fx.oci_archive.path.display()),
        format!("docker-archive:{}", fx.docker_archive.path.display()),
        fx.busybox.path.display().to_string(),
        fx.aci.gzip.display().to_string(),
        format!("file://{}", fx.aci.plain.display()),
    ];
    for s in &sources {
        let out = fail(&rkt, &["fetch", s.as_str()]);
        assert!(
            out.stderr.contains("--insecure-options=image"),
            "the error says how to go on: {out}"
        );
        // `http` alone is not enough.
        let out = fail(&rkt, &["--insecure-options=http", "fetch", s.as_str()]);
        assert!(out.stderr.contains("--insecure-options=image"), "{out}");
    }
    assert_store_empty(&rkt, "after unverified fetches");
    assert_eq!(blob_files(&rkt), Vec::<std::path::PathBuf>::new());
}

#[test]
fn a_layer_shared_by_two_local_images_is_unpacked_once() {
    let fx = fx();
    let rkt = Rkt::new();
    let amd = fetch1(&rkt, oci(&fx.busybox));
    let arm = rkt
        .ok(&[
            "--insecure-options=image",
            "fetch",
            "--platform=linux/arm64",
            &format!("oci:{}", fx.multiarch.reference()),
        ])
        .last_line()
        .to_owned();
    assert_ne!(amd, arm);
    let arm_info = fx.multiarch.for_arch("arm64").unwrap();
    assert_eq!(
        arm_info.diff_ids, fx.busybox.image.diff_ids,
        "fixture premise"
    );
    let mut ids = listed_ids(&rkt);
    ids.sort();
    let mut want = vec![amd.clone(), arm.clone()];
    want.sort();
    assert_eq!(ids, want);
    let mut trees = layer_dirs(&rkt);
    trees.sort();
    let mut want_trees: Vec<_> = fx
        .busybox
        .image
        .diff_ids
        .iter()
        .map(|d| layer_dir(&rkt, d))
        .collect();
    want_trees.sort();
    assert_eq!(trees, want_trees, "one tree per distinct layer");
    for id in [&amd, &arm] {
        let out = rkt.ok(&["image", "verify", id.as_str()]);
        assert!(out.stdout.contains("OK"), "{out}");
    }
    // A third image whose layers are stored under another compression still shares them.
    let docker = fetch1(
        &rkt,
        format!("docker-archive:{}", fx.docker_archive.path.display()),
    );
    assert_eq!(docker, amd);
    assert_eq!(layer_dirs(&rkt).len(), 2);
}

#[test]
fn damaged_local_sources_are_refused_and_store_nothing() {
    let fx = fx();
    let rkt = Rkt::new();
    let scratch = rkt.dir().join("damaged");
    std::fs::create_dir(&scratch).unwrap();
    let cut = |src: &std::path::Path, name: &str, keep: f64| {
        let bytes = std::fs::read(src).unwrap();
        let p = scratch.join(name);
        std::fs::write(&p, &bytes[..(bytes.len() as f64 * keep) as usize]).unwrap();
        p.display().to_string()
    };
    // A layout missing its top layer blob.
    let layout = scratch.join("layout");
    copy_dir(&fx.busybox.path, &layout);
    let top = &fx.busybox.image.layers[1].digest;
    std::fs::remove_file(layout.join("blobs/sha256").join(top.hex())).unwrap();
    let cases = [
        (format!("oci:{}", layout.display()), top.to_string()),
        (
            format!("oci-archive:{}", cut(&fx.oci_archive.path, "oci.tar", 0.6)),
            "truncated".to_owned(),
        ),
        (
            format!(
                "docker-archive:{}",
                cut(&fx.docker_archive.path, "docker.tar", 0.6)
            ),
            "truncated".to_owned(),
        ),
        (
            cut(&fx.aci.gzip, "busybox.aci.gz", 0.5),
            "deflate".to_owned(),
        ),
        (cut(&fx.aci.xz, "busybox.aci.xz", 0.5), "layer".to_owned()),
        (
            cut(&fx.aci.plain, "notes.txt", 0.0),
            "not an OCI layout".to_owned(),
        ),
    ];
    for (src, needle) in &cases {
        let out = fail(&rkt, &["--insecure-options=image", "fetch", src.as_str()]);
        assert!(out.stderr.contains(needle.as_str()), "{src}: {out}");
        assert_store_empty(&rkt, src);
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}
