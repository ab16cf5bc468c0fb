//! `--volume` and `--mount`, as rkt spells them.

use std::path::PathBuf;

use rkt_stage1::abi::{Volume, VolumeKind};
use rkt_types::name::validate_ac_name;

/// Why a volume or mount flag was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {flag} {value:?}: {reason}")]
pub struct VolumeError {
    flag: &'static str,
    value: String,
    reason: String,
}

/// `--mount volume=NAME,target=PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// The volume.
    pub volume: String,
    /// Absolute path in the app.
    pub target: String,
}

fn bool_value(v: &str) -> Option<bool> {
    match v {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// Parses `NAME,kind=host,source=PATH[,readOnly=BOOL][,recursive=BOOL]` or
/// `NAME,kind=empty[,mode=0755][,uid=N][,gid=N]`.
pub fn parse_volume(s: &str) -> Result<Volume, VolumeError> {
    let err = |reason: String| VolumeError {
        flag: "--volume",
        value: s.to_owned(),
        reason,
    };
    let mut parts = s.split(',');
    let name = parts.next().unwrap_or_default().to_owned();
    validate_ac_name(&name).map_err(|e| err(e.to_string()))?;
    let (mut kind, mut source, mut ro, mut rec, mut mode, mut uid, mut gid) =
        (None, None, false, true, 0o755, 0, 0);
    for p in parts {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| err(format!("{p:?} is not KEY=VALUE")))?;
        let bad = |what: &str| err(format!("{k}={v:?} is not a valid {what}"));
        match k {
            "kind" => kind = Some(v.to_owned()),
            "source" => source = Some(v.to_owned()),
            "readOnly" | "readonly" => ro = bool_value(v).ok_or_else(|| bad("boolean"))?,
            "recursive" => rec = bool_value(v).ok_or_else(|| bad("boolean"))?,
            "mode" => {
                mode = u32::from_str_radix(v, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| bad("octal mode"))?
            }
            "uid" => uid = v.parse().map_err(|_| bad("uid"))?,
            "gid" => gid = v.parse().map_err(|_| bad("gid"))?,
            other => return Err(err(format!("unknown key {other:?}"))),
        }
    }
    let kind = match kind.as_deref() {
        Some("host") => {
            let source = source.ok_or_else(|| err("kind=host needs source=PATH".into()))?;
            if !source.starts_with('/') {
                return Err(err(format!("source {source:?} is not an absolute path")));
            }
            VolumeKind::Host {
                source: PathBuf::from(source),
                read_only: ro,
                recursive: rec,
            }
        }
        Some("empty") => {
            if source.is_some() {
                return Err(err("kind=empty takes no source".into()));
            }
            VolumeKind::Empty { mode, uid, gid }
        }
        Some(k) => return Err(err(format!("kind {k:?} is not host or empty"))),
        None => return Err(err("kind=host or kind=empty is required".into())),
    };
    Ok(Volume { name, kind })
}

/// Parses `volume=NAME,target=PATH`.
pub fn parse_mount(s: &str) -> Result<MountSpec, VolumeError> {
    let err = |reason: String| VolumeError {
        flag: "--mount",
        value: s.to_owned(),
        reason,
    };
    let (mut volume, mut target) = (None, None);
    for p in s.split(',') {
        match p.split_once('=') {
            Some(("volume", v)) => volume = Some(v.to_owned()),
            Some(("target", t)) => target = Some(t.to_owned()),
            _ => return Err(err(format!("{p:?} is not volume=NAME or target=PATH"))),
        }
    }
    let volume = volume.ok_or_else(|| err("volume=NAME is required".into()))?;
    validate_ac_name(&volume).map_err(|e| err(e.to_string()))?;
    let target = target.ok_or_else(|| err("target=PATH is required".into()))?;
    if !target.starts_with('/') {
        return Err(err(format!("target {target:?} is not an absolute path")));
    }
    Ok(MountSpec { volume, target })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes() {
        let v = parse_volume("data,kind=host,source=/srv,readOnly=true").unwrap();
        assert_eq!(
            v.kind,
            VolumeKind::Host {
                source: "/srv".into(),
                read_only: true,
                recursive: true
            }
        );
        let e = parse_volume("scratch,kind=empty,mode=0700,uid=5").unwrap();
        assert_eq!(
            e.kind,
            VolumeKind::Empty {
                mode: 0o700,
                uid: 5,
                gid: 0
            }
        );
        for bad in [
            "Data,kind=empty",
            "x,kind=host",
            "x,kind=host,source=rel",
            "x,kind=nfs",
            "x",
            "x,kind=empty,mode=999",
            "x,kind=empty,color=red",
        ] {
            assert!(parse_volume(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mounts() {
        let m = parse_mount("volume=data,target=/var/data").unwrap();
        assert_eq!(
            (m.volume.as_str(), m.target.as_str()),
            ("data", "/var/data")
        );
        assert!(parse_mount("volume=data").is_err());
        assert!(parse_mount("volume=data,target=rel").is_err());
    }
}
