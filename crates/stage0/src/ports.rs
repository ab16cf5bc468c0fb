//! `rkt run --port`: parsing the flag and resolving it against the ports the pod's images
//! declare, into the CNI `portMappings` that [`rkt_net`] hands to the `portmap` plugin.
//!
//! Two forms are accepted:
//!
//! - rkt's `NAME:[HOSTIP:]HOSTPORT`, where `NAME` is a port an image declares: an appc image's
//!   `app.ports[].name` (e.g. `http`), or for an OCI/Docker image its `ExposedPorts` key named
//!   the way docker2aci did for rkt (`80/tcp` is `80-tcp`);
//! - `PROTO:PODPORT:[HOSTIP:]HOSTPORT` with `PROTO` one of `tcp`, `udp`, `sctp`, for images that
//!   declare nothing (most Docker images only document their ports in a README).
//!
//! `HOSTIP` is an IPv4 address or a bracketed IPv6 address (`[::1]`), since an IPv6 address's
//! own colons would otherwise be indistinguishable from the separators.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use rkt_net::PortMapping;
use rkt_types::ImageConfig;

use crate::Stage0Error;

/// The accepted forms, quoted in every parse error so the user sees what to type instead.
const FORMS: &str = "expected NAME:[HOSTIP:]HOSTPORT (a port the image declares, e.g. http:8080 or \
     80-tcp:127.0.0.1:8080) or PROTO:PODPORT:[HOSTIP:]HOSTPORT (e.g. tcp:80:8080, \
     udp:53:[::1]:5353), with PROTO tcp, udp or sctp and an IPv6 HOSTIP in brackets";

/// The protocols CNI's `portmap` can forward.
const PROTOCOLS: [&str; 3] = ["tcp", "udp", "sctp"];

/// One `--port` flag, parsed but not yet checked against the images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortFlag {
    /// `NAME:[HOSTIP:]HOSTPORT`: forwards the port an image declares under `name`.
    Named {
        /// The declared port's name (`http`, `80-tcp`).
        name: String,
        /// Only connections to this host address are forwarded (every address if `None`).
        host_ip: Option<IpAddr>,
        /// The port on the host.
        host_port: u16,
    },
    /// `PROTO:PODPORT:[HOSTIP:]HOSTPORT`: forwards a pod port whether or not an image
    /// declares it.
    Numeric {
        /// `tcp`, `udp` or `sctp`.
        protocol: String,
        /// The port inside the pod.
        pod_port: u16,
        /// Only connections to this host address are forwarded (every address if `None`).
        host_ip: Option<IpAddr>,
        /// The port on the host.
        host_port: u16,
    },
}

impl fmt::Display for PortFlag {
    /// The flag as the user would write it, so a recorded flag can be shown back (and parsed
    /// again to the same value).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (head, host_ip, host_port) = match self {
            PortFlag::Named {
                name,
                host_ip,
                host_port,
            } => (name.clone(), host_ip, host_port),
            PortFlag::Numeric {
                protocol,
                pod_port,
                host_ip,
                host_port,
            } => (format!("{protocol}:{pod_port}"), host_ip, host_port),
        };
        match host_ip {
            None => write!(f, "{head}:{host_port}"),
            Some(IpAddr::V4(ip)) => write!(f, "{head}:{ip}:{host_port}"),
            Some(IpAddr::V6(ip)) => write!(f, "{head}:[{ip}]:{host_port}"),
        }
    }
}

/// Parses one `--port` value (see the [module documentation](self) for the forms).
///
/// The forms are told apart by their second field: in the named form it is a host address or
/// the host port, in the numeric form the pod port. So a value with at least three fields whose
/// second field is all digits is the numeric form: a bare number is never a host address, so no
/// valid named flag is read that way, and `http:80:8080` gets "unknown protocol http" rather than
/// "bad host address 80". With only two fields (`tcp:8080`) it is the named form, since an image
/// may well name a port `tcp`.
pub fn parse_port_flag(s: &str) -> Result<PortFlag, Stage0Error> {
    let bad = |problem: String| Stage0Error::Usage(format!("--port {s}: {problem}; {FORMS}"));
    if s.is_empty() {
        return Err(bad("the value is empty".into()));
    }
    let Some((head, rest)) = s.split_once(':') else {
        return Err(bad("there is no host port".into()));
    };
    if let Some((second, tail)) = rest.split_once(':')
        && !second.is_empty()
        && second.bytes().all(|b| b.is_ascii_digit())
    {
        let protocol = head.to_ascii_lowercase();
        if !PROTOCOLS.contains(&protocol.as_str()) {
            return Err(bad(format!("unknown protocol {head:?} (tcp, udp or sctp)")));
        }
        let pod_port = parse_port(second, "pod port").map_err(bad)?;
        let (host_ip, host_port) = parse_host(tail).map_err(bad)?;
        return Ok(PortFlag::Numeric {
            protocol,
            pod_port,
            host_ip,
            host_port,
        });
    }
    if head.is_empty() {
        return Err(bad("the port name is empty".into()));
    }
    let (host_ip, host_port) = parse_host(rest).map_err(bad)?;
    Ok(PortFlag::Named {
        name: head.to_owned(),
        host_ip,
        host_port,
    })
}

/// Parses `[HOSTIP:]HOSTPORT`; the error is the problem alone, for the caller to frame.
fn parse_host(s: &str) -> Result<(Option<IpAddr>, u16), String> {
    if let Some(bracketed) = s.strip_prefix('[') {
        let Some((ip, after)) = bracketed.split_once(']') else {
            return Err(format!("the host address in {s:?} has no closing ]"));
        };
        let Some(port) = after.strip_prefix(':') else {
            return Err(format!(
                "the host address [{ip}] must be followed by :HOSTPORT"
            ));
        };
        let ip = ip
            .parse::<IpAddr>()
            .map_err(|_| format!("{ip:?} is not an IP address"))?;
        return Ok((Some(ip), parse_port(port, "host port")?));
    }
    match s.rsplit_once(':') {
        None => Ok((None, parse_port(s, "host port")?)),
        Some((ip, port)) => {
            if ip.is_empty() {
                return Err("the host address is empty".into());
            }
            if ip.contains(':') {
                // Either an unbracketed IPv6 address or simply too many fields; say which.
                return Err(if ip.parse::<Ipv6Addr>().is_ok() {
                    format!("the IPv6 host address {ip} must be in brackets: [{ip}]")
                } else {
                    "too many fields".into()
                });
            }
            let ip = ip
                .parse::<IpAddr>()
                .map_err(|_| format!("{ip:?} is not an IP address"))?;
            Ok((Some(ip), parse_port(port, "host port")?))
        }
    }
}

/// Parses a port number in 1..=65535; `what` names it in the error.
fn parse_port(s: &str, what: &str) -> Result<u16, String> {
    if s.is_empty() {
        return Err(format!("the {what} is missing"));
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("the {what} {s:?} is not a number"));
    }
    // All digits, so the only way to fail is size (however many digits there are).
    match s.parse::<u16>() {
        Ok(0) => Err(format!("the {what} cannot be 0")),
        Ok(p) => Ok(p),
        Err(_) => Err(format!("the {what} {s} is larger than 65535")),
    }
}

/// Turns the `--port` flags into port mappings, looking named ports up in the configurations
/// of the pod's images (`ImageRecord::config`, e.g.
/// `apps.iter().map(|a| &a.image.config).collect::<Vec<_>>()` over stage0's resolved apps).
///
/// [`ImageConfig::ports`] already holds both formats' declarations in one shape: an appc app's
/// `ports` as they are, an OCI/Docker `ExposedPorts` key `80/tcp` as port `80-tcp` (docker2aci's
/// naming, which rkt users' `--port 80-tcp:8080` relies on).
///
/// - A name no image declares is an error that lists the names that are declared.
/// - A name declared by several images is fine if they agree on its protocol and port (two
///   Docker images exposing `80/tcp` mean the same pod port, as the pod has one network
///   namespace), and an error if not, since the flag would be ambiguous.
/// - A declared port with a `count` above 1 (appc: a range the app listens on) forwards the
///   whole range, `HOSTPORT` to `HOSTPORT + count - 1`, rather than just its first port.
/// - Numeric flags pass through unchecked against the images.
/// - The same host port and protocol forwarded twice on overlapping host addresses (equal, or
///   either one every address) is an error: the second forwarding could never receive a
///   connection.
pub fn resolve_ports(
    flags: &[PortFlag],
    configs: &[&ImageConfig],
) -> Result<Vec<PortMapping>, Stage0Error> {
    let mut mappings = Vec::new();
    for flag in flags {
        match flag {
            PortFlag::Numeric {
                protocol,
                pod_port,
                host_ip,
                host_port,
            } => mappings.push(PortMapping {
                host_ip: *host_ip,
                host_port: *host_port,
                container_port: *pod_port,
                protocol: protocol.clone(),
            }),
            PortFlag::Named {
                name,
                host_ip,
                host_port,
            } => {
                let (protocol, port, count) = declared(name, configs)?;
                let range = |first: u16| u32::from(first) + u32::from(count) - 1;
                if range(*host_port) > u32::from(u16::MAX) {
                    return Err(Stage0Error::Usage(format!(
                        "--port {flag}: port {name} is a range of {count} ports, so host ports \
                         {host_port} to {} would be needed, past 65535; give a lower HOSTPORT",
                        range(*host_port)
                    )));
                }
                if range(port) > u32::from(u16::MAX) {
                    return Err(Stage0Error::Usage(format!(
                        "--port {flag}: an image declares port {name} as {count} ports from \
                         {port}, which runs past 65535"
                    )));
                }
                for i in 0..count {
                    mappings.push(PortMapping {
                        host_ip: *host_ip,
                        host_port: host_port + i,
                        container_port: port + i,
                        protocol: protocol.clone(),
                    });
                }
            }
        }
    }
    check_host_conflicts(&mappings)?;
    Ok(mappings)
}

/// The protocol, first port and count of the port the images declare as `name`.
fn declared(name: &str, configs: &[&ImageConfig]) -> Result<(String, u16, u16), Stage0Error> {
    let mut found: Option<(String, u16, u16)> = None;
    for p in configs
        .iter()
        .flat_map(|c| &c.ports)
        .filter(|p| p.name == name)
    {
        let protocol = p.protocol.to_ascii_lowercase();
        if !PROTOCOLS.contains(&protocol.as_str()) {
            return Err(Stage0Error::Usage(format!(
                "--port {name}: an image declares port {name} with protocol {:?}, which cannot \
                 be forwarded (only tcp, udp and sctp can)",
                p.protocol
            )));
        }
        // appc's default count is 1; a 0 from a hand-written manifest means the same.
        let this = (protocol, p.port, p.count.max(1));
        match &found {
            None => found = Some(this),
            Some(prev) if *prev == this => {}
            Some(prev) => {
                return Err(Stage0Error::Usage(format!(
                    "--port {name}: the images declare port {name} differently ({}/{} and \
                     {}/{}); forward the pod port by number instead, e.g. --port {}:{}:HOSTPORT",
                    prev.1, prev.0, this.1, this.0, this.0, this.1
                )));
            }
        }
    }
    found.ok_or_else(|| Stage0Error::Usage(undeclared(name, configs)))
}

/// The error for a port name no image declares: what is declared, and the numeric form when
/// the name looks like the user meant a number.
fn undeclared(name: &str, configs: &[&ImageConfig]) -> String {
    let mut names: Vec<&str> = configs
        .iter()
        .flat_map(|c| &c.ports)
        .map(|p| p.name.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    let mut msg = if names.is_empty() {
        format!("--port {name}: no image of the pod declares any port, so none can be named")
    } else {
        format!(
            "--port {name}: no image of the pod declares a port named {name}; declared: {}",
            names.join(", ")
        )
    };
    if PROTOCOLS.contains(&name) || name.bytes().all(|b| b.is_ascii_digit()) {
        msg.push_str("; to forward a pod port by number use PROTO:PODPORT:[HOSTIP:]HOSTPORT");
    } else {
        msg.push_str(
            "; to forward a port the images do not declare use PROTO:PODPORT:[HOSTIP:]HOSTPORT",
        );
    }
    msg.push_str(" (e.g. --port tcp:80:8080)");
    msg
}

/// Refuses two mappings of the same host port and protocol on overlapping host addresses.
fn check_host_conflicts(mappings: &[PortMapping]) -> Result<(), Stage0Error> {
    let mut seen: HashMap<(&str, u16), Vec<&PortMapping>> = HashMap::new();
    for m in mappings {
        let others = seen.entry((m.protocol.as_str(), m.host_port)).or_default();
        if let Some(other) = others.iter().find(|o| overlaps(o.host_ip, m.host_ip)) {
            let on = |ip: Option<IpAddr>| match ip {
                None => "every host address".to_owned(),
                Some(ip) => format!("host address {ip}"),
            };
            return Err(Stage0Error::Usage(format!(
                "--port: host port {}/{} is forwarded twice (to pod port {} on {}, and to pod \
                 port {} on {}); give each --port its own host port",
                m.host_port,
                m.protocol,
                other.container_port,
                on(other.host_ip),
                m.container_port,
                on(m.host_ip)
            )));
        }
        others.push(m);
    }
    Ok(())
}

/// Whether forwarding on host address `a` and on `b` would catch the same connections.
fn overlaps(a: Option<IpAddr>, b: Option<IpAddr>) -> bool {
    match (a, b) {
        (None, _) | (_, None) => true,
        (Some(a), Some(b)) => {
            // 0.0.0.0 and :: are every address of their family.
            a == b || (a.is_ipv4() == b.is_ipv4() && (a.is_unspecified() || b.is_unspecified()))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rkt_types::appc::ImageManifest;
    use rkt_types::oci::ImageConfigDoc;

    use super::*;

    fn usage(r: Result<impl fmt::Debug, Stage0Error>) -> String {
        match r {
            Err(Stage0Error::Usage(m)) => m,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    fn named(name: &str, ip: Option<&str>, port: u16) -> PortFlag {
        PortFlag::Named {
            name: name.into(),
            host_ip: ip.map(|i| i.parse().unwrap()),
            host_port: port,
        }
    }

    fn numeric(proto: &str, pod: u16, ip: Option<&str>, port: u16) -> PortFlag {
        PortFlag::Numeric {
            protocol: proto.into(),
            pod_port: pod,
            host_ip: ip.map(|i| i.parse().unwrap()),
            host_port: port,
        }
    }

    fn mapping(proto: &str, host: u16, pod: u16, ip: Option<&str>) -> PortMapping {
        PortMapping {
            host_ip: ip.map(|i| i.parse().unwrap()),
            host_port: host,
            container_port: pod,
            protocol: proto.into(),
        }
    }

    #[test]
    fn named_forms() {
        let cases = [
            ("http:8080", named("http", None, 8080)),
            ("80-tcp:8080", named("80-tcp", None, 8080)),
            (
                "http:127.0.0.1:8080",
                named("http", Some("127.0.0.1"), 8080),
            ),
            ("http:[::1]:8080", named("http", Some("::1"), 8080)),
            ("http:[fe80::1:2]:1", named("http", Some("fe80::1:2"), 1)),
            ("dns:0.0.0.0:65535", named("dns", Some("0.0.0.0"), 65535)),
            // Two fields are always the named form: an image may call a port `tcp`.
            ("tcp:8080", named("tcp", None, 8080)),
            ("udp:10.1.2.3:53", named("udp", Some("10.1.2.3"), 53)),
        ];
        for (s, want) in cases {
            let got = parse_port_flag(s).unwrap();
            assert_eq!(got, want, "{s}");
            assert_eq!(parse_port_flag(&got.to_string()).unwrap(), want, "{s}");
        }
    }

    #[test]
    fn numeric_forms() {
        let cases = [
            ("tcp:80:8080", numeric("tcp", 80, None, 8080)),
            ("udp:53:5353", numeric("udp", 53, None, 5353)),
            ("sctp:9:9", numeric("sctp", 9, None, 9)),
            (
                "tcp:80:127.0.0.1:8080",
                numeric("tcp", 80, Some("127.0.0.1"), 8080),
            ),
            ("udp:53:[::1]:5353", numeric("udp", 53, Some("::1"), 5353)),
            // The protocol is matched case-insensitively and recorded in lowercase.
            ("TCP:80:8080", numeric("tcp", 80, None, 8080)),
        ];
        for (s, want) in cases {
            let got = parse_port_flag(s).unwrap();
            assert_eq!(got, want, "{s}");
            assert_eq!(parse_port_flag(&got.to_string()).unwrap(), want, "{s}");
        }
    }

    #[test]
    fn parse_errors_say_what_is_wrong_and_what_is_expected() {
        let cases = [
            ("", "empty"),
            ("http", "no host port"),
            ("http:", "host port is missing"),
            (":8080", "port name is empty"),
            ("http:0", "cannot be 0"),
            ("http:65536", "larger than 65535"),
            ("http:99999999999999999999999", "larger than 65535"),
            ("http:80a", "not a number"),
            ("http:-1", "not a number"),
            ("http:1.2.3:8080", "\"1.2.3\" is not an IP address"),
            ("http:localhost:8080", "\"localhost\" is not an IP address"),
            ("http::8080", "host address is empty"),
            ("http:::1:8080", "must be in brackets: [::1]"),
            ("http:[::1:8080", "no closing ]"),
            ("http:[::1]8080", "must be followed by :HOSTPORT"),
            ("http:[::1]:", "host port is missing"),
            ("http:[nope]:8080", "\"nope\" is not an IP address"),
            ("http:1.2.3.4:80:90", "too many fields"),
            ("tcp:0:8080", "pod port cannot be 0"),
            ("tcp:70000:8080", "pod port 70000 is larger than 65535"),
            ("tcp:80:0", "host port cannot be 0"),
            ("tcp:80:", "host port is missing"),
            ("tcp:80:1.2.3.4:", "host port is missing"),
            ("tcp:80:1.2.3.4:5:6", "too many fields"),
            (
                "tcp:80:300.1.1.1:8080",
                "\"300.1.1.1\" is not an IP address",
            ),
            ("icmp:80:8080", "unknown protocol \"icmp\""),
            ("http:80:8080", "unknown protocol \"http\""),
        ];
        for (s, want) in cases {
            let msg = usage(parse_port_flag(s));
            assert!(msg.contains(want), "{s}: {msg}");
            assert!(msg.starts_with(&format!("--port {s}: ")), "{s}: {msg}");
            assert!(
                msg.contains("NAME:[HOSTIP:]HOSTPORT")
                    && msg.contains("PROTO:PODPORT:[HOSTIP:]HOSTPORT"),
                "{s}: {msg}"
            );
        }
    }

    fn appc_config(ports: &str) -> ImageConfig {
        let json = format!(
            r#"{{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/web",
            "app":{{"exec":["/bin/httpd"],"user":"0","group":"0","ports":{ports}}}}}"#
        );
        ImageConfig::from_appc(&ImageManifest::parse(json.as_bytes()).unwrap())
    }

    fn oci_config(exposed: &str) -> ImageConfig {
        let json = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"ExposedPorts":{exposed}}},
            "rootfs":{{"type":"layers","diff_ids":[]}}}}"#
        );
        ImageConfig::from_oci(
            &ImageConfigDoc::parse(json.as_bytes()).unwrap(),
            &BTreeMap::new(),
        )
    }

    #[test]
    fn resolves_appc_named_ports() {
        let web = appc_config(
            r#"[{"name":"http","protocol":"tcp","port":80},
                {"name":"dns","protocol":"udp","port":53}]"#,
        );
        let flags = [
            parse_port_flag("http:8080").unwrap(),
            parse_port_flag("dns:127.0.0.1:5353").unwrap(),
        ];
        assert_eq!(
            resolve_ports(&flags, &[&web]).unwrap(),
            [
                mapping("tcp", 8080, 80, None),
                mapping("udp", 5353, 53, Some("127.0.0.1")),
            ]
        );
    }

    #[test]
    fn resolves_oci_exposed_ports_by_docker2aci_name() {
        let img = oci_config(r#"{"80/tcp":{},"53/udp":{},"8443":{}}"#);
        let flags = [
            parse_port_flag("80-tcp:8080").unwrap(),
            parse_port_flag("53-udp:[::1]:53").unwrap(),
            // A key without a protocol is tcp.
            parse_port_flag("8443-tcp:443").unwrap(),
        ];
        assert_eq!(
            resolve_ports(&flags, &[&img]).unwrap(),
            [
                mapping("tcp", 8080, 80, None),
                mapping("udp", 53, 53, Some("::1")),
                mapping("tcp", 443, 8443, None),
            ]
        );
    }

    #[test]
    fn numeric_flags_pass_through_without_declarations() {
        let bare = ImageConfig::default();
        let flags = [
            parse_port_flag("tcp:80:8080").unwrap(),
            parse_port_flag("sctp:9:10.0.0.1:9").unwrap(),
        ];
        assert_eq!(
            resolve_ports(&flags, &[&bare]).unwrap(),
            [
                mapping("tcp", 8080, 80, None),
                mapping("sctp", 9, 9, Some("10.0.0.1")),
            ]
        );
        assert_eq!(resolve_ports(&flags, &[]).unwrap().len(), 2);
        assert!(resolve_ports(&[], &[&bare]).unwrap().is_empty());
    }

    #[test]
    fn names_are_looked_up_across_the_pods_images() {
        let web = appc_config(r#"[{"name":"http","protocol":"tcp","port":80}]"#);
        let cache = oci_config(r#"{"6379/tcp":{}}"#);
        let flags = [
            parse_port_flag("6379-tcp:6379").unwrap(),
            parse_port_flag("http:80").unwrap(),
        ];
        assert_eq!(
            resolve_ports(&flags, &[&web, &cache]).unwrap(),
            [
                mapping("tcp", 6379, 6379, None),
                mapping("tcp", 80, 80, None)
            ]
        );
    }

    #[test]
    fn unknown_name_lists_the_declared_ones() {
        let web = appc_config(r#"[{"name":"http","protocol":"tcp","port":80}]"#);
        let img = oci_config(r#"{"80/tcp":{},"53/udp":{}}"#);
        let msg = usage(resolve_ports(
            &[parse_port_flag("https:8443").unwrap()],
            &[&web, &img],
        ));
        assert!(
            msg.contains(
                "no image of the pod declares a port named https; declared: 53-udp, 80-tcp, http"
            ),
            "{msg}"
        );
        assert!(msg.contains("PROTO:PODPORT:[HOSTIP:]HOSTPORT"), "{msg}");

        let msg = usage(resolve_ports(
            &[parse_port_flag("http:80").unwrap()],
            &[&ImageConfig::default()],
        ));
        assert!(
            msg.contains("no image of the pod declares any port"),
            "{msg}"
        );
        assert!(msg.contains("e.g. --port tcp:80:8080"), "{msg}");

        // `tcp:8080` reads as a port named tcp; the error points at the numeric form.
        let msg = usage(resolve_ports(
            &[parse_port_flag("tcp:8080").unwrap()],
            &[&web],
        ));
        assert!(msg.contains("declared: http"), "{msg}");
        assert!(msg.contains("by number use PROTO:PODPORT"), "{msg}");
    }

    #[test]
    fn a_name_declared_twice_must_agree() {
        let a = oci_config(r#"{"80/tcp":{}}"#);
        let b = oci_config(r#"{"80/tcp":{},"81/tcp":{}}"#);
        let flags = [parse_port_flag("80-tcp:8080").unwrap()];
        assert_eq!(
            resolve_ports(&flags, &[&a, &b]).unwrap(),
            [mapping("tcp", 8080, 80, None)]
        );

        let c = appc_config(r#"[{"name":"web","protocol":"tcp","port":80}]"#);
        let d = appc_config(r#"[{"name":"web","protocol":"tcp","port":8000}]"#);
        let msg = usage(resolve_ports(
            &[parse_port_flag("web:8080").unwrap()],
            &[&c, &d],
        ));
        assert!(
            msg.contains("declare port web differently (80/tcp and 8000/tcp)"),
            "{msg}"
        );
        assert!(msg.contains("--port tcp:8000:HOSTPORT"), "{msg}");
    }

    #[test]
    fn a_declared_range_is_forwarded_whole() {
        let img = appc_config(r#"[{"name":"rtp","protocol":"udp","port":5004,"count":3}]"#);
        assert_eq!(
            resolve_ports(&[parse_port_flag("rtp:6000").unwrap()], &[&img]).unwrap(),
            [
                mapping("udp", 6000, 5004, None),
                mapping("udp", 6001, 5005, None),
                mapping("udp", 6002, 5006, None),
            ]
        );
        let msg = usage(resolve_ports(
            &[parse_port_flag("rtp:65534").unwrap()],
            &[&img],
        ));
        assert!(msg.contains("host ports 65534 to 65536"), "{msg}");

        let mut high = img.clone();
        high.ports[0].port = 65535;
        let msg = usage(resolve_ports(
            &[parse_port_flag("rtp:6000").unwrap()],
            &[&high],
        ));
        assert!(msg.contains("runs past 65535"), "{msg}");
    }

    #[test]
    fn an_image_protocol_portmap_cannot_forward_is_refused() {
        let mut img = oci_config(r#"{"5000/icmp":{}}"#);
        assert_eq!(img.ports[0].name, "5000-icmp");
        let msg = usage(resolve_ports(
            &[parse_port_flag("5000-icmp:5000").unwrap()],
            &[&img],
        ));
        assert!(
            msg.contains("protocol \"icmp\", which cannot be forwarded"),
            "{msg}"
        );
        // Docker keys are case-sensitive strings; an upper-case protocol still means tcp.
        img.ports[0].protocol = "TCP".into();
        assert_eq!(
            resolve_ports(&[parse_port_flag("5000-icmp:5000").unwrap()], &[&img]).unwrap(),
            [mapping("tcp", 5000, 5000, None)]
        );
    }

    #[test]
    fn the_same_host_port_twice_is_refused() {
        let web = appc_config(
            r#"[{"name":"http","protocol":"tcp","port":80},
                {"name":"alt","protocol":"tcp","port":8000},
                {"name":"dns","protocol":"udp","port":53}]"#,
        );
        let conflicts = [
            ["http:8080", "alt:8080"],
            ["http:8080", "tcp:81:8080"],
            ["tcp:80:8080", "tcp:81:8080"],
            ["http:127.0.0.1:8080", "alt:127.0.0.1:8080"],
            // Every address overlaps any one address.
            ["http:8080", "alt:127.0.0.1:8080"],
            ["http:[::1]:8080", "alt:8080"],
            ["http:0.0.0.0:8080", "alt:10.0.0.1:8080"],
            ["http:[::]:8080", "alt:[::1]:8080"],
        ];
        for pair in conflicts {
            let flags: Vec<_> = pair.iter().map(|s| parse_port_flag(s).unwrap()).collect();
            let msg = usage(resolve_ports(&flags, &[&web]));
            assert!(
                msg.contains("host port 8080/tcp is forwarded twice"),
                "{pair:?}: {msg}"
            );
        }
        let fine = [
            // Other protocol, other address, other address family, other port.
            ["http:53", "dns:53"],
            ["http:127.0.0.1:8080", "alt:127.0.0.2:8080"],
            ["http:0.0.0.0:8080", "alt:[::1]:8080"],
            ["http:8080", "http:8081"],
        ];
        for pair in fine {
            let flags: Vec<_> = pair.iter().map(|s| parse_port_flag(s).unwrap()).collect();
            assert_eq!(resolve_ports(&flags, &[&web]).unwrap().len(), 2, "{pair:?}");
        }
    }
}
