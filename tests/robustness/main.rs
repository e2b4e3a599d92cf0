//! Robustness: broken inputs, broken output directories, interrupted runs and hostile file
//! system layouts. Where Debian's kmod 34.2 and kmod 30 are available (reference cache and
//! `/usr/sbin/depmod`), every scenario they can run is run through them too and must give the
//! same exit status, stderr and files.

mod atomicity;
mod bad_inputs;
mod harness;
mod limits;
mod output_dir;
mod unreadable;
