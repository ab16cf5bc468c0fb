//! Pod networking end to end: `rkt run --net=…` with Debian's CNI plugins, `--port`, DNS,
//! `list`/`status`, and the cleanup at stop, gc and after a failure.
//!
//! Network safety: every test here runs inside a fresh network namespace made by the harness
//! ([`rkt_tests::netns`]: only `lo`, no default route, no uplink). The only addresses that ever
//! receive traffic are inside it: the pods' and the namespace's own.

mod e2e_pod_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use e2e_pod_support::{PodEnv, busybox};
use rkt_tests::net_sandbox_test;
use rkt_tests::netns::{exchange, iptables_rules, links};

/// The IPv4 address `status`'s `networks=` gives for `network`.
fn pod_ip(env: &PodEnv, uuid: &str, network: &str) -> String {
    let st = env.status(uuid);
    let nets = st.get("networks").cloned().unwrap_or_default();
    nets.split(',')
        .find_map(|n| n.strip_prefix(&format!("{network}:ip4=")))
        .unwrap_or_else(|| panic!("no {network} address in networks={nets:?}"))
        .to_string()
}

/// `host-local` leases still held under the data directory.
fn leases(env: &PodEnv) -> Vec<PathBuf> {
    rkt_tests::netns::leases(&env.rkt.dir().join("networks/ipam"))
}

/// Asserts the namespace is as it was before any pod: only `lo`, no lease, no per-pod NAT or
/// port-forwarding rule.
fn assert_clean(env: &PodEnv) {
    assert_eq!(links(), ["lo"], "interfaces left over");
    assert_eq!(leases(env), Vec::<PathBuf>::new(), "IP leases left over");
    let rules = iptables_rules();
    let per_pod: Vec<&str> = rules
        .lines()
        .filter(|l| l.starts_with("-A CNI-") && !l.starts_with("-A CNI-HOSTPORT-"))
        .collect();
    assert!(per_pod.is_empty(), "NAT rules left over: {per_pod:#?}");
    assert!(
        !rules.contains("--dport 8080"),
        "a port forward is left:\n{rules}"
    );
}

/// A TCP server on every address of the sandbox: answers one connection with `reply` and
/// returns the line it got.
fn one_shot_server(reply: &'static str) -> (u16, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).unwrap();
        s.write_all(reply.as_bytes()).unwrap();
        line.trim().to_string()
    });
    (port, handle)
}

/// The gateway of the pod's first route through one (`default via X` or `NET via X`).
const GATEWAY: &str = "ip route | awk '/via/ {print $3; exit}'";

net_sandbox_test! {
    fn the_default_network_gives_an_address_a_default_route_and_the_host() {
        let env = PodEnv::new();
        let (port, server) = one_shot_server("hello pod\n");
        let out = env.sh_ok(
            &["--net=default"],
            &[],
            &format!(
                "ip -4 -o addr show eth0; ip route; ip -o link | wc -l; \
                 echo hello-host | nc $({GATEWAY}) {port}"
            ),
        );
        assert!(out.contains("inet 172.16.28."), "{out}");
        assert!(out.contains("default via 172.16.28.1"), "{out}");
        assert!(out.contains("hello pod"), "the pod got no answer from the host: {out}");
        assert_eq!(server.join().unwrap(), "hello-host");
        // The pod has exited: stage1 took it off the network before it returned.
        assert_clean(&env);
    }
}

net_sandbox_test! {
    fn list_and_status_show_each_network_and_two_pods_reach_each_other() {
        let env = PodEnv::new();
        let (mut a, uuid_a) = env.spawn_sh(&["--net=default"], &[], "echo from-a | nc -l -p 7777");
        let ip_a = pod_ip(&env, &uuid_a, "default");
        assert!(ip_a.starts_with("172.16.28."), "{ip_a}");
        let listed = env.list_json();
        let entry = listed
            .iter()
            .find(|p| p["uuid"] == uuid_a.as_str())
            .expect("the pod is listed");
        assert_eq!(
            entry["networks"],
            serde_json::json!([format!("default:ip4={ip_a}")])
        );
        let table = env.ok(&["list", "--no-legend"]).stdout;
        assert!(table.contains(&format!("default:ip4={ip_a}")), "{table}");
        let out = env.sh_ok(&["--net=default"], &[], &format!("nc {ip_a} 7777"));
        assert!(out.contains("from-a"), "pod B did not reach pod A: {out}");
        let done = a.wait();
        assert!(done.success(), "{done}");
        // Shown after the pod exited too.
        assert_eq!(pod_ip(&env, &uuid_a, "default"), ip_a);
        assert_clean(&env);
    }
}

net_sandbox_test! {
    fn default_restricted_reaches_the_host_only() {
        let env = PodEnv::new();
        let (port, server) = one_shot_server("host here\n");
        let out = env.sh_ok(
            &["--net=default-restricted"],
            &[],
            &format!(
                "ip -4 -o addr show eth0; ip route; \
                 echo hi | nc $({GATEWAY}) {port}; \
                 nc -w 2 192.0.2.1 80 </dev/null 2>&1 && echo REACHED-OUTSIDE; true"
            ),
        );
        assert!(out.contains("inet 172.31."), "{out}");
        assert!(!out.contains("default via"), "a default route: {out}");
        assert!(out.contains("host here"), "{out}");
        assert!(out.contains("unreachable"), "{out}");
        assert!(!out.contains("REACHED-OUTSIDE"), "{out}");
        assert_eq!(server.join().unwrap(), "hi");
        assert_clean(&env);
    }
}

net_sandbox_test! {
    fn port_forwards_serve_a_host_side_connection_until_the_pod_stops() {
        let env = PodEnv::new();
        // The busybox fixture declares 8080/tcp, which rkt names 8080-tcp.
        let (mut bg, uuid) = env.spawn_sh(
            &[
                "--net=default",
                "--port=tcp:80:8080",
                "--port=8080-tcp:172.16.28.1:9090",
            ],
            &[],
            "while true; do echo served-by-pod | nc -l -p 80; done & \
             while true; do echo named-port | nc -l -p 8080; done",
        );
        let rules = iptables_rules();
        assert!(rules.contains("--dport 8080"), "no forwarding rule:\n{rules}");
        // The namespace's own address on the pod network, as any host-side client would use.
        let got = exchange("172.16.28.1:8080".parse().unwrap());
        assert!(got.contains("served-by-pod"), "{got}");
        let got = exchange("172.16.28.1:9090".parse().unwrap());
        assert!(got.contains("named-port"), "{got}");
        env.ok(&["stop", &uuid]);
        let _ = bg.wait();
        env.ok(&["status", "--wait=30s", &uuid]);
        assert_clean(&env);
        assert!(!iptables_rules().contains("--dport 9090"));
        let out = env.fail(&["run", "--net=default", "--port=http:8081", &busybox()]);
        assert!(out.stderr.contains("8080-tcp"), "the declared ports are listed: {out}");
    }
}

net_sandbox_test! {
    fn named_networks_take_cni_args_and_give_their_dns() {
        let env = PodEnv::new();
        let net_d = env.rkt.local_config().join("net.d");
        std::fs::create_dir_all(&net_d).unwrap();
        std::fs::write(
            net_d.join("10-dnsnet.conflist"),
            r#"{"cniVersion": "1.0.0", "name": "dnsnet", "plugins": [
                {"type": "ptp", "ipMasq": false,
                 "ipam": {"type": "host-local", "subnet": "10.77.0.0/24"},
                 "dns": {"nameservers": ["10.77.0.53"], "search": ["pods.test"]}}]}"#,
        )
        .unwrap();
        // host-local keeps its leases where the configuration says: the sandbox's data dir.
        let conf = std::fs::read_to_string(net_d.join("10-dnsnet.conflist")).unwrap().replace(
            r#""subnet": "10.77.0.0/24""#,
            &format!(
                r#""subnet": "10.77.0.0/24", "dataDir": "{}""#,
                env.rkt.dir().join("networks/ipam").display()
            ),
        );
        std::fs::write(net_d.join("10-dnsnet.conflist"), conf).unwrap();

        let out = env.sh_ok(
            &["--net=dnsnet:IP=10.77.0.77"],
            &[],
            "ip -4 -o addr; cat /etc/resolv.conf",
        );
        assert!(out.contains("eth0    inet 10.77.0.77/") || out.contains("inet 10.77.0.77/"), "{out}");
        // default-restricted joins a list without default, after the user's network.
        assert!(out.contains("eth1") && out.contains("inet 172.31."), "{out}");
        assert!(out.contains("nameserver 10.77.0.53"), "{out}");
        assert!(out.contains("search pods.test"), "{out}");

        let out = env.sh_ok(&["--net=dnsnet", "--dns=192.0.2.53"], &[], "cat /etc/resolv.conf");
        assert!(out.contains("nameserver 192.0.2.53"), "{out}");
        assert!(!out.contains("10.77.0.53"), "--dns must win over the network's: {out}");
        let out = env.sh_ok(
            &["--net=dnsnet", "--dns=none"],
            &[],
            "cat /etc/resolv.conf 2>/dev/null; true",
        );
        assert!(!out.contains("10.77.0.53"), "--dns=none ignores the network's: {out}");

        // all: every network, the built-ins too, in configuration file order.
        let out = env.sh_ok(&["--net=all"], &[], "ip -4 -o addr");
        for (ifname, net) in [("eth0", "10.77.0."), ("eth1", "172.31."), ("eth2", "172.16.28.")] {
            assert!(
                out.lines().any(|l| l.contains(ifname) && l.contains(net)),
                "{ifname} should be on {net}: {out}"
            );
        }

        // run-prepared may choose other networks than prepare did.
        let uuid = env.ok(&["prepare", "--quiet", "--net=default", &busybox(), "--exec=/bin/sh",
                            "--", "-c", "ip -4 -o addr show eth0"])
            .stdout
            .trim()
            .to_string();
        let out = env.ok(&["run-prepared", "--net=dnsnet", &uuid]);
        assert!(out.stdout.contains("inet 10.77.0."), "{out}");
        assert_clean(&env);
    }
}

net_sandbox_test! {
    fn none_has_loopback_only_and_host_is_this_namespace() {
        let env = PodEnv::new();
        let out = env.sh_ok(&["--net=none"], &[], "ip -o link | wc -l; ip -o link");
        assert_eq!(out.lines().next().map(str::trim), Some("1"), "{out}");
        assert!(out.contains("lo:"), "{out}");
        let mine = std::fs::read_link("/proc/self/ns/net").unwrap();
        let out = env.sh_ok(&["--net=host"], &[], "readlink /proc/self/ns/net");
        assert_eq!(out.trim(), mine.to_string_lossy());
        assert_clean(&env);
    }
}

net_sandbox_test! {
    fn bad_networks_fail_clearly_and_leave_nothing() {
        let env = PodEnv::new();
        let out = env.fail(&["run", "--net=nosuchnet", &busybox(), "--exec=/bin/true"]);
        assert!(out.stderr.contains("nosuchnet"), "{out}");
        assert!(out.stderr.contains("default"), "the known networks are listed: {out}");
        assert!(env.pod_dirs().is_empty(), "{:?}", env.pod_dirs());

        let out = env.fail(&["run", "--net=none", "--port=tcp:80:8080", &busybox()]);
        assert!(out.stderr.contains("--port"), "{out}");
        assert!(env.pod_dirs().is_empty(), "{:?}", env.pod_dirs());

        // A network whose plugin fails after the first network was added: everything added is
        // taken down again and the plugin's own message reaches the user.
        let net_d = env.rkt.local_config().join("net.d");
        std::fs::create_dir_all(&net_d).unwrap();
        std::fs::write(
            net_d.join("50-broken.conf"),
            r#"{"cniVersion": "1.0.0", "name": "broken", "type": "ptp",
                "ipam": {"type": "host-local", "subnet": "not-a-subnet"}}"#,
        )
        .unwrap();
        let out = env.run(&["run", "--net=default,broken", &busybox(), "--exec=/bin/true"]);
        assert_eq!(out.code(), Some(254), "{out}");
        assert!(out.stderr.contains("broken"), "{out}");
        assert!(out.stderr.contains("not-a-subnet"), "the plugin's error is shown: {out}");
        assert_clean(&env);

        // A plugin name that is a path is refused before anything runs.
        std::fs::write(
            net_d.join("60-evil.conf"),
            r#"{"cniVersion": "1.0.0", "name": "evil", "type": "../../../bin/sh"}"#,
        )
        .unwrap();
        let out = env.fail(&["run", "--net=default", &busybox(), "--exec=/bin/true"]);
        assert!(out.stderr.contains("evil") || out.stderr.contains("plugin"), "{out}");
        std::fs::remove_file(net_d.join("60-evil.conf")).unwrap();
        assert_clean(&env);
    }
}

net_sandbox_test! {
    fn gc_takes_a_killed_pod_off_its_network() {
        let env = PodEnv::new();
        let (mut bg, uuid) = env.spawn_sh(&["--net=default", "--port=tcp:80:8080"], &[], "sleep 300");
        let dir = env.pod_dir(&uuid).unwrap();
        assert!(dir.join("netns").exists());
        assert_eq!(leases(&env).len(), 1);
        // stage1 dies without a word: only gc can clean up now.
        let pid = rustix::process::Pid::from_raw(bg.pid()).expect("a live pid");
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
        let _ = bg.wait();
        env.ok(&["status", "--wait=30s", &uuid]);
        assert_ne!(links(), ["lo"], "the veth outlives stage1 until gc");
        env.ok(&["gc", "--grace-period=0s"]);
        env.assert_gone(&uuid);
        assert_clean(&env);
    }
}

net_sandbox_test! {
    fn two_hundred_runs_and_gcs_leave_nothing() {
        let env = PodEnv::new();
        for round in 0..4 {
            for _ in 0..50 {
                let (out, _) =
                    env.run_pod(&["--net=default"], &[&busybox(), "--exec=/bin/true"]);
                assert!(out.success(), "round {round}: {out}");
            }
            env.ok(&["gc", "--grace-period=0s"]);
            assert!(env.pod_dirs().is_empty(), "{:?}", env.pod_dirs());
            assert_clean(&env);
        }
    }
}
