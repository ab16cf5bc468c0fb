//! Reading the run request from the pod directory and checking it before anything is done
//! with it, so a bad request fails with a clear message and leaves nothing behind.

use std::collections::HashSet;
use std::path::{Component, Path};

use crate::abi::{REQUEST_FILE, RunRequest, Stdio, VolumeKind};
use crate::ns::error::Stage1Error;

/// The most a request may weigh; a real one is a few KiB.
const MAX_REQUEST_BYTES: u64 = 16 << 20;

/// Reads, parses and checks `<pod_dir>/stage1/request.json`.
pub fn load(pod_dir: &Path) -> Result<RunRequest, Stage1Error> {
    let path = pod_dir.join(REQUEST_FILE);
    let bytes = read_capped(&path).map_err(|source| Stage1Error::ReadRequest {
        path: path.clone(),
        source,
    })?;
    let req = RunRequest::parse(&bytes).map_err(|source| Stage1Error::Request { path, source })?;
    validate(&req)?;
    Ok(req)
}

fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    // Sized up front: read_to_end alone starts at 32 bytes and doubles, a dozen reads here.
    let size = file.metadata()?.len().min(MAX_REQUEST_BYTES + 1);
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0) + 1);
    file.take(MAX_REQUEST_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_REQUEST_BYTES {
        return Err(std::io::Error::other(format!(
            "longer than {MAX_REQUEST_BYTES} bytes"
        )));
    }
    Ok(bytes)
}

/// Whether the pod's single app gets the caller's terminal.
pub fn is_interactive(req: &RunRequest) -> bool {
    req.interactive || req.apps.iter().any(|a| a.stdio == Stdio::Interactive)
}

/// Checks what the types cannot say.
pub fn validate(req: &RunRequest) -> Result<(), Stage1Error> {
    let bad = |m: String| Err(Stage1Error::Invalid(m));
    if req.apps.is_empty() {
        return bad("the pod has no app".into());
    }
    if req.hostname.is_empty() || req.hostname.len() > 64 {
        return bad(format!(
            "hostname {:?} must have 1 to 64 characters",
            req.hostname
        ));
    }
    if is_interactive(req) && req.apps.len() != 1 {
        return bad(format!(
            "an interactive pod must have exactly one app, this one has {}",
            req.apps.len()
        ));
    }
    let mut volumes = HashSet::new();
    for v in &req.volumes {
        if !volumes.insert(v.name.as_str()) {
            return bad(format!("volume {:?} is defined twice", v.name));
        }
        rkt_types::name::validate_ac_name(&v.name)
            .map_err(|e| Stage1Error::Invalid(format!("volume name {:?}: {e}", v.name)))?;
        if let VolumeKind::Host { source, .. } = &v.kind
            && !source.is_absolute()
        {
            return bad(format!(
                "the source {} of volume {:?} is not an absolute path",
                source.display(),
                v.name
            ));
        }
    }
    let mut names = HashSet::new();
    for app in &req.apps {
        if !names.insert(app.name.as_str()) {
            return bad(format!("two apps are named {:?}", app.name));
        }
        rkt_types::name::validate_ac_name(&app.name)
            .map_err(|e| Stage1Error::Invalid(format!("app name {:?}: {e}", app.name)))?;
        let ctx = |m: &str| format!("app {:?}: {m}", app.name);
        if app.exec.is_empty() || app.exec[0].is_empty() {
            return bad(ctx("no command to run (exec is empty)"));
        }
        if app.layers.is_empty() {
            return bad(ctx("no layers"));
        }
        if let Some(l) = app.layers.iter().find(|l| !l.is_absolute()) {
            return bad(ctx(&format!(
                "layer {} is not an absolute path",
                l.display()
            )));
        }
        if !app.working_dir.is_empty() && !inside_path(&app.working_dir) {
            return bad(ctx(&format!(
                "working directory {:?} must be an absolute path without ..",
                app.working_dir
            )));
        }
        for m in &app.mounts {
            if !volumes.contains(m.volume.as_str()) {
                return bad(ctx(&format!(
                    "mounts volume {:?}, which the pod does not define",
                    m.volume
                )));
            }
            if !inside_path(&m.path) || m.path == "/" {
                return bad(ctx(&format!(
                    "mount path {:?} must be an absolute path below / without ..",
                    m.path
                )));
            }
        }
        if app.env.iter().any(|(k, _)| k.is_empty() || k.contains('=')) {
            return bad(ctx("an environment variable name is empty or contains '='"));
        }
    }
    Ok(())
}

/// An absolute path with no `..` (it is resolved inside the app's root anyway; this catches
/// mistakes early).
fn inside_path(p: &str) -> bool {
    let p = Path::new(p);
    p.is_absolute() && !p.components().any(|c| c == Component::ParentDir)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::abi::{AppRequest, MountRequest, NetMode, Volume};
    use crate::caps::CapSet;

    pub(crate) fn app(name: &str) -> AppRequest {
        AppRequest {
            name: name.into(),
            image_id: "sha256:0".into(),
            image_name: String::new(),
            layers: vec!["/l".into()],
            exec: vec!["/bin/sh".into()],
            env: vec![],
            working_dir: String::new(),
            user: String::new(),
            group: String::new(),
            supplementary_gids: vec![],
            readonly_rootfs: false,
            mounts: vec![],
            caps: CapSet::rkt_default(),
            seccomp: None,
            masked_paths: true,
            limits: Default::default(),
            stdio: Stdio::Log,
            annotations: vec![],
        }
    }

    fn req(apps: Vec<AppRequest>) -> RunRequest {
        RunRequest {
            version: 1,
            uuid: "u".into(),
            hostname: "h".into(),
            debug: false,
            net: NetMode::Host,
            ipc_host: false,
            hosts: None,
            resolv_conf: None,
            hosts_from_host: false,
            resolv_conf_from_host: false,
            ignore_network_dns: false,
            interactive: false,
            volumes: vec![],
            apps,
        }
    }

    fn invalid(r: &RunRequest) -> String {
        match validate(r) {
            Err(Stage1Error::Invalid(m)) => m,
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn a_plain_request_passes() {
        validate(&req(vec![app("a"), app("b")])).unwrap();
    }

    #[test]
    fn mistakes_are_named() {
        assert!(invalid(&req(vec![])).contains("no app"));
        assert!(invalid(&req(vec![app("a"), app("a")])).contains("two apps"));
        assert!(invalid(&req(vec![app("A_")])).contains("app name"));
        let mut a = app("a");
        a.exec.clear();
        assert!(invalid(&req(vec![a])).contains("exec is empty"));
        let mut a = app("a");
        a.layers = vec!["rel".into()];
        assert!(invalid(&req(vec![a])).contains("not an absolute path"));
        let mut a = app("a");
        a.mounts.push(MountRequest {
            volume: "v".into(),
            path: "/data".into(),
            read_only: false,
        });
        assert!(invalid(&req(vec![a.clone()])).contains("does not define"));
        let mut r = req(vec![a.clone()]);
        r.volumes.push(Volume {
            name: "v".into(),
            kind: VolumeKind::Empty {
                mode: 0o755,
                uid: 0,
                gid: 0,
            },
        });
        validate(&r).unwrap();
        r.apps[0].mounts[0].path = "/data/../..".into();
        assert!(invalid(&r).contains("without .."));
        let mut r = req(vec![app("a"), app("b")]);
        r.interactive = true;
        assert!(invalid(&r).contains("exactly one app"));
    }
}
