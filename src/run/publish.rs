//! The publish stage: the output directory checked, then each encoded file written into
//! place in kmod's order, its diagnostics printed just before it.

use std::io::Write;

use super::encode::{Encoded, EncodedFile};
use super::input::os_path;
use super::Failed;
use crate::bmsg;
use crate::compat::KmodVersion;
use crate::diag::{strerror, Diag};
use crate::output::{text, OutputFile, Resolved};
use crate::publish::{create_dir_all, DigestWriter, PublishError, Publisher, WrittenFile};

/// What every publication shares.
#[derive(Debug, Clone, Copy)]
pub struct PublishSettings<'a> {
    /// The kmod release whose files are written (their order).
    pub version: KmodVersion,
    /// Where messages go.
    pub diag: &'a Diag,
    /// Whether each file's digest is taken as it is written.
    pub digests: bool,
}

/// Creates the output directory when `create` is set (kmod 31 and later, or `-o`), checks
/// that it can be opened, and returns its publisher.
pub fn prepare_output_dir(
    outdirname: &[u8],
    create: bool,
    diag: &Diag,
) -> Result<Publisher, Failed> {
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
    Ok(Publisher::new(dir))
}

/// Publishes the `encoded` files in kmod's order, printing each file's diagnostics just
/// before it is published and stopping at the first fatal one, then finishes the
/// directory. Files of the sequence that are not in `encoded` (`modules.dep`) were
/// published already.
pub fn publish_in_order(
    settings: PublishSettings<'_>,
    publisher: &Publisher,
    resolved: &Resolved<'_>,
    mut encoded: Vec<EncodedFile>,
) -> Result<Vec<WrittenFile>, Failed> {
    let mut written = Vec::new();
    for file in OutputFile::sequence(settings.version) {
        if let Some(at) = encoded.iter().position(|done| done.file == file) {
            let one = encoded.swap_remove(at);
            written.push(publish_encoded(settings, publisher, resolved, one)?);
        }
    }
    publisher.finish().map_err(|err| {
        settings.diag.error(err.message());
        Failed
    })?;
    Ok(written)
}

/// Publishes one encoded file: creates its temporary file, prints the file's diagnostics,
/// then writes and renames it (or stops at its fatal error).
///
/// As in kmod, the temporary file comes first: if it cannot be created, the file is skipped
/// without the messages that building it prints.
pub fn publish_encoded(
    settings: PublishSettings<'_>,
    publisher: &Publisher,
    resolved: &Resolved<'_>,
    encoded: EncodedFile,
) -> Result<WrittenFile, Failed> {
    let diag = settings.diag;
    let EncodedFile {
        file,
        encoded,
        messages,
    } = encoded;
    let mut written = WrittenFile {
        name: file.name().to_string(),
        size: 0,
        digest: 0,
    };
    let pending = match publisher.begin(file.name()) {
        Ok(pending) => pending,
        Err(err) => {
            diag.error(err.message());
            return Ok(written);
        }
    };
    messages.flush(diag);
    // Writes through a digest when asked for one.
    let mut write = |file: &mut std::fs::File,
                     emit: &dyn Fn(&mut dyn Write) -> std::io::Result<()>|
     -> std::io::Result<()> {
        if !settings.digests {
            return emit(file);
        }
        (written.size, written.digest) = DigestWriter::digest_of(file, |out| emit(out))?;
        Ok(())
    };
    let committed = match encoded {
        Encoded::Bytes(bytes) => {
            pending.commit_with(|file| write(file, &|out| out.write_all(&bytes)))
        }
        Encoded::Index(index) => {
            pending.commit_with(|file| write(file, &|out| index.write_to(out)))
        }
        Encoded::ModulesDep => {
            pending.commit_with(|file| write(file, &|out| text::write_modules_dep(resolved, out)))
        }
        Encoded::Fatal(message) => {
            diag.fatal(message);
            return Err(Failed);
        }
    };
    match committed {
        Ok(()) => Ok(written),
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
