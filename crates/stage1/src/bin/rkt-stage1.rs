//! `rkt-stage1`: the `ns` flavor's binary, exec'd by stage0 (`rkt run`, `enter`, `stop`,
//! `gc`). See `rkt_stage1::ns`.

fn main() {
    std::process::exit(rkt_stage1::ns::main(std::env::args_os().skip(1).collect()))
}
