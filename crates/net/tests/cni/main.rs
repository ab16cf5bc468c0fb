//! CNI with Debian's real plugins, in real network namespaces, as root. Every test runs inside a
//! network namespace of its own (see `common`): nothing here can reach the machine's network.

mod common;

mod attach;
mod cleanup;
mod masq;
