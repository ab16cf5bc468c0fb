//! Failures and removal: rollback, detach when things are gone, limits, refused plugins.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use rkt_net::{
    Cni, NetConfig, NetError, NetSelection, NetworkRequest, load_networks, parse_net_flag,
    remove_netns_file, resolve_networks,
};

use crate::common::{Plugins, PodNs, leases, pod_nat_rules, veths, veths_settled};
use crate::sandbox_test;

/// A plugin that fails ADD with a CNI error and records each command it gets.
fn failer(log: &Path) -> String {
    format!(
        r#"#!/bin/sh
cat >/dev/null
echo "$CNI_COMMAND $CNI_IFNAME" >> {log}
case "$CNI_COMMAND" in
ADD)
  echo "failer: about to fail" >&2
  echo '{{"cniVersion":"1.0.0","code":101,"msg":"refusing on purpose","details":"the test plugin always fails ADD"}}'
  exit 1 ;;
VERSION) echo '{{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}}' ;;
esac
exit 0
"#,
        log = log.display()
    )
}

fn cache_entries(cache: &Path) -> Vec<String> {
    fs::read_dir(cache)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

sandbox_test! {
    fn a_failure_in_a_conflist_rolls_everything_back() {
        let dir = tempfile::tempdir().unwrap();
        let (ipam, cache, netd) =
            (dir.path().join("ipam"), dir.path().join("net"), dir.path().join("net.d"));
        fs::create_dir_all(&netd).unwrap();
        let log = dir.path().join("failer.log");
        let plugins = Plugins::new();
        plugins.add("failer", &failer(&log));
        // Sorts after rkt's 99-default.conf, so `default` is attached first and rolled back too.
        fs::write(
            netd.join("zz-flaky.conflist"),
            format!(
                r#"{{"cniVersion":"1.0.0","name":"flaky","plugins":[
                    {{"type":"ptp","ipMasq":true,"ipam":{{"type":"host-local",
                      "subnet":"10.77.0.0/24","dataDir":"{}"}}}},
                    {{"type":"failer"}}]}}"#,
                ipam.display()
            ),
        )
        .unwrap();
        let user = load_networks(&[netd]).unwrap();
        let nets = resolve_networks(&parse_net_flag("flaky,default").unwrap(), &user, &ipam).unwrap();
        assert_eq!(nets.iter().map(|(c, _)| c.name()).collect::<Vec<_>>(), ["default", "flaky"]);
        let pod = PodNs::new(dir.path());

        let err = plugins.cni().attach(&cache, &pod.path, "pod-f", &nets, &[]).unwrap_err();
        let NetError::PluginFailed { ref network, ref plugin, command, ref error } = err else {
            panic!("expected the plugin's error, got {err}")
        };
        assert_eq!((network.as_str(), plugin.as_str(), command), ("flaky", "failer", "ADD"));
        assert_eq!(error.code, Some(101));
        assert_eq!(error.msg, "refusing on purpose");
        assert_eq!(error.details, "the test plugin always fails ADD");
        assert_eq!(error.stderr, "failer: about to fail");
        let msg = err.to_string();
        assert!(msg.contains("refusing on purpose") && msg.contains("101"), "{msg}");
        // DEL follows a failed ADD, as the spec wants.
        assert_eq!(fs::read_to_string(&log).unwrap(), "ADD eth1\nDEL eth1\n");

        assert!(veths().is_empty(), "{:?}", veths());
        assert!(leases(&ipam).is_empty(), "{:?}", leases(&ipam));
        assert!(pod_nat_rules("pod-f").is_empty(), "{:?}", pod_nat_rules("pod-f"));
        assert!(cache_entries(&cache).is_empty(), "{:?}", cache_entries(&cache));
        assert!(!pod.run("ip -o link").contains("eth"));
    }
}

sandbox_test! {
    fn detach_twice_and_with_the_netns_gone() {
        let dir = tempfile::tempdir().unwrap();
        let (ipam, cache) = (dir.path().join("ipam"), dir.path().join("net"));
        let cni = Cni::rkt_default(&[]).unwrap();
        let nets = resolve_networks(&NetSelection::default(), &BTreeMap::new(), &ipam).unwrap();

        // Never attached: nothing to do.
        cni.detach(&dir.path().join("nothing"), &dir.path().join("no-netns"), "pod-x").unwrap();

        let pod = PodNs::new(dir.path());
        cni.attach(&cache, &pod.path, "pod-g", &nets, &[]).unwrap();
        assert!(!pod_nat_rules("pod-g").is_empty());
        // The namespace goes away (its veth with it) before gc gets to the pod.
        remove_netns_file(&pod.path).unwrap();
        remove_netns_file(&pod.path).unwrap();
        assert!(!pod.path.exists());
        cni.detach(&cache, &pod.path, "pod-g").unwrap();
        assert!(leases(&ipam).is_empty(), "{:?}", leases(&ipam));
        assert_eq!(veths_settled(), Vec::<String>::new());
        assert!(pod_nat_rules("pod-g").is_empty(), "{:?}", pod_nat_rules("pod-g"));
        assert!(cache_entries(&cache).is_empty());
        cni.detach(&cache, &pod.path, "pod-g").unwrap();

        // An empty file where the namespace was (unmounted elsewhere) counts as gone, too.
        let pod = PodNs::new(dir.path());
        cni.attach(&cache, &pod.path, "pod-h", &nets, &[]).unwrap();
        rustix::mount::unmount(&pod.path, rustix::mount::UnmountFlags::DETACH).unwrap();
        assert!(pod.path.exists());
        cni.detach(&cache, &pod.path, "pod-h").unwrap();
        assert!(leases(&ipam).is_empty());
        assert_eq!(veths_settled(), Vec::<String>::new());
        assert!(pod_nat_rules("pod-h").is_empty(), "{:?}", pod_nat_rules("pod-h"));
    }
}

fn one_plugin_net(name: &str, plugin: &str) -> (NetConfig, NetworkRequest) {
    let conf = NetConfig::from_json(
        format!(r#"{{"cniVersion":"1.0.0","name":"{name}","type":"{plugin}"}}"#).as_bytes(),
        None,
    )
    .unwrap();
    (conf, NetworkRequest::new(name))
}

sandbox_test! {
    fn slow_chatty_and_silent_plugins_are_stopped_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("net");
        let pod = PodNs::new(dir.path());
        let plugins = Plugins::new();
        plugins.add("slowpoke", "#!/bin/sh\n[ \"$CNI_COMMAND\" = ADD ] || exit 0\necho thinking >&2\nexec sleep 30\n");
        plugins.add("chatty", "#!/bin/sh\n[ \"$CNI_COMMAND\" = ADD ] || exit 0\nhead -c 3000000 /dev/zero | tr '\\0' x\n");
        plugins.add("silent", "#!/bin/sh\n[ \"$CNI_COMMAND\" = ADD ] || exit 0\necho 'no such thing' >&2\nexit 3\n");
        plugins.add("garbled", "#!/bin/sh\necho 'this is not json'\n");
        let cni = plugins.cni().with_timeout(Duration::from_secs(2));

        let start = Instant::now();
        let err = cni.attach(&cache, &pod.path, "pod", &[one_plugin_net("slow", "slowpoke")], &[]);
        let err = err.unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(10), "the timeout did not stop the plugin");
        assert!(matches!(err, NetError::Timeout { ref stderr, .. } if stderr == "thinking"), "{err}");

        let err = cni.attach(&cache, &pod.path, "pod", &[one_plugin_net("chat", "chatty")], &[]);
        assert!(matches!(err, Err(NetError::OutputTooLarge { .. })), "{err:?}");

        let err = cni.attach(&cache, &pod.path, "pod", &[one_plugin_net("quiet", "silent")], &[]);
        let msg = err.unwrap_err().to_string();
        assert!(msg.contains("exited with status 3") && msg.contains("no such thing"), "{msg}");

        let err = cni.attach(&cache, &pod.path, "pod", &[one_plugin_net("garbled", "garbled")], &[]);
        assert!(matches!(err, Err(NetError::BadResult { .. })), "{err:?}");
        assert!(cache_entries(&cache).is_empty(), "{:?}", cache_entries(&cache));
    }
}

sandbox_test! {
    fn plugins_see_only_the_cni_environment() {
        let dir = tempfile::tempdir().unwrap();
        let (cache, dump) = (dir.path().join("net"), dir.path().join("env"));
        let pod = PodNs::new(dir.path());
        let plugins = Plugins::new();
        plugins.add(
            "envdump",
            &format!(
                "#!/bin/sh\ncat >/dev/null\n[ \"$CNI_COMMAND\" = ADD ] && env > {}\n\
                 echo '{{\"cniVersion\":\"1.0.0\",\"ips\":[{{\"address\":\"10.5.0.2/24\"}}]}}'\n",
                dump.display()
            ),
        );
        let (conf, _) = one_plugin_net("envnet", "envdump");
        let req = NetworkRequest { name: "envnet".into(), args: vec![("X".into(), "y".into())] };
        let atts = plugins.cni().attach(&cache, &pod.path, "pod-env", &[(conf, req)], &[]).unwrap();
        assert_eq!(atts[0].to_string(), "envnet:ip4=10.5.0.2");
        let env: BTreeMap<String, String> = fs::read_to_string(&dump)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
            .collect();
        assert_eq!(env["CNI_COMMAND"], "ADD");
        assert_eq!(env["CNI_CONTAINERID"], "pod-env");
        assert_eq!(env["CNI_IFNAME"], "eth0");
        assert_eq!(env["CNI_NETNS"], pod.path.to_str().unwrap());
        assert_eq!(env["CNI_ARGS"], "IgnoreUnknown=1;X=y");
        assert!(env["CNI_PATH"].ends_with(":/usr/lib/cni"));
        assert!(env["PATH"].contains("/usr/sbin"));
        // The shell adds PWD (and maybe SHLVL, _); nothing of the test's own environment
        // (HOME, CARGO_*, the sandbox's variables) gets through.
        let leaked: Vec<_> = env
            .keys()
            .filter(|k| !k.starts_with("CNI_") && !["PATH", "PWD", "SHLVL", "_", "OLDPWD"].contains(&k.as_str()))
            .collect();
        assert!(leaked.is_empty(), "{leaked:?}");
        assert_eq!(env["PWD"], "/");
        plugins.cni().detach(&cache, &pod.path, "pod-env").unwrap();
    }
}

sandbox_test! {
    fn plugin_names_cannot_leave_the_plugin_directories() {
        let dir = tempfile::tempdir().unwrap();
        let netd = dir.path().join("net.d");
        fs::create_dir_all(&netd).unwrap();
        fs::write(netd.join("10-evil.conf"), r#"{"cniVersion":"1.0.0","name":"evil","type":"../../bin/sh"}"#)
            .unwrap();
        let err = load_networks(std::slice::from_ref(&netd)).unwrap_err().to_string();
        assert!(err.contains("10-evil.conf") && err.contains("../../bin/sh"), "{err}");
        fs::write(
            netd.join("10-evil.conf"),
            r#"{"cniVersion":"1.0.0","name":"evil","type":"ptp","ipam":{"type":"/bin/sh"}}"#,
        )
        .unwrap();
        assert!(load_networks(&[netd]).is_err());

        // A name that is fine but not an executable file in a plugin directory.
        let plugins = Plugins::new();
        fs::write(plugins.dir.path().join("notexec"), "#!/bin/sh\n").unwrap();
        fs::create_dir(plugins.dir.path().join("adir")).unwrap();
        let pod = PodNs::new(dir.path());
        for plugin in ["notexec", "adir", "nonesuch"] {
            let err = plugins
                .cni()
                .attach(&dir.path().join("net"), &pod.path, "pod", &[one_plugin_net("n", plugin)], &[])
                .unwrap_err();
            assert!(matches!(err, NetError::PluginNotFound { .. }), "{plugin}: {err}");
        }
        assert!(cache_entries(&dir.path().join("net")).is_empty());

        // attach refuses a path that holds no network namespace.
        let err = Cni::rkt_default(&[])
            .unwrap()
            .attach(&dir.path().join("net"), dir.path(), "pod", &[], &[])
            .unwrap_err();
        assert!(matches!(err, NetError::NotANetns { .. }), "{err}");
    }
}
