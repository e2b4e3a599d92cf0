//! The publish stage: the output directory checked, then each encoded file written into
//! place in kmod's order, its diagnostics printed just before it.
//!
//! A file can also be *staged*: written under its temporary name as soon as it is encoded,
//! on whichever core encoded it, and renamed later in its turn ([`stage_file`],
//! [`publish_staged`]). What reaches stderr and the directory is the same as publishing it
//! in turn: its temporary file is created before it is built (a file whose temporary cannot
//! be created is skipped without its messages), its messages are printed when its turn
//! comes, and a failure stops the run at the same file.

use std::io::Write;

use super::background::close_in_background;
use super::encode::{Encoded, EncodedFile};
use super::input::os_path;
use super::Failed;
use crate::bmsg;
use crate::compat::KmodVersion;
use crate::diag::HeldMessages;
use crate::diag::{strerror, Diag};
use crate::output::OutputFile;
use crate::publish::{
    create_dir_all, DigestWriter, PublishError, Publisher, ReplacedFile, StagedFile, WrittenFile,
};

/// What every publication shares.
#[derive(Debug, Clone, Copy)]
pub struct PublishSettings<'a> {
    /// Where messages go.
    pub diag: &'a Diag,
    /// Whether each file's digest is taken as it is written.
    pub digests: bool,
}

/// Creates the output directory when `create` is set (kmod 31 and later, or `-o`) and
/// checks that it can be opened.
pub fn prepare_output_dir(outdirname: &[u8], create: bool, diag: &Diag) -> Result<(), Failed> {
    let dir = os_path(outdirname);
    if create {
        if let Err(err) = create_dir_all(&dir) {
            diag.fatal(bmsg!(
                "could not create directory ",
                outdirname,
                ": ",
                strerror(&err)
            ));
            return Err(Failed);
        }
    }
    if let Err(err) = std::fs::read_dir(&dir) {
        diag.fatal(bmsg!(
            "could not open directory ",
            outdirname,
            ": ",
            strerror(&err)
        ));
        return Err(Failed);
    }
    Ok(())
}

/// Free space kept beyond twice the present index files before files are written early.
const EARLY_WRITE_MARGIN: u64 = 64 << 20;

/// Whether files can be written ahead of their turn into `publisher`'s directory: only if
/// it is there already (creating it, or failing to, is reported after resolving, as kmod
/// does), and only with room to spare. A run in sequence needs space for one new file at a
/// time; written early, all the new files stand beside the old ones for a moment. So the
/// filesystem must have twice the size of the present index files free, plus a margin;
/// a fuller disk gets the files one at a time, exactly as before.
pub fn can_write_early(publisher: &Publisher, version: KmodVersion) -> bool {
    let dir = publisher.dir();
    if !std::fs::metadata(dir).is_ok_and(|meta| meta.is_dir()) {
        return false;
    }
    let present: u64 = OutputFile::sequence(version)
        .into_iter()
        .filter_map(|file| std::fs::symlink_metadata(dir.join(file.name())).ok())
        .map(|meta| meta.len())
        .sum();
    free_space(dir).is_some_and(|free| free >= present.saturating_mul(2) + EARLY_WRITE_MARGIN)
}

/// The bytes an unprivileged writer can still use on the filesystem holding `dir`.
fn free_space(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is NUL-terminated and `stats` is written by the call before it is read.
    let stats = unsafe {
        if libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) != 0 {
            return None;
        }
        stats.assume_init()
    };
    // Both are 32 bits wide on some targets.
    #[allow(clippy::useless_conversion)]
    let (blocks, block_size) = (u64::from(stats.f_bavail), u64::from(stats.f_frsize));
    Some(blocks.saturating_mul(block_size))
}

/// Publishes one encoded file: creates its temporary file, prints the file's diagnostics,
/// then writes and renames it (or stops at its fatal error).
///
/// As in kmod, the temporary file comes first: if it cannot be created, the file is skipped
/// without the messages that building it prints.
pub fn publish_encoded(
    settings: PublishSettings<'_>,
    publisher: &Publisher,
    encoded: EncodedFile,
) -> Result<WrittenFile, Failed> {
    let EncodedFile {
        file,
        encoded,
        messages,
    } = encoded;
    let fatal = match &encoded {
        Encoded::Fatal(message) => Some(message.clone()),
        _ => None,
    };
    publish_with(settings, publisher, file, messages, fatal, |out| {
        emit_encoded(out, &encoded)
    })
}

/// Publishes `file` with the contents `emit` writes, as [`publish_encoded`] does: its
/// temporary file first, then `messages`, then the contents and the rename; or, with
/// `fatal`, the fatal error instead of the contents.
pub fn publish_with(
    settings: PublishSettings<'_>,
    publisher: &Publisher,
    file: OutputFile,
    messages: HeldMessages,
    fatal: Option<Vec<u8>>,
    emit: impl Fn(&mut dyn Write) -> std::io::Result<()>,
) -> Result<WrittenFile, Failed> {
    let diag = settings.diag;
    let mut written = unwritten(file);
    let pending = match publisher.begin(file.name()) {
        Ok(pending) => pending,
        Err(err) => {
            diag.error(err.message());
            return Ok(written);
        }
    };
    messages.flush(diag);
    if let Some(message) = fatal {
        diag.fatal(message);
        return Err(Failed);
    }
    // The file it replaces is freed on another thread (evicting its pages takes about a
    // millisecond per megabyte).
    let committed = pending
        .stage_with(|out| write_contents(settings, out, &emit, &mut written))
        .and_then(|staged| staged.rename());
    match committed {
        Ok(replaced) => {
            close_in_background(replaced);
            Ok(written)
        }
        Err(err @ PublishError::CreateTemp(_)) => {
            diag.error(err.message());
            Ok(written)
        }
        Err(err @ (PublishError::Write(_) | PublishError::Sync(_))) => {
            diag.error(err.message());
            Err(Failed)
        }
        Err(err @ PublishError::Rename(_)) => {
            diag.fatal(err.message());
            Err(Failed)
        }
    }
}

/// A file of length 0 with no digest: what a file that was not written is recorded as.
fn unwritten(file: OutputFile) -> WrittenFile {
    WrittenFile {
        name: file.name().to_string(),
        size: 0,
        digest: 0,
    }
}

/// Writes the contents of `encoded` to `out`.
fn emit_encoded(out: &mut dyn Write, encoded: &Encoded) -> std::io::Result<()> {
    match encoded {
        Encoded::Bytes(bytes) => out.write_all(bytes),
        Encoded::Index(index) => index.write_to(out),
        Encoded::Fatal(_) => Ok(()),
    }
}

/// Writes what `emit` writes to `out`, through a digest when asked for one (which then
/// goes to `written`).
fn write_contents(
    settings: PublishSettings<'_>,
    out: &mut std::fs::File,
    emit: &impl Fn(&mut dyn Write) -> std::io::Result<()>,
    written: &mut WrittenFile,
) -> std::io::Result<()> {
    if !settings.digests {
        return emit(out);
    }
    (written.size, written.digest) = DigestWriter::digest_of(out, |o| emit(o))?;
    Ok(())
}

/// A file written ahead of its turn (or what stopped it), with the messages to print when
/// its turn comes.
pub struct StagedOutput<'p> {
    file: OutputFile,
    messages: HeldMessages,
    outcome: Outcome<'p>,
}

/// How staging one file ended.
enum Outcome<'p> {
    /// Written in full under its temporary name, with its length and digest.
    Ready(StagedFile<'p>, WrittenFile),
    /// Its temporary file could not be created: kmod skips it (and never builds it).
    NotCreated(PublishError),
    /// Only encoded: it was not to be written early, or its early write failed (and its
    /// temporary file was removed). It is published the ordinary way in its turn, once the
    /// files before it have replaced theirs: a full disk then fails where a run in sequence
    /// fails.
    Unwritten(Encoded),
    /// Building it failed with a FATAL index error.
    Fatal(Vec<u8>),
}

impl StagedOutput<'_> {
    /// Which file this is.
    pub fn file(&self) -> OutputFile {
        self.file
    }
}

/// Builds `file` with `encode` for its turn. With `early` (see [`can_write_early`]) its
/// temporary file is created first and the file written there, without renaming it:
/// [`publish_staged`] does that in its turn, or publishes an unwritten file the ordinary way.
pub fn stage_file<'p>(
    settings: PublishSettings<'_>,
    publisher: &'p Publisher,
    file: OutputFile,
    early: bool,
    encode: impl FnOnce() -> EncodedFile,
) -> StagedOutput<'p> {
    if !early {
        let EncodedFile {
            encoded, messages, ..
        } = encode();
        let outcome = Outcome::Unwritten(encoded);
        return StagedOutput {
            file,
            messages,
            outcome,
        };
    }
    let pending = match publisher.begin(file.name()) {
        Ok(pending) => pending,
        Err(err) => {
            return StagedOutput {
                file,
                messages: HeldMessages::default(),
                outcome: Outcome::NotCreated(err),
            }
        }
    };
    let EncodedFile {
        encoded, messages, ..
    } = encode();
    let outcome = match encoded {
        Encoded::Fatal(message) => Outcome::Fatal(message),
        encoded => {
            let mut written = unwritten(file);
            let staged = pending.stage_with(|out| {
                write_contents(settings, out, &|o| emit_encoded(o, &encoded), &mut written)
            });
            match staged {
                Ok(staged) => Outcome::Ready(staged, written),
                Err(_) => Outcome::Unwritten(encoded),
            }
        }
    };
    StagedOutput {
        file,
        messages,
        outcome,
    }
}

/// Publishes a staged file in its turn: prints its diagnostics, then renames it into place
/// (or reports why it cannot be). Returns the file as written and the file it replaced,
/// whose pages the caller may free elsewhere.
pub fn publish_staged(
    settings: PublishSettings<'_>,
    publisher: &Publisher,
    staged: StagedOutput<'_>,
) -> Result<(WrittenFile, Option<ReplacedFile>), Failed> {
    let diag = settings.diag;
    let StagedOutput {
        file,
        messages,
        outcome,
    } = staged;
    match outcome {
        Outcome::NotCreated(err) => {
            diag.error(err.message());
            Ok((unwritten(file), None))
        }
        Outcome::Unwritten(encoded) => {
            let encoded = EncodedFile {
                file,
                encoded,
                messages,
            };
            let written = publish_encoded(settings, publisher, encoded)?;
            Ok((written, None))
        }
        Outcome::Ready(staged, written) => {
            messages.flush(diag);
            match staged.rename() {
                Ok(replaced) => Ok((written, Some(replaced))),
                Err(err) => {
                    diag.fatal(err.message());
                    Err(Failed)
                }
            }
        }
        Outcome::Fatal(message) => {
            messages.flush(diag);
            diag.fatal(message);
            Err(Failed)
        }
    }
}
