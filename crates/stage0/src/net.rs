//! `--net` and `--port` into the run request's [`NetMode`]: stage0 resolves the networks (so an
//! unknown name or an impossible `--port` fails before a pod exists) and stage1 only runs the
//! plugins.

use std::path::{Path, PathBuf};

use rkt_net::{Cni, NetSelection, PortMapping, load_networks, resolve_networks};
use rkt_stage1::abi::{NetMode, Network};

use crate::Stage0Error;

/// Where a data directory's built-in networks keep their `host-local` leases.
pub fn ipam_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("networks").join("ipam")
}

/// The `net.d` directories of the configuration directories, lowest precedence first (a
/// network in a later one replaces one of the same name in an earlier one).
pub fn net_d_dirs(config_dirs: &[&Path]) -> Vec<PathBuf> {
    config_dirs.iter().map(|d| d.join("net.d")).collect()
}

/// The request's network mode for `selection`, with the user's networks from `net_d` (see
/// [`net_d_dirs`]), the built-in ones' leases under [`ipam_dir`]`(data_dir)`, and `ports`
/// forwarded through the first network that can.
pub fn net_mode(
    selection: &NetSelection,
    net_d: &[PathBuf],
    data_dir: &Path,
    ports: Vec<PortMapping>,
) -> Result<NetMode, Stage0Error> {
    let simple = match selection {
        NetSelection::Host => Some(NetMode::Host),
        NetSelection::None => Some(NetMode::None),
        NetSelection::Contained(_) | NetSelection::All(_) => None,
    };
    if let Some(mode) = simple {
        if !ports.is_empty() {
            return Err(Stage0Error::Usage(format!(
                "--port needs a contained network (--net=default or a CNI network), not \
                 --net={}: with --net=host the pod's ports are the host's already, with \
                 --net=none there is nothing to forward to",
                if mode == NetMode::Host {
                    "host"
                } else {
                    "none"
                }
            )));
        }
        return Ok(mode);
    }
    let user = load_networks(net_d)?;
    let resolved = resolve_networks(selection, &user, &ipam_dir(data_dir))?;
    if !ports.is_empty()
        && !resolved
            .iter()
            .any(|(c, _)| c.has_capability("portMappings"))
    {
        return Err(Stage0Error::Usage(format!(
            "--port needs a network whose plugins forward ports (the portmap plugin with \
             \"capabilities\": {{\"portMappings\": true}}), and none of {} has one; \
             --net=default does",
            resolved
                .iter()
                .map(|(c, _)| c.name())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let plugin_dirs = Cni::rkt_default(net_d)?.plugin_dirs().to_vec();
    Ok(NetMode::Contained {
        networks: resolved
            .into_iter()
            .map(|(conf, req)| Network {
                name: conf.name().to_string(),
                config: conf.to_json(),
                args: req.args,
            })
            .collect(),
        ports,
        plugin_dirs,
    })
}

/// The networks a pod's stage1 recorded joining (`net-info.json`), in `rkt list`'s form
/// (`default:ip4=172.16.28.2`); empty if it joined none.
pub fn pod_networks(pod_dir: &Path) -> Vec<String> {
    read_attachments(pod_dir)
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// The attachments in `net-info.json`, or none if it is missing or unreadable.
pub fn read_attachments(pod_dir: &Path) -> Vec<rkt_net::Attachment> {
    std::fs::read(pod_dir.join(rkt_pod::status::files::NET_INFO))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rkt_net::parse_net_flag;

    fn mapping() -> PortMapping {
        PortMapping {
            host_ip: None,
            host_port: 8080,
            container_port: 80,
            protocol: "tcp".into(),
        }
    }

    #[test]
    fn host_and_none_refuse_ports() {
        let dir = tempfile::tempdir().unwrap();
        for flag in ["host", "none"] {
            let sel = parse_net_flag(flag).unwrap();
            assert!(net_mode(&sel, &[], dir.path(), Vec::new()).is_ok());
            let e = net_mode(&sel, &[], dir.path(), vec![mapping()]).unwrap_err();
            assert!(
                e.to_string().contains("--port needs a contained network"),
                "{e}"
            );
        }
    }

    #[test]
    fn default_resolves_to_the_builtin_with_leases_in_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let mode = net_mode(&NetSelection::default(), &[], dir.path(), vec![mapping()]).unwrap();
        let NetMode::Contained {
            networks,
            ports,
            plugin_dirs,
        } = mode
        else {
            panic!("not contained: {mode:?}");
        };
        assert_eq!(networks.len(), 1);
        assert_eq!(networks[0].name, "default");
        let text = networks[0].config.to_string();
        assert!(
            text.contains(&ipam_dir(dir.path()).display().to_string()),
            "{text}"
        );
        assert_eq!(ports, vec![mapping()]);
        assert!(plugin_dirs.contains(&PathBuf::from(Cni::SYSTEM_PLUGIN_DIR)));
    }

    #[test]
    fn ports_need_a_forwarding_network_and_names_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let sel = parse_net_flag("default-restricted").unwrap();
        let e = net_mode(&sel, &[], dir.path(), vec![mapping()]).unwrap_err();
        assert!(e.to_string().contains("portmap"), "{e}");
        let sel = parse_net_flag("nosuchnet").unwrap();
        let e = net_mode(&sel, &[], dir.path(), Vec::new()).unwrap_err();
        assert!(e.to_string().contains("nosuchnet"), "{e}");
    }

    #[test]
    fn user_networks_come_from_net_d() {
        let dir = tempfile::tempdir().unwrap();
        let net_d = dir.path().join("net.d");
        std::fs::create_dir(&net_d).unwrap();
        std::fs::write(
            net_d.join("10-mynet.conf"),
            r#"{"cniVersion":"0.4.0","name":"mynet","type":"bridge","bridge":"rkt-test0",
                "ipam":{"type":"host-local","subnet":"10.99.0.0/24"}}"#,
        )
        .unwrap();
        let sel = parse_net_flag("mynet:IP=10.99.0.9").unwrap();
        let NetMode::Contained { networks, .. } =
            net_mode(&sel, std::slice::from_ref(&net_d), dir.path(), Vec::new()).unwrap()
        else {
            panic!("not contained");
        };
        let names: Vec<&str> = networks.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["mynet", "default-restricted"]);
        assert_eq!(networks[0].args, vec![("IP".into(), "10.99.0.9".into())]);
    }
}
