//! The library half of the `arcp` binary: the plugin membrane ([`plugins`]), kept in a
//! library so integration tests and the documentation can use it directly. The binary
//! (`src/main.rs`) wires it into `arcp serve`.

pub mod keys;
pub mod plugins;
pub mod stores;
