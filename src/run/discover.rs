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
use crate::order::{module_order, permute, ModulesOrder};

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
    // `modules.order` is read beside the walk, which does not need it; its messages come
    // after the walk's, as kmod reads it afterwards.
    let (search, order) = rayon::join(
        || discover::search(config, dirname, options.gzip, reuse, diag),
        || read_modules_order(dirname, options.compat),
    );
    let search = search.map_err(|err| {
        diag.fatal(format!("could not search modules: {err}"));
        Failed
    })?;
    let Ordered {
        modules,
        order_file,
    } = order_modules(search.registry, options.compat, dirname, order, diag)?;
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
    let order = read_modules_order(dirname, version);
    Ok(order_modules(registry, version, dirname, order, diag)?.modules)
}

/// The modules in kmod's order, and the bytes of `modules.order` when it was read.
struct Ordered {
    modules: Vec<DiscoveredModule>,
    order_file: Option<Vec<u8>>,
}

/// `modules.order` of `dirname`, read as `version` places modules by it, and the messages
/// reading it gave (held for their turn).
fn read_modules_order(
    dirname: &[u8],
    version: KmodVersion,
) -> (Option<ModulesOrder>, HeldMessages) {
    let mut messages = HeldMessages::default();
    let order = read_input(dirname, "modules.order", &mut messages)
        .map(|data| ModulesOrder::new(data, version));
    (order, messages)
}

/// kmod's module array: hash order, then `modules.order` (§4), which `order` holds (with
/// the messages reading it gave).
fn order_modules(
    registry: Registry,
    version: KmodVersion,
    dirname: &[u8],
    order: (Option<ModulesOrder>, HeldMessages),
    diag: &Diag,
) -> Result<Ordered, Failed> {
    let mut modules = registry.into_modules();
    if version.limits_module_count() && modules.len() >= 65535 {
        diag.fatal("could not build module array: Numerical result out of range");
        return Err(Failed);
    }
    let (order, messages) = order;
    messages.flush(diag);
    if let Some(line) = order.as_ref().and_then(ModulesOrder::corrupted_line) {
        diag.error(bmsg!(
            dirname,
            "/modules.order:",
            line.to_string(),
            " corrupted line misses '\\n'"
        ));
    }
    // A corrupted file places no module (`ModulesOrder::line_of`).
    let placing = module_order(
        &modules,
        |m| &m.modname,
        |m| order.as_ref()?.line_of(m.uncrelpath()?),
    );
    permute(&mut modules, &placing);
    Ok(Ordered {
        modules,
        order_file: order.map(ModulesOrder::into_data),
    })
}
