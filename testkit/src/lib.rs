//! The test kit of depmod-rs: module files and module trees made up for tests.
//!
//! * [`synth`] — synthetic kernel-module ELF files for tests and demo trees.
//! * [`testgen`] — random module trees from a seed, for conformance tests against real kmod.
//!
//! The crate is not published. The main package uses it for its tests and examples (a
//! dev-dependency), and the fuzz targets use [`synth`]. It depends on the
//! library only for [`depmod_rs::module::Compression`], the formats [`synth::compress`] packs.

pub mod synth;
pub mod testgen;
