//! Writing a [`TreeSpec`] to disk.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::spec::{Compression, Location, ModuleContents, TreeSpec};

/// Why a tree could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A file system operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A compressor (`xz`, `zstd`, `gzip`) could not be run or failed.
    #[error("{program} failed for {path}: {detail}")]
    Compressor {
        /// The command.
        program: &'static str,
        /// The file being written.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

/// Where the pieces of a written tree are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenTree {
    /// The `-b` root.
    pub root: PathBuf,
    /// Kernel version.
    pub kver: String,
    /// `root/lib/modules/<kver>`.
    pub module_dir: PathBuf,
    /// The depmod.d directory to pass with `-C` (always exists, possibly empty).
    pub config_dir: PathBuf,
    /// External directories, by number.
    pub externals: Vec<PathBuf>,
    /// Extra depmod options with `@ROOT@` resolved.
    pub options: Vec<String>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError + '_ {
    move |source| WriteError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io(parent))?;
    }
    fs::write(path, bytes).map_err(io(path))
}

fn compress(
    program: &'static str,
    args: &[&str],
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<u8>, WriteError> {
    let fail = |detail: String| WriteError::Compressor {
        program,
        path: path.to_path_buf(),
        detail,
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    let mut stdin = child.stdin.take().ok_or_else(|| fail("no stdin".into()))?;
    let input = bytes.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    match feeder.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(fail(e.to_string())),
        Err(_) => return Err(fail("writer thread panicked".into())),
    }
    if !output.status.success() {
        return Err(fail(String::from_utf8_lossy(&output.stderr).into_owned()));
    }
    Ok(output.stdout)
}

/// Writes `spec` under `root` (which should be empty): modules, `modules.order`,
/// `modules.builtin*`, depmod.d files in `root/etc/depmod.d` and external directories
/// `root/ext<n>`.
pub fn write_tree(spec: &TreeSpec, root: &Path) -> Result<WrittenTree, WriteError> {
    let module_dir = root.join("lib/modules").join(&spec.kver);
    fs::create_dir_all(&module_dir).map_err(io(&module_dir))?;
    let externals: Vec<PathBuf> = (0..spec.externals)
        .map(|n| root.join(format!("ext{n}")))
        .collect();
    for dir in &externals {
        fs::create_dir_all(dir).map_err(io(dir))?;
    }
    for m in &spec.modules {
        let (base_dir, rel) = match &m.location {
            Location::ModuleDir(rel) => (module_dir.as_path(), rel),
            Location::External(n, rel) => match externals.get(*n) {
                Some(dir) => (dir.as_path(), rel),
                None => continue,
            },
        };
        let path = base_dir.join(format!("{rel}.ko{}", m.compression.suffix()));
        let raw = match &m.contents {
            ModuleContents::Elf(module) => module.to_elf(),
            ModuleContents::Raw(bytes) => bytes.clone(),
        };
        let bytes = match m.compression {
            Compression::None => raw,
            Compression::Xz => compress("xz", &["-c", "--check=crc32", "-T1"], &path, &raw)?,
            Compression::Zstd => {
                // Record the content size in the frame header as `zstd FILE` (kbuild) does;
                // kmod 34 refuses frames without it.
                let size = format!("--stream-size={}", raw.len());
                compress("zstd", &["-q", "-c", &size], &path, &raw)?
            }
            Compression::Gzip => compress("gzip", &["-n", "-c"], &path, &raw)?,
        };
        write_file(&path, &bytes)?;
    }
    for (rel, bytes) in &spec.other_files {
        write_file(&module_dir.join(rel), bytes)?;
    }
    for (link, target) in &spec.symlinks {
        let path = module_dir.join(link);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::os::unix::fs::symlink(target, &path).map_err(io(&path))?;
    }
    if let Some(order) = &spec.order {
        let mut text = order.lines.join("\n");
        if order.final_newline && !order.lines.is_empty() {
            text.push('\n');
        }
        write_file(&module_dir.join("modules.order"), text.as_bytes())?;
    }
    if let Some(builtin) = &spec.builtin {
        write_file(&module_dir.join("modules.builtin"), builtin)?;
    }
    if let Some(modinfo) = &spec.builtin_modinfo {
        write_file(&module_dir.join("modules.builtin.modinfo"), modinfo)?;
    }
    let config_dir = root.join("etc/depmod.d");
    fs::create_dir_all(&config_dir).map_err(io(&config_dir))?;
    for conf in &spec.configs {
        let mut text = conf.text.clone();
        for (n, dir) in externals.iter().enumerate() {
            text = text.replace(&format!("@EXT{n}@"), &dir.to_string_lossy());
        }
        write_file(&config_dir.join(&conf.name), text.as_bytes())?;
    }
    if let Some(symvers) = &spec.symvers {
        write_file(&root.join("Module.symvers"), symvers)?;
    }
    if let Some(map) = &spec.system_map {
        write_file(&root.join("System.map"), map)?;
    }
    let root_text = root.to_string_lossy();
    let options = spec
        .options
        .iter()
        .map(|o| o.replace("@ROOT@", &root_text))
        .collect();
    Ok(WrittenTree {
        options,
        root: root.to_path_buf(),
        kver: spec.kver.clone(),
        module_dir,
        config_dir,
        externals,
    })
}
