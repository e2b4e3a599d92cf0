//! Running the depmod pipeline for a module directory into a scratch output directory.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use depmod_rs::cli::Options;
use depmod_rs::compat::KmodVersion;

/// Where a module tree is: its root (`-b`), module directory (`-m`) and kernel version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeLocation {
    /// The root given to depmod with `-b`, if any.
    pub basedir: Option<PathBuf>,
    /// The module directory relative to the root (`-m`), when it is not `/lib/modules`.
    pub moduledir: Option<PathBuf>,
    /// The kernel version.
    pub kversion: OsString,
}

impl TreeLocation {
    /// `ROOT/lib/modules/KVER`, or `DIR` itself.
    pub fn from_args(
        basedir: Option<&Path>,
        path: &Path,
        version: KmodVersion,
    ) -> Result<Self, String> {
        if let Some(root) = basedir {
            let kversion = path.as_os_str().to_owned();
            if kversion.as_bytes().contains(&b'/') {
                return Err(format!(
                    "with -b, give the kernel version, not a path: {}",
                    path.display()
                ));
            }
            return Ok(TreeLocation {
                basedir: Some(root.to_path_buf()),
                moduledir: None,
                kversion,
            });
        }
        let dir = std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let kversion = dir
            .file_name()
            .ok_or_else(|| format!("{}: not a module directory", path.display()))?
            .to_owned();
        let parent = dir.parent().unwrap_or(Path::new("/"));
        if parent.ends_with("lib/modules") {
            let root = parent
                .parent()
                .and_then(Path::parent)
                .unwrap_or(Path::new("/"));
            return Ok(TreeLocation {
                basedir: Some(root.to_path_buf()),
                moduledir: None,
                kversion,
            });
        }
        if version.has_moduledir() {
            return Ok(TreeLocation {
                basedir: None,
                moduledir: Some(parent.to_path_buf()),
                kversion,
            });
        }
        Err(format!(
            "{}: not under lib/modules/; give -b ROOT KVER (kmod {version} has no -m)",
            path.display()
        ))
    }

    /// The directory depmod reads modules from and writes indexes into.
    pub fn module_dir(&self) -> PathBuf {
        let root = self.basedir.clone().unwrap_or_else(|| PathBuf::from("/"));
        let moduledir = self
            .moduledir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/lib/modules"));
        let relative = moduledir
            .strip_prefix("/")
            .unwrap_or(&moduledir)
            .to_path_buf();
        root.join(relative).join(&self.kversion)
    }
}

/// A scratch directory removed when dropped.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// A new empty directory under the system temporary directory.
    pub fn new(tag: &str) -> Result<Self, String> {
        let base = std::env::temp_dir();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        for attempt in 0..100u32 {
            let path = base.join(format!(
                "modindex-{tag}-{}-{nanos}-{attempt}",
                std::process::id()
            ));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(ScratchDir { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
        }
        Err(format!(
            "{}: could not create a scratch directory",
            base.display()
        ))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// How to run depmod.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Behave and write like this kmod release.
    pub compat: KmodVersion,
    /// depmod.d configuration paths (`-C`); empty for depmod's defaults.
    pub config: Vec<PathBuf>,
    /// Treat `.ko.gz` as modules.
    pub gzip: bool,
}

/// Runs depmod on the tree at `location`, writing into a fresh scratch directory; returns the
/// scratch directory and the module directory inside it that holds the indexes. depmod's own
/// diagnostics go to stderr, as in a real run.
pub fn run_into_scratch(
    location: &TreeLocation,
    options: &PipelineOptions,
) -> Result<(ScratchDir, PathBuf), String> {
    let scratch = ScratchDir::new("depmod")?;
    let bytes = |p: &Path| p.as_os_str().to_owned().into_vec();
    let cli = Options {
        all: true,
        basedir: location.basedir.as_deref().map(bytes),
        moduledir: location.moduledir.as_deref().map(bytes),
        outdir: Some(bytes(scratch.path())),
        config: options.config.iter().map(|c| bytes(c)).collect(),
        compat: options.compat,
        gzip: options.gzip,
        positionals: vec![location.kversion.clone().into_vec()],
        ..Options::default()
    };
    let code = depmod_rs::run::run(&cli);
    if code != 0 {
        return Err(format!(
            "depmod failed on {} (exit status {code})",
            location.module_dir().display()
        ));
    }
    let moduledir = location
        .moduledir
        .clone()
        .unwrap_or_else(|| PathBuf::from("/lib/modules"));
    let relative = moduledir
        .strip_prefix("/")
        .unwrap_or(&moduledir)
        .to_path_buf();
    let written = scratch.path().join(relative).join(&location.kversion);
    Ok((scratch, written))
}
