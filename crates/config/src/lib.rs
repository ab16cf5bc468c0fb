//! rkt's layered configuration.
//!
//! Three directories are read, lowest precedence first: the vendor's (`--system-config`,
//! default `/usr/lib/rkt`), the administrator's (`--local-config`, default `/etc/rkt`) and an
//! optional user directory (`--user-config`). Each holds `auth.d/`, `paths.d/` and `stage1.d/`
//! with `*.json` files that carry `rktKind` and `rktVersion: "v1"`, as rkt defined them. Within
//! one directory a key may be defined only once; a higher layer overrides a lower one key by
//! key (a domain for `auth`, a registry for `dockerAuth`, a field for `paths` and `stage1`).
#![forbid(unsafe_code)]

mod kinds;
mod load;

pub use kinds::{AuthConfig, AuthCredentials, DockerAuthConfig, PathsConfig, Stage1Config};
pub use load::{Config, ConfigDirs, ConfigError};

/// Default vendor configuration directory.
pub const DEFAULT_SYSTEM_CONFIG: &str = "/usr/lib/rkt";
/// Default administrator configuration directory.
pub const DEFAULT_LOCAL_CONFIG: &str = "/etc/rkt";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/rkt";
