use rkt_types::appc::{Isolator, MountPoint};
use rkt_types::image::ImageConfig;
use rkt_types::pod_manifest::{PodImage, PodMount};
use rkt_types::{Digest, ImageFormat, Platform};

use super::*;
use crate::build::{ResolvedApp, build};

fn image() -> ImageRecord {
    ImageRecord {
        id: Digest::sha256_of(b"img"),
        format: ImageFormat::Oci,
        manifest: Digest::sha256_of(b"m"),
        config_blob: Digest::sha256_of(b"c"),
        platform: Platform::host(),
        config: ImageConfig {
            entrypoint: vec!["/bin/sh".into(), "-c".into()],
            cmd: vec!["echo image".into()],
            env: vec![
                ("PATH".into(), "/bin".into()),
                ("FROM".into(), "image".into()),
            ],
            user: "1000".into(),
            working_dir: "/home".into(),
            mount_points: vec![MountPointSpec {
                name: "data".into(),
                path: "/data".into(),
                read_only: false,
            }],
            ..ImageConfig::default()
        },
        layers: Vec::new(),
    }
}

fn nv(n: &str, v: &str) -> NameValue {
    NameValue {
        name: n.into(),
        value: v.into(),
    }
}

fn manifest(app: Option<App>) -> PodManifest {
    let mut m = PodManifest::new();
    m.apps.push(PodApp {
        name: "web".into(),
        image: PodImage {
            name: String::new(),
            id: "sha256:abcd".into(),
            labels: vec![],
        },
        app,
        read_only_root_fs: true,
        mounts: vec![PodMount {
            volume: "scratch".into(),
            path: "/scratch".into(),
        }],
        annotations: vec![nv("team", "a")],
    });
    m.volumes = vec![
        PodVolume {
            name: "scratch".into(),
            kind: "empty".into(),
            source: None,
            read_only: None,
            recursive: None,
            mode: Some("0700".into()),
            uid: Some(7),
            gid: None,
        },
        PodVolume {
            name: "data".into(),
            kind: "host".into(),
            source: Some("/srv".into()),
            read_only: Some(true),
            recursive: None,
            mode: None,
            uid: None,
            gid: None,
        },
    ];
    m.annotations = vec![nv("pod-note", "x")];
    m
}

/// What build() makes of a manifest's inputs, with `image()` as every app's image.
fn built(m: &PodManifest) -> (RunRequest, PodManifest) {
    let (spec, apps) = to_inputs(m, &PodSpec::default(), &[], |_| Ok(image())).unwrap();
    let resolved: Vec<ResolvedApp> = apps
        .into_iter()
        .map(|a| ResolvedApp {
            spec: a.spec,
            image: a.image,
            image_name: a.image_name,
            layers: vec!["/l".into()],
        })
        .collect();
    build("u", &spec, &resolved).unwrap()
}

#[test]
fn the_app_section_overrides_the_image_field_by_field() {
    let app = App {
        exec: vec!["/bin/echo".into(), "manifest".into()],
        user: "0".into(),
        supplementary_gids: vec![5],
        environment: vec![nv("FROM", "manifest")],
        isolators: vec![Isolator {
            name: "resource/memory".into(),
            value: serde_json::json!({"limit": "64Mi"}),
        }],
        ..App::default()
    };
    let (req, _) = built(&manifest(Some(app)));
    let a = &req.apps[0];
    assert_eq!(a.name, "web");
    assert_eq!(a.exec, ["/bin/echo", "manifest"]);
    assert_eq!(a.user, "0");
    assert_eq!(a.supplementary_gids, [5]);
    // Left empty in the section: the image's.
    assert_eq!(a.working_dir, "/home");
    // The section's environment replaces the image's.
    assert!(a.env.contains(&("FROM".into(), "manifest".into())));
    assert!(!a.env.iter().any(|(k, _)| k == "PATH"));
    assert_eq!(a.limits.memory, Some(64 << 20));
    assert!(a.readonly_rootfs);
    assert_eq!(a.annotations, [("team".to_owned(), "a".to_owned())]);
    // The explicit mount, then the image's mount point whose name is a pod volume.
    let mounts: Vec<(&str, &str, bool)> = a
        .mounts
        .iter()
        .map(|m| (m.volume.as_str(), m.path.as_str(), m.read_only))
        .collect();
    assert_eq!(
        mounts,
        [("scratch", "/scratch", false), ("data", "/data", false)]
    );
    assert_eq!(
        req.volumes[0].kind,
        VolumeKind::Empty {
            mode: 0o700,
            uid: 7,
            gid: 0
        }
    );
    assert_eq!(
        req.volumes[1].kind,
        VolumeKind::Host {
            source: "/srv".into(),
            read_only: true,
            recursive: true
        }
    );
}

#[test]
fn mount_points_in_the_section_replace_the_images() {
    let app = App {
        mount_points: vec![MountPoint {
            name: "data".into(),
            path: "/elsewhere".into(),
            read_only: true,
        }],
        ..App::default()
    };
    let (req, _) = built(&manifest(Some(app)));
    let a = &req.apps[0];
    assert_eq!(a.exec, ["/bin/sh", "-c", "echo image"]);
    assert!(
        a.mounts
            .iter()
            .any(|m| m.path == "/elsewhere" && m.read_only && m.volume == "data")
    );
    assert!(!a.mounts.iter().any(|m| m.path == "/data"));
}

#[test]
fn the_written_manifest_is_the_given_one_completed() {
    // A full app section: written as given, apart from the resolved image.
    let app = App {
        exec: vec!["/bin/true".into()],
        user: "0".into(),
        group: "0".into(),
        environment: vec![nv("A", "1")],
        ..App::default()
    };
    let given = manifest(Some(app));
    let (_, b) = built(&given);
    let resolved = [(image().id.to_string(), "localhost/img:latest".to_owned())];
    let out = completed(&given, &b, &resolved);
    let mut expect = given.clone();
    expect.apps[0].image.id = image().id.to_string();
    expect.apps[0].image.name = "localhost/img:latest".into();
    // Fields the section left empty are filled with what runs.
    let filled = out.apps[0].app.as_ref().unwrap();
    assert_eq!(filled.working_directory, "/home");
    assert_eq!(filled.mount_points[0].path, "/data");
    let app = expect.apps[0].app.as_mut().unwrap();
    app.working_directory = "/home".into();
    app.mount_points = filled.mount_points.clone();
    assert_eq!(out, expect);

    // No app section: the built one.
    let given = manifest(None);
    let (_, b) = built(&given);
    let out = completed(&given, &b, &resolved);
    assert_eq!(out.apps[0].app, b.apps[0].app);
    assert_eq!(out.volumes, given.volumes);
    assert_eq!(out.annotations, given.annotations);
}

#[test]
fn volumes_take_the_flag_defaults_and_refuse_bad_modes() {
    let mut v = manifest(None).volumes[1].clone();
    v.read_only = None;
    assert_eq!(
        volume(&v).unwrap().kind,
        VolumeKind::Host {
            source: "/srv".into(),
            read_only: false,
            recursive: true
        }
    );
    let mut e = manifest(None).volumes[0].clone();
    e.mode = Some("999".into());
    assert!(volume(&e).unwrap_err().to_string().contains("octal"));
    e.mode = None;
    assert_eq!(
        volume(&e).unwrap().kind,
        VolumeKind::Empty {
            mode: 0o755,
            uid: 7,
            gid: 0
        }
    );
}

#[test]
fn an_empty_manifest_is_refused() {
    let m = PodManifest::new();
    let e = to_inputs(&m, &PodSpec::default(), &[], |_| Ok(image())).unwrap_err();
    assert!(e.to_string().contains("no apps"), "{e}");
}

#[test]
fn mounts_of_undeclared_volumes_are_refused() {
    let mut m = manifest(None);
    m.apps[0].mounts[0].volume = "nope".into();
    let e = to_inputs(&m, &PodSpec::default(), &[], |_| Ok(image())).unwrap_err();
    assert!(e.to_string().contains("volume \"nope\""), "{e}");
}
