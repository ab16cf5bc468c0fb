use rkt_types::digest::Digest;
use rkt_types::image::ImageConfig;
use rkt_types::{ImageFormat, ImageRecord, Platform};

use super::*;

fn image(entrypoint: &[&str], cmd: &[&str], env: &[(&str, &str)]) -> ImageRecord {
    ImageRecord {
        id: Digest::sha256_of(b"img"),
        format: ImageFormat::Oci,
        manifest: Digest::sha256_of(b"m"),
        config_blob: Digest::sha256_of(b"c"),
        platform: Platform::host(),
        config: ImageConfig {
            entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..ImageConfig::default()
        },
        layers: Vec::new(),
    }
}

fn app(spec: AppSpec, img: ImageRecord) -> ResolvedApp {
    ResolvedApp {
        spec,
        image: img,
        image_name: "127.0.0.1:5000/busybox:latest".into(),
        layers: vec!["/l0".into()],
    }
}

fn kv(k: &str, v: &str) -> (String, String) {
    (k.into(), v.into())
}

#[test]
fn exec_override_rules_follow_docker() {
    let img = image(&["/bin/sh", "-c"], &["echo hi"], &[]);
    let pod = PodSpec::default();
    let run = |spec: AppSpec| {
        build("u", &pod, &[app(spec, img.clone())]).unwrap().0.apps[0]
            .exec
            .clone()
    };
    assert_eq!(run(AppSpec::default()), ["/bin/sh", "-c", "echo hi"]);
    let args = AppSpec {
        args: Some(vec!["echo bye".into()]),
        ..AppSpec::default()
    };
    assert_eq!(run(args), ["/bin/sh", "-c", "echo bye"]);
    let exec = AppSpec {
        exec: Some("/bin/true".into()),
        ..AppSpec::default()
    };
    assert_eq!(run(exec), ["/bin/true"]);
    let both = AppSpec {
        exec: Some("/bin/echo".into()),
        args: Some(vec!["x".into()]),
        ..AppSpec::default()
    };
    assert_eq!(run(both), ["/bin/echo", "x"]);
    let none = image(&[], &[], &[]);
    assert!(build("u", &pod, &[app(AppSpec::default(), none)]).is_err());
}

#[test]
fn environment_precedence() {
    let img = image(&["/bin/true"], &[], &[("A", "image"), ("B", "image")]);
    let pod = PodSpec {
        inherit_env: Some(vec![kv("A", "parent"), kv("P", "parent")]),
        set_env_files: vec![vec![kv("B", "file"), kv("C", "file")]],
        set_env: vec![kv("C", "set-env")],
        ..PodSpec::default()
    };
    let spec = AppSpec {
        environment: vec![kv("D", "environment")],
        ..AppSpec::default()
    };
    let (req, _) = build("u", &pod, &[app(spec, img)]).unwrap();
    let env = &req.apps[0].env;
    let get = |k: &str| env.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
    assert_eq!(get("A"), Some("image"));
    assert_eq!(get("P"), Some("parent"));
    assert_eq!(get("B"), Some("file"));
    assert_eq!(get("C"), Some("set-env"));
    assert_eq!(get("D"), Some("environment"));
    assert_eq!(get("AC_APP_NAME"), Some("busybox"));
}

#[test]
fn names_hosts_dns_and_errors() {
    let img = image(&["/bin/true"], &[], &[]);
    let pod = PodSpec {
        hosts_entries: vec!["10.0.0.1=db,10.0.0.2=cache".into()],
        dns: vec!["10.0.0.53".into()],
        dns_search: vec!["example.com".into()],
        ..PodSpec::default()
    };
    let (req, manifest) = build("1234", &pod, &[app(AppSpec::default(), img.clone())]).unwrap();
    assert_eq!(req.hostname, "rkt-1234");
    assert!(req.hosts.as_deref().unwrap().contains("10.0.0.2\tcache"));
    assert_eq!(
        req.resolv_conf.as_deref(),
        Some("nameserver 10.0.0.53\nsearch example.com\n")
    );
    assert_eq!(manifest.apps[0].name, "busybox");
    // Two apps from one image need distinct names.
    let two = [
        app(AppSpec::default(), img.clone()),
        app(AppSpec::default(), img.clone()),
    ];
    assert!(build("u", &PodSpec::default(), &two).is_err());
    let interactive = PodSpec {
        interactive: true,
        ..PodSpec::default()
    };
    assert!(build("u", &interactive, &two).is_err());
    let bad_mount = AppSpec {
        mounts: vec![crate::volumes::MountSpec {
            volume: "nope".into(),
            target: "/x".into(),
        }],
        ..AppSpec::default()
    };
    assert!(build("u", &PodSpec::default(), &[app(bad_mount, img)]).is_err());
}

#[test]
fn default_names() {
    assert_eq!(
        default_app_name("docker://127.0.0.1:5000/team/web:1.0", ""),
        "web"
    );
    assert_eq!(default_app_name("./my_app.aci", ""), "my-app");
    assert_eq!(
        default_app_name("sha256:abcd", "example.com/etcd:v3"),
        "etcd"
    );
    assert_eq!(default_app_name("___", ""), "app");
}

#[test]
fn insecure_capabilities_grant_what_rkt_holds() {
    use rkt_stage1::caps::CapSet;
    let img = image(&["/bin/true"], &[], &[]);
    let held = CapSet::parse_list("CHOWN,KILL,NET_ADMIN", "test").unwrap();
    let mut pod = PodSpec {
        held_caps: Some(held),
        ..PodSpec::default()
    };
    pod.insecure.capabilities = true;
    let (req, _) = build("u", &pod, &[app(AppSpec::default(), img.clone())]).unwrap();
    assert_eq!(req.apps[0].caps, held);
    // Without the option the held set changes nothing.
    pod.insecure.capabilities = false;
    let (req, _) = build("u", &pod, &[app(AppSpec::default(), img)]).unwrap();
    assert_eq!(req.apps[0].caps, CapSet::rkt_default());
    assert!(super::held_capabilities().is_some());
}
