//! The net crate's error type.
//!
//! Messages say what was wrong and what to do; sources are chained with `#[source]` and not
//! repeated in the message, so the CLI prints the chain once. A plugin's own error (its CNI error
//! JSON: code, msg, details) and its stderr are part of the message, since they are usually the
//! only explanation there is.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Everything a network operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A filesystem or process operation failed for a reason not covered below.
    #[error("network: cannot {action} {path}")]
    Io {
        /// What we were doing ("read", "create", "bind-mount", …).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A network configuration file is not valid JSON or not a valid CNI configuration.
    #[error("network configuration {path}: {reason}; fix or remove the file")]
    Config {
        /// The file (or `<built-in>`).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Two files in one `net.d` directory define the same network name.
    #[error(
        "network {name:?} is defined twice in one directory, in {first} and in {second}; \
         remove or rename one of them"
    )]
    DuplicateNetwork {
        /// The network name.
        name: String,
        /// The file seen first (lexical order).
        first: PathBuf,
        /// The file seen second.
        second: PathBuf,
    },
    /// A name (network, container ID, argument key, plugin type) breaks its syntax rule.
    #[error("invalid {what} {value:?}: {rule}")]
    InvalidName {
        /// What kind of name it is.
        what: &'static str,
        /// The offending value.
        value: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// `--net` could not be understood.
    #[error("--net={flag}: {reason}")]
    NetFlag {
        /// The flag's value as given.
        flag: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `--net` names networks that no configuration defines.
    #[error(
        "networks not found: {}; the networks defined are {} (add a configuration to a net.d \
         directory to define more)",
        names.join(", "),
        known.join(", ")
    )]
    NetworksNotFound {
        /// The missing names.
        names: Vec<String>,
        /// The networks that are defined (built-in and from net.d).
        known: Vec<String>,
    },
    /// `--port` was given but no network of the pod can forward ports.
    #[error(
        "port forwarding needs a network with a plugin that has the portMappings capability \
         (like `default`, which chains portmap), but the pod joins {}",
        if networks.is_empty() { "none".to_string() } else { networks.join(", ") }
    )]
    NoPortForwarding {
        /// The networks the pod joins.
        networks: Vec<String>,
    },
    /// A port mapping is not usable.
    #[error("port mapping {mapping}: {reason}")]
    InvalidPort {
        /// The mapping, as `proto:host->container`.
        mapping: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The same network was asked for twice, or the pod is on it already.
    #[error(
        "network {name:?} is requested twice or the pod is already on it; a pod joins each \
         network at most once"
    )]
    NetworkTwice {
        /// The network name.
        name: String,
    },
    /// A plugin type names no regular executable in any plugin directory.
    #[error(
        "CNI plugin {plugin:?} (network {network:?}) not found in {}; install it (Debian: \
         containernetworking-plugins) or fix the network's \"type\"",
        dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(":")
    )]
    PluginNotFound {
        /// The plugin type.
        plugin: String,
        /// The network it was needed for.
        network: String,
        /// The plugin directories searched.
        dirs: Vec<PathBuf>,
    },
    /// A plugin directory cannot be used in `CNI_PATH`.
    #[error("CNI plugin directory {path}: {reason}")]
    PluginDir {
        /// The directory.
        path: PathBuf,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// A plugin could not be started.
    #[error("cannot run CNI plugin {path}")]
    Spawn {
        /// The plugin executable.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A plugin reported an error or exited unsuccessfully.
    #[error("{}", plugin_failed(network, plugin, command, error))]
    PluginFailed {
        /// The network being worked on (empty for VERSION).
        network: String,
        /// The plugin type.
        plugin: String,
        /// `ADD`, `DEL`, `CHECK` or `VERSION`.
        command: &'static str,
        /// What the plugin said.
        error: Box<PluginError>,
    },
    /// A plugin ran past the time limit and was killed.
    #[error(
        "CNI plugin {plugin:?} ({command} on network {network:?}) did not finish within {}s and \
         was killed{}",
        after.as_secs(),
        stderr_suffix(stderr)
    )]
    Timeout {
        /// The network being worked on.
        network: String,
        /// The plugin type.
        plugin: String,
        /// The CNI command.
        command: &'static str,
        /// The time limit.
        after: Duration,
        /// What the plugin wrote on stderr before it was killed.
        stderr: String,
    },
    /// A plugin wrote more to stdout than any CNI result needs.
    #[error(
        "CNI plugin {plugin:?} ({command} on network {network:?}) wrote more than {limit} bytes \
         of output and was stopped"
    )]
    OutputTooLarge {
        /// The network being worked on.
        network: String,
        /// The plugin type.
        plugin: String,
        /// The CNI command.
        command: &'static str,
        /// The output limit in bytes.
        limit: usize,
    },
    /// A plugin succeeded but its output is not a CNI result this crate understands.
    #[error("CNI plugin {plugin:?} ({command} on network {network:?}) returned {reason}")]
    BadResult {
        /// The network being worked on.
        network: String,
        /// The plugin type.
        plugin: String,
        /// The CNI command.
        command: &'static str,
        /// What is wrong with the output.
        reason: String,
    },
    /// rkt's own masquerade of a network (`rktIpMasq`) could not be set up or removed.
    #[error(
        "network {network:?}: cannot {action} the pod's masquerade (NAT chain {chain}): {reason}"
    )]
    Masquerade {
        /// The network.
        network: String,
        /// The pod's NAT chain (`CNI-` and a hash, as the plugins name it).
        chain: String,
        /// `set up` or `remove`.
        action: &'static str,
        /// What `iptables-restore`/`iptables` said, or why it could not run.
        reason: String,
    },
    /// The path given as the pod's network namespace is not one.
    #[error(
        "{path} is not a network namespace (no nsfs mount there); the pod's network namespace \
         must be bound there first (create_netns_file)"
    )]
    NotANetns {
        /// The path.
        path: PathBuf,
    },
    /// A cached attachment record could not be read.
    #[error("network cache entry {path} is unreadable: {reason}")]
    Cache {
        /// The cache file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Removing some networks from a pod failed; their cache entries are kept for a retry.
    #[error(
        "could not remove the pod from {} network(s) ({}); their records stay in the pod's \
         network cache so that a later gc retries",
        failed.len(),
        failed.iter().map(|(n, e)| format!("{n}: {e}")).collect::<Vec<_>>().join("; ")
    )]
    Detach {
        /// Each network that failed, with its error.
        failed: Vec<(String, NetError)>,
    },
}

/// What a failed plugin reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    /// The CNI error code, when the plugin printed an error JSON.
    pub code: Option<u64>,
    /// The error message (`msg`), or a description of how the plugin ended.
    pub msg: String,
    /// The error's `details`, if any.
    pub details: String,
    /// What the plugin wrote on stderr (bounded), trimmed.
    pub stderr: String,
}

fn plugin_failed(network: &str, plugin: &str, command: &str, e: &PluginError) -> String {
    let mut s = if network.is_empty() {
        format!("CNI plugin {plugin:?} failed {command}")
    } else {
        format!("CNI plugin {plugin:?} failed {command} on network {network:?}")
    };
    if let Some(code) = e.code {
        s.push_str(&format!(" (CNI error {code}{})", code_meaning(code)));
    }
    s.push_str(": ");
    s.push_str(&e.msg);
    if !e.details.is_empty() {
        s.push_str(": ");
        s.push_str(&e.details);
    }
    s.push_str(&stderr_suffix(&e.stderr));
    s
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!("; plugin stderr: {stderr}")
    }
}

/// The spec's names for its reserved error codes.
fn code_meaning(code: u64) -> &'static str {
    match code {
        1 => ", incompatible CNI version",
        2 => ", unsupported field in network configuration",
        3 => ", container unknown",
        4 => ", invalid environment variables",
        5 => ", I/O failure",
        6 => ", failed to decode content",
        7 => ", invalid network config",
        11 => ", try again later",
        50 => ", plugin not available",
        51 => ", plugin not available, existing containers may have limited connectivity",
        _ => "",
    }
}

impl NetError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        NetError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn config(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        NetError::Config {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
