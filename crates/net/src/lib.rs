//! Pod networking through CNI, as rkt did it, with Debian's `containernetworking-plugins`.
//!
//! A synchronous library (no tokio; stage1 calls it single-threaded): plugins run as child
//! processes with the CNI environment and their configuration on stdin, under a time limit
//! ([`Cni::DEFAULT_TIMEOUT`]) and an output limit ([`Cni::MAX_OUTPUT`]).
//!
//! - **Configurations** ([`NetConfig`]): [`load_networks`] reads `net.d/*.conf` and `*.conflist`
//!   (lexical order; a later directory overrides an earlier one by network name; two networks of
//!   one name in one directory are refused). [`builtin_default`] and
//!   [`builtin_default_restricted`] are rkt's two built-in networks. Plugin `type`s (and IPAM
//!   `type`s) are validated as plain file names when a configuration is parsed, and a plugin is
//!   only ever run from a plugin directory, as a regular executable.
//! - **Selection**: [`parse_net_flag`] reads `--net` into a [`NetSelection`];
//!   [`resolve_networks`] turns it into the ordered `(NetConfig, NetworkRequest)` list to attach
//!   (rkt's rules: `default-restricted` joins a list that lacks `default`; networks join in
//!   configuration file name order).
//! - **Attach and detach** ([`Cni`]): [`Cni::attach`] runs ADD network by network (`eth0`,
//!   `eth1`, …), chaining `prevResult` through each network's plugins, passing `--net` arguments
//!   as `CNI_ARGS` and port mappings ([`PortMapping`]) as the `portMappings` capability, and
//!   records each network in the pod's cache directory (`<cache dir>/<network>.json`) before its
//!   first plugin runs; a network with `"rktIpMasq": true` ([`NetConfig::rkt_ip_masq`], as the
//!   built-in `default`) is then masqueraded by rkt itself, with the rules `ptp`'s `ipMasq` would
//!   make but in one `iptables-restore` each way; on failure everything added is deleted again. [`Cni::detach`] deletes
//!   whatever the cache records, newest first, with the recorded configuration, arguments and
//!   result, also when the pod's network namespace is gone; it is idempotent. [`Cni::check`]
//!   runs CHECK, [`Cni::version`] VERSION. The results come back as [`Attachment`]s (what
//!   `rkt list`/`status` show: `default:ip4=172.16.28.2`).
//! - **Network namespaces**: [`create_netns_file`] keeps a process's network namespace alive on a
//!   file (a bind mount, in the pod directory); [`remove_netns_file`] undoes it.
//!
//! Plugins get only `PATH` (a fixed, system one, so `portmap` finds `iptables`) and the `CNI_*`
//! variables of the caller's environment; their error JSON (code, msg, details) and stderr end
//! up in [`NetError`]. Spec versions 0.1.0 to 1.1.0 are read; CHECK and `prevResult` on DEL are
//! used from 0.4.0 on, as the spec says.

#![forbid(unsafe_code)]

mod cache;
mod cni;
mod config;
mod error;
mod exec;
mod masq;
mod netns;
mod ports;
mod result;
mod select;
mod version;

pub use cni::Cni;
pub use config::{
    NetConfig, PluginConfig, builtin_default, builtin_default_restricted, load_networks,
    validate_network_name, validate_plugin_name,
};
pub use error::{NetError, PluginError};
pub use netns::{create_netns_file, is_netns, remove_netns_file};
pub use ports::PortMapping;
pub use result::{Attachment, Dns, IpPrefix};
pub use select::{NetSelection, NetworkRequest, parse_net_flag, resolve_networks};
