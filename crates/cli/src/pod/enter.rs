//! `rkt enter [--app=NAME] POD [CMD…]`.

use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use rkt_pod::PodState;
use rkt_stage0::exec::{Stage1Image, exec_stage1};

use crate::global::GlobalArgs;

/// `rkt enter` arguments.
#[derive(Debug, Args)]
pub struct EnterArgs {
    /// The app to enter (needed when the pod has several)
    #[arg(long)]
    pub app: Option<String>,
    /// Pod UUID, unique prefix or name
    pub pod: String,
    /// Command to run [default: /bin/sh]
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

/// Execs stage1's enter entrypoint: the command gets exactly the app's namespaces, cgroup,
/// user, capabilities and seccomp filter.
pub fn run(g: &GlobalArgs, a: EnterArgs) -> anyhow::Result<ExitCode> {
    let pods = super::pods(g)?;
    let pod = pods.get(&a.pod)?;
    if pod.state() != PodState::Running {
        bail!(
            "pod {} is {}, not running: only a running pod can be entered",
            pod.uuid(),
            pod.state()
        );
    }
    let req = rkt_stage0::view::read_request(pod.dir())
        .ok_or_else(|| anyhow::anyhow!("pod {} has no readable stage1 request", pod.uuid()))?;
    let names: Vec<&str> = req.apps.iter().map(|x| x.name.as_str()).collect();
    let app = match (&a.app, names.as_slice()) {
        (Some(x), _) if names.contains(&x.as_str()) => x.clone(),
        (Some(x), _) => bail!(
            "pod {} has no app {x:?}; its apps are {}",
            pod.uuid(),
            names.join(", ")
        ),
        (None, [only]) => (*only).to_owned(),
        (None, _) => bail!(
            "pod {} has several apps ({}); choose one with --app",
            pod.uuid(),
            names.join(", ")
        ),
    };
    let mut args = vec!["--app".to_owned(), app, "--".to_owned()];
    args.extend(a.cmd);
    let stage1 = Stage1Image::start(super::stage1()?);
    Err(exec_stage1(stage1, "enter", pod.dir(), g.debug, &args, None).into())
}
