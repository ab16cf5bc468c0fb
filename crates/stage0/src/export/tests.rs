use super::*;

fn request(apps: &[&str]) -> RunRequest {
    let image = rkt_types::ImageRecord {
        id: Digest::sha256_of(b"i"),
        format: ImageFormat::Oci,
        manifest: Digest::sha256_of(b"m"),
        config_blob: Digest::sha256_of(b"c"),
        platform: rkt_types::Platform::host(),
        config: rkt_types::image::ImageConfig {
            entrypoint: vec!["/bin/true".into()],
            ..Default::default()
        },
        layers: Vec::new(),
    };
    let apps: Vec<crate::build::ResolvedApp> = apps
        .iter()
        .map(|n| crate::build::ResolvedApp {
            spec: crate::spec::AppSpec {
                name: Some((*n).to_owned()),
                ..Default::default()
            },
            image: image.clone(),
            image_name: "localhost/x:latest".into(),
            layers: Vec::new(),
        })
        .collect();
    crate::build::build("u", &crate::spec::PodSpec::default(), &apps)
        .unwrap()
        .0
}

#[test]
fn the_app_is_named_unless_the_pod_has_one() {
    let uuid = rkt_pod::Uuid::nil();
    let one = request(&["web"]);
    assert_eq!(choose_app(&one, None, &uuid).unwrap().name, "web");
    assert_eq!(choose_app(&one, Some("web"), &uuid).unwrap().name, "web");
    let e = choose_app(&one, Some("db"), &uuid).unwrap_err().to_string();
    assert!(e.contains("no app \"db\"") && e.contains("web"), "{e}");
    let two = request(&["web", "db"]);
    let e = choose_app(&two, None, &uuid).unwrap_err().to_string();
    assert!(e.contains("--app") && e.contains("web, db"), "{e}");
    assert_eq!(choose_app(&two, Some("db"), &uuid).unwrap().name, "db");
}

#[test]
fn ref_names() {
    let n = |name: &str, tag: &str| oci_ref_name(&rkt_store::ImageName::new(name, tag));
    assert_eq!(
        n("localhost/busybox", "latest"),
        "localhost/busybox-export:latest"
    );
    assert_eq!(
        n("docker.io/library/busybox", "1.36"),
        "docker.io/library/busybox-export:1.36"
    );
    assert_eq!(
        n("127.0.0.1:5000/app", "v1"),
        "127.0.0.1:5000/app-export:v1"
    );
}

#[test]
fn output_is_not_replaced_without_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.tar");
    std::fs::write(&dest, b"old").unwrap();
    let e = Output::create(&dest, false).err().unwrap().to_string();
    assert!(e.contains("--overwrite"), "{e}");
    let out = Output::create(&dest, true).unwrap();
    let mut w = out.writer().unwrap();
    w.write_all(b"new").unwrap();
    finish(w, &dest).unwrap();
    out.commit().unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), b"new");
    // Nothing is left beside it.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // A dropped output leaves nothing either.
    let other = dir.path().join("other.tar");
    drop(Output::create(&other, false).unwrap());
    assert!(!other.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn only_exited_pods_are_pinned_and_a_pinned_pod_cannot_be_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let pods = Pods::open(dir.path()).unwrap();

    let prepared = pods.create(None).unwrap().finish_prepared().unwrap();
    let e = PinnedPod::pin(&pods, &prepared.uuid().to_string())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("never ran"), "{e}");

    let running = pods.create(None).unwrap().into_running().unwrap();
    let uuid = running.uuid();
    running.write_file("marker", b"m").unwrap();
    let e = PinnedPod::pin(&pods, &uuid.to_string())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("is running"), "{e}");
    // The lock holder goes away: the pod has exited.
    drop(running);

    let pinned = PinnedPod::pin(&pods, &uuid.to_string()).unwrap();
    assert_eq!(
        std::fs::read(pinned.path.join("marker")).unwrap(),
        b"m",
        "the pinned path is the pod directory"
    );
    // rm and gc cannot take the pod while it is exported ...
    let h = pods.find(uuid).unwrap().unwrap();
    assert!(pods.lock_for_delete(&h).unwrap().is_none());
    // ... but gc may mark it, and the pinned path follows the move.
    assert_eq!(pods.mark_exited().unwrap().len(), 1);
    assert_eq!(
        pods.find(uuid).unwrap().unwrap().state(),
        PodState::ExitedGarbage
    );
    assert_eq!(std::fs::read(pinned.path.join("marker")).unwrap(), b"m");
    drop(pinned);
    assert!(pods.lock_for_delete(&h).unwrap().is_some());
}
