//! The discover stage: the configuration, the module walk (or the files named on the command
//! line) and kmod's module order (§3, §4).

use std::path::PathBuf;

use rustc_hash::FxHashMap;

use super::input::{os_path, read_input};
use super::Failed;
use crate::bmsg;
use crate::cli::Options;
use crate::compat::KmodVersion;
use crate::config::{default_config_dirs, load_config, Config};
use crate::diag::{Diag, HeldMessages};
use crate::discover::{self, DirListing, DiscoveredModule, ListingCache, Registry};
use crate::order::{
    apply_modules_order, parse_modules_order, sort_hash_order, OrderFile, MODULE_BUCKETS,
};

/// Reads the depmod.d configuration: the `-C` paths, or the release's default directories.
pub fn configuration(options: &Options, kversion: &[u8], diag: &Diag) -> Config {
    let config_paths: Vec<PathBuf> = if options.config.is_empty() {
        default_config_dirs(options.compat)
    } else {
        options.config.iter().map(|c| os_path(c)).collect()
    };
    load_config(&config_paths, kversion, options.compat, diag)
}

/// What a walk of the tree found besides the modules: what a later run could reuse.
#[derive(Debug, Default)]
pub struct Walked {
    /// The plain listings of the directories walked, by path (only when the walk was given
    /// reusable listings, see [`ListingCache`]).
    pub listings: FxHashMap<Vec<u8>, DirListing>,
    /// How many of those were read rather than reused.
    pub listings_read: usize,
    /// Whether some directory walked has no listing in `listings`.
    pub unlisted: bool,
    /// Whether the walk and the ordering printed any message.
    pub printed: bool,
    /// The bytes of `modules.order`, when it was read.
    pub order_file: Option<Vec<u8>>,
}

/// The outcome of a walk: the modules in kmod's order, and what a later run could reuse.
#[derive(Debug, Default)]
pub struct WalkedTree {
    /// The modules, in kmod's order.
    pub modules: Vec<DiscoveredModule>,
    /// What else the walk found.
    pub walked: Walked,
}

/// All mode: walks the module directory and the external directories, then orders the
/// modules. With `reuse`, module files are `stat`ed and unchanged directories listed from
/// it (see [`ListingCache`]).
pub fn walk_tree(
    options: &Options,
    config: &Config,
    dirname: &[u8],
    reuse: Option<ListingCache<'_>>,
    diag: &Diag,
) -> Result<WalkedTree, Failed> {
    let printed_before = diag.printed_count();
    let search = discover::search(config, dirname, options.gzip, reuse, diag).map_err(|err| {
        diag.fatal(format!("could not search modules: {err}"));
        Failed
    })?;
    let Ordered {
        modules,
        order_file,
    } = order_modules(search.registry, options.compat, dirname, diag)?;
    let walked = Walked {
        listings: search.listings,
        listings_read: search.listings_read,
        unlisted: search.unlisted,
        printed: diag.printed_count() != printed_before,
        order_file,
    };
    Ok(WalkedTree { modules, walked })
}

/// File-list mode: registers the module files named on the command line, then orders them.
pub fn list_files(
    files: &[Vec<u8>],
    dirname: &[u8],
    version: KmodVersion,
    diag: &Diag,
) -> Result<Vec<DiscoveredModule>, Failed> {
    let registry = discover::from_file_list(files, dirname, version, diag).map_err(|err| {
        diag.fatal(err.message());
        Failed
    })?;
    Ok(order_modules(registry, version, dirname, diag)?.modules)
}

/// The modules in kmod's order, and the bytes of `modules.order` when it was read.
struct Ordered {
    modules: Vec<DiscoveredModule>,
    order_file: Option<Vec<u8>>,
}

/// kmod's module array: hash order, then `modules.order` (§4).
fn order_modules(
    registry: Registry,
    version: KmodVersion,
    dirname: &[u8],
    diag: &Diag,
) -> Result<Ordered, Failed> {
    let mut modules = registry.into_modules();
    sort_hash_order(&mut modules, MODULE_BUCKETS, |m| &m.modname);
    if version.limits_module_count() && modules.len() >= 65535 {
        diag.fatal("could not build module array: Numerical result out of range");
        return Err(Failed);
    }
    let mut messages = HeldMessages::default();
    let order_file = read_input(dirname, "modules.order", &mut messages);
    messages.flush(diag);
    if let Some(data) = &order_file {
        match parse_modules_order(data) {
            OrderFile::Lines(lines) => {
                apply_modules_order(&mut modules, &lines, version, |m| m.uncrelpath())
            }
            OrderFile::Corrupted { line } => diag.error(bmsg!(
                dirname,
                "/modules.order:",
                line.to_string(),
                " corrupted line misses '\\n'"
            )),
        }
    }
    Ok(Ordered {
        modules,
        order_file,
    })
}
