//! Reading and merging the configuration directories.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::kinds::{
    AuthConfig, AuthCredentials, DockerAuthConfig, PathsConfig, REDACTED, Stage1Config,
};

/// Largest configuration file read; real ones are a few hundred bytes.
const MAX_FILE: u64 = 1 << 20;

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file or directory could not be read.
    #[error("cannot read configuration {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid.
    #[error("invalid configuration file {path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A key is defined twice in one directory.
    #[error(
        "{what} is configured twice in {dir} (in {first} and {second}); keep one definition \
         per directory"
    )]
    Duplicate {
        /// What was defined twice.
        what: String,
        /// The configuration directory.
        dir: PathBuf,
        /// First file.
        first: PathBuf,
        /// Second file.
        second: PathBuf,
    },
}

/// The configuration directories, lowest precedence first.
#[derive(Debug, Clone)]
pub struct ConfigDirs {
    /// Vendor directory.
    pub system: PathBuf,
    /// Administrator directory.
    pub local: PathBuf,
    /// User directory, if any.
    pub user: Option<PathBuf>,
}

impl Default for ConfigDirs {
    fn default() -> Self {
        ConfigDirs {
            system: crate::DEFAULT_SYSTEM_CONFIG.into(),
            local: crate::DEFAULT_LOCAL_CONFIG.into(),
            user: None,
        }
    }
}

impl ConfigDirs {
    fn layers(&self) -> Vec<&Path> {
        let mut v = vec![self.system.as_path(), self.local.as_path()];
        if let Some(u) = &self.user {
            v.push(u);
        }
        v
    }
}

/// The merged configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `auth` entries, keyed by domain.
    pub auth: BTreeMap<String, AuthCredentials>,
    /// `dockerAuth` entries, keyed by registry.
    pub docker_auth: BTreeMap<String, (String, String)>,
    /// Merged `paths`.
    pub paths: PathsConfig,
    /// Merged `stage1`.
    pub stage1: Stage1Config,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    rkt_kind: String,
    rkt_version: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    #[serde(rename = "rktKind")]
    _kind: String,
    #[serde(rename = "rktVersion")]
    _version: String,
    domains: Vec<String>,
    #[serde(rename = "type")]
    kind: String,
    credentials: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DockerAuthFile {
    #[serde(rename = "rktKind")]
    _kind: String,
    #[serde(rename = "rktVersion")]
    _version: String,
    registries: Vec<String>,
    credentials: UserPassword,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserPassword {
    user: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathsFile {
    #[serde(rename = "rktKind")]
    _kind: String,
    #[serde(rename = "rktVersion")]
    _version: String,
    data: Option<String>,
    #[serde(rename = "stage1-images")]
    stage1_images: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Stage1File {
    #[serde(rename = "rktKind")]
    _kind: String,
    #[serde(rename = "rktVersion")]
    _version: String,
    name: Option<String>,
    version: Option<String>,
    location: Option<String>,
}

/// One directory's worth of settings, with where each key came from (for duplicate errors).
#[derive(Default)]
struct Layer {
    auth: BTreeMap<String, (AuthCredentials, PathBuf)>,
    docker_auth: BTreeMap<String, ((String, String), PathBuf)>,
    paths: BTreeMap<&'static str, (String, PathBuf)>,
    stage1: BTreeMap<&'static str, (String, PathBuf)>,
}

impl Config {
    /// Reads and merges every layer. Missing directories are fine; bad files are errors.
    pub fn load(dirs: &ConfigDirs) -> Result<Self, ConfigError> {
        let mut cfg = Config::default();
        for dir in dirs.layers() {
            let layer = read_layer(dir)?;
            for (k, (v, _)) in layer.auth {
                cfg.auth.insert(k, v);
            }
            for (k, (v, _)) in layer.docker_auth {
                cfg.docker_auth.insert(k, v);
            }
            for (k, (v, _)) in layer.paths {
                match k {
                    "data" => cfg.paths.data = Some(v),
                    _ => cfg.paths.stage1_images = Some(v),
                }
            }
            for (k, (v, _)) in layer.stage1 {
                match k {
                    "name" => cfg.stage1.name = Some(v),
                    "version" => cfg.stage1.version = Some(v),
                    _ => cfg.stage1.location = Some(v),
                }
            }
        }
        Ok(cfg)
    }

    /// Docker registry credentials as (registry, user, password).
    pub fn docker_credentials(&self) -> Vec<DockerAuthConfig> {
        self.docker_auth
            .iter()
            .map(|(r, (u, p))| DockerAuthConfig {
                registries: vec![r.clone()],
                user: u.clone(),
                password: p.clone(),
            })
            .collect()
    }

    /// HTTP credentials for `host`, if configured.
    pub fn auth_for(&self, host: &str) -> Option<&AuthCredentials> {
        self.auth.get(host)
    }

    /// What `rkt config` prints: rkt's `{"stage0": [...]}` document, secrets redacted.
    pub fn to_json(&self) -> Value {
        let mut entries = Vec::new();
        for (domain, creds) in &self.auth {
            let entry = AuthConfig {
                domains: vec![domain.clone()],
                credentials: creds.redacted(),
            };
            let mut v = serde_json::to_value(entry).unwrap_or(Value::Null);
            v["rktVersion"] = json!("v1");
            v["rktKind"] = json!("auth");
            entries.push(v);
        }
        for (registry, (user, _)) in &self.docker_auth {
            entries.push(json!({
                "rktVersion": "v1", "rktKind": "dockerAuth", "registries": [registry],
                "credentials": {"user": user, "password": REDACTED},
            }));
        }
        let mut paths = serde_json::to_value(&self.paths).unwrap_or(Value::Null);
        paths["rktVersion"] = json!("v1");
        paths["rktKind"] = json!("paths");
        entries.push(paths);
        let mut stage1 = serde_json::to_value(&self.stage1).unwrap_or(Value::Null);
        stage1["rktVersion"] = json!("v1");
        stage1["rktKind"] = json!("stage1");
        entries.push(stage1);
        json!({ "stage0": entries })
    }
}

fn read_layer(dir: &Path) -> Result<Layer, ConfigError> {
    let mut layer = Layer::default();
    for sub in ["auth.d", "paths.d", "stage1.d"] {
        let d = dir.join(sub);
        let rd = match fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(ConfigError::Io { path: d, source }),
        };
        let mut files: Vec<PathBuf> = rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for f in files {
            read_file(dir, sub, &f, &mut layer)?;
        }
    }
    Ok(layer)
}

fn read_file(dir: &Path, sub: &str, path: &Path, layer: &mut Layer) -> Result<(), ConfigError> {
    let io = |source| ConfigError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = fs::metadata(path).map_err(io)?;
    if meta.len() > MAX_FILE {
        return Err(invalid(path, "file is larger than 1 MiB".into()));
    }
    let bytes = fs::read(path).map_err(io)?;
    let header: Header = serde_json::from_slice(&bytes).map_err(|e| {
        invalid(
            path,
            format!("{e} (expected rktKind and rktVersion fields)"),
        )
    })?;
    if header.rkt_version != "v1" {
        return Err(invalid(
            path,
            format!(
                "rktVersion {:?} is not supported (use \"v1\")",
                header.rkt_version
            ),
        ));
    }
    let expected: &[&str] = match sub {
        "auth.d" => &["auth", "dockerAuth"],
        "paths.d" => &["paths"],
        _ => &["stage1"],
    };
    if !expected.contains(&header.rkt_kind.as_str()) {
        return Err(invalid(
            path,
            format!(
                "rktKind {:?} does not belong in {sub} (expected {})",
                header.rkt_kind,
                expected.join(" or ")
            ),
        ));
    }
    let parse_err = |e: serde_json::Error| invalid(path, e.to_string());
    let dup = |what: String, first: &Path| ConfigError::Duplicate {
        what,
        dir: dir.to_owned(),
        first: first.to_owned(),
        second: path.to_owned(),
    };
    match header.rkt_kind.as_str() {
        "auth" => {
            let f: AuthFile = serde_json::from_slice(&bytes).map_err(parse_err)?;
            let creds = match f.kind.as_str() {
                "basic" => {
                    let up: UserPassword =
                        serde_json::from_value(f.credentials).map_err(parse_err)?;
                    AuthCredentials::Basic {
                        user: up.user,
                        password: up.password,
                    }
                }
                "oauth" => {
                    #[derive(Deserialize)]
                    #[serde(deny_unknown_fields)]
                    struct Token {
                        token: String,
                    }
                    let t: Token = serde_json::from_value(f.credentials).map_err(parse_err)?;
                    AuthCredentials::Oauth { token: t.token }
                }
                other => {
                    return Err(invalid(
                        path,
                        format!("auth type {other:?} is not supported (use basic or oauth)"),
                    ));
                }
            };
            for d in f.domains {
                if let Some((_, first)) = layer.auth.get(&d) {
                    return Err(dup(format!("auth for domain {d}"), first));
                }
                layer.auth.insert(d, (creds.clone(), path.to_owned()));
            }
        }
        "dockerAuth" => {
            let f: DockerAuthFile = serde_json::from_slice(&bytes).map_err(parse_err)?;
            for r in f.registries {
                if let Some((_, first)) = layer.docker_auth.get(&r) {
                    return Err(dup(format!("dockerAuth for registry {r}"), first));
                }
                let v = (f.credentials.user.clone(), f.credentials.password.clone());
                layer.docker_auth.insert(r, (v, path.to_owned()));
            }
        }
        "paths" => {
            let f: PathsFile = serde_json::from_slice(&bytes).map_err(parse_err)?;
            for (k, v) in [("data", f.data), ("stage1-images", f.stage1_images)] {
                if let Some(v) = v {
                    if let Some((_, first)) = layer.paths.get(k) {
                        return Err(dup(format!("paths {k}"), first));
                    }
                    layer.paths.insert(k, (v, path.to_owned()));
                }
            }
        }
        _ => {
            let f: Stage1File = serde_json::from_slice(&bytes).map_err(parse_err)?;
            for (k, v) in [
                ("name", f.name),
                ("version", f.version),
                ("location", f.location),
            ] {
                if let Some(v) = v {
                    if let Some((_, first)) = layer.stage1.get(k) {
                        return Err(dup(format!("stage1 {k}"), first));
                    }
                    layer.stage1.insert(k, (v, path.to_owned()));
                }
            }
        }
    }
    Ok(())
}

fn invalid(path: &Path, reason: String) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, sub: &str, name: &str, body: &str) {
        fs::create_dir_all(dir.join(sub)).unwrap();
        fs::write(dir.join(sub).join(name), body).unwrap();
    }

    #[test]
    fn layers_override_by_key_and_redact() {
        let t = tempfile::tempdir().unwrap();
        let (sys, local) = (t.path().join("sys"), t.path().join("local"));
        write(
            &sys,
            "auth.d",
            "a.json",
            r#"{"rktKind":"auth","rktVersion":"v1","domains":["a.com","b.com"],"type":"basic","credentials":{"user":"u","password":"p"}}"#,
        );
        write(
            &local,
            "auth.d",
            "a.json",
            r#"{"rktKind":"auth","rktVersion":"v1","domains":["b.com"],"type":"oauth","credentials":{"token":"t"}}"#,
        );
        write(
            &local,
            "auth.d",
            "d.json",
            r#"{"rktKind":"dockerAuth","rktVersion":"v1","registries":["127.0.0.1:5000"],"credentials":{"user":"x","password":"y"}}"#,
        );
        write(
            &sys,
            "paths.d",
            "p.json",
            r#"{"rktKind":"paths","rktVersion":"v1","data":"/srv/rkt"}"#,
        );
        let cfg = Config::load(&ConfigDirs {
            system: sys,
            local,
            user: None,
        })
        .unwrap();
        assert!(matches!(
            cfg.auth_for("a.com"),
            Some(AuthCredentials::Basic { .. })
        ));
        assert_eq!(cfg.auth_for("b.com").unwrap().header_value(), "Bearer t");
        assert_eq!(cfg.paths.data.as_deref(), Some("/srv/rkt"));
        assert_eq!(cfg.docker_credentials()[0].password, "y");
        let shown = cfg.to_json().to_string();
        assert!(
            !shown.contains("\"y\"") && !shown.contains("\"t\""),
            "{shown}"
        );
        assert!(shown.contains(REDACTED));
    }

    #[test]
    fn rejects_duplicates_and_bad_files() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().to_owned();
        write(
            &d,
            "paths.d",
            "1.json",
            r#"{"rktKind":"paths","rktVersion":"v1","data":"/a"}"#,
        );
        write(
            &d,
            "paths.d",
            "2.json",
            r#"{"rktKind":"paths","rktVersion":"v1","data":"/b"}"#,
        );
        let dirs = ConfigDirs {
            system: d.clone(),
            local: t.path().join("none"),
            user: None,
        };
        assert!(matches!(
            Config::load(&dirs),
            Err(ConfigError::Duplicate { .. })
        ));
        fs::remove_file(d.join("paths.d/2.json")).unwrap();
        write(
            &d,
            "stage1.d",
            "s.json",
            r#"{"rktKind":"paths","rktVersion":"v1"}"#,
        );
        assert!(matches!(
            Config::load(&dirs),
            Err(ConfigError::Invalid { .. })
        ));
        fs::remove_file(d.join("stage1.d/s.json")).unwrap();
        write(
            &d,
            "auth.d",
            "x.json",
            r#"{"rktKind":"auth","rktVersion":"v2"}"#,
        );
        let e = Config::load(&dirs).unwrap_err().to_string();
        assert!(e.contains("v2"), "{e}");
    }
}
