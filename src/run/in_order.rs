//! Publishing the staged files in kmod's order, each as soon as its turn comes.
//!
//! Files are encoded and staged on any core in any order; kmod renames them into place in a
//! fixed order, each after printing its diagnostics, and stops at the first fatal error.
//! [`InOrder`] takes each staged file when it is ready and publishes every file whose turn
//! has come, rather than all of them once the last is done: the files a rename replaces are
//! then freed while the others are still being encoded, instead of while the process exits.

use std::io::Write;
use std::sync::{Mutex, PoisonError};

use super::background::close_in_background;
use super::publish::{publish_staged, publish_with, PublishSettings, StagedOutput};
use super::Failed;
use crate::diag::HeldMessages;
use crate::output::OutputFile;
use crate::publish::{Publisher, WrittenFile};

/// The files of a run still to publish, in kmod's order, and those staged ahead of their
/// turn.
pub struct InOrder<'s, 'p> {
    settings: PublishSettings<'s>,
    publisher: &'p Publisher,
    state: Mutex<State<'p>>,
}

struct State<'p> {
    /// The files not yet published, in the order they are published.
    sequence: std::collections::VecDeque<OutputFile>,
    /// Files staged before their turn.
    waiting: Vec<StagedOutput<'p>>,
    /// What was published, in order.
    written: Vec<WrittenFile>,
    /// A file could not be published: none after it is.
    failed: bool,
}

impl<'s, 'p> InOrder<'s, 'p> {
    /// Nothing published yet of `sequence` (kmod's order).
    pub fn new(
        settings: PublishSettings<'s>,
        publisher: &'p Publisher,
        sequence: Vec<OutputFile>,
    ) -> Self {
        InOrder {
            settings,
            publisher,
            state: Mutex::new(State {
                sequence: sequence.into(),
                waiting: Vec::new(),
                written: Vec::new(),
                failed: false,
            }),
        }
    }

    /// Publishes `file`, the next in the sequence, its bytes written by `emit` straight to
    /// the file rather than staged first (as `modules.dep` is, from lines that
    /// `modules.dep.bin` is then made of), then the files waiting for it.
    pub fn publish_next(
        &self,
        file: OutputFile,
        emit: impl Fn(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<(), Failed> {
        let written = publish_with(
            self.settings,
            self.publisher,
            file,
            HeldMessages::default(),
            None,
            emit,
        )?;
        self.published(written);
        Ok(())
    }

    /// Records that the next file in the sequence was published, then publishes the files
    /// waiting for it.
    fn published(&self, written: WrittenFile) {
        let mut state = self.lock();
        if state.failed {
            return;
        }
        debug_assert_eq!(
            state.sequence.front().map(|file| file.name()),
            Some(&written.name[..])
        );
        state.sequence.pop_front();
        state.written.push(written);
        self.publish_ready(&mut state);
    }

    /// Takes a staged file: publishes it if its turn has come (and each waiting file after
    /// it), otherwise keeps it for its turn. After a failure it is dropped unpublished.
    pub fn offer(&self, staged: StagedOutput<'p>) {
        let mut state = self.lock();
        if state.failed {
            return;
        }
        state.waiting.push(staged);
        self.publish_ready(&mut state);
    }

    /// The files published, in order; `Failed` if one could not be, or if the sequence is
    /// not complete (the run stopped before some file was offered).
    pub fn finish(self) -> Result<Vec<WrittenFile>, Failed> {
        let state = self
            .state
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        if state.failed || !state.sequence.is_empty() {
            return Err(Failed);
        }
        Ok(state.written)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<'p>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes waiting files for as long as the next in the sequence is among them.
    fn publish_ready(&self, state: &mut State<'p>) {
        while let Some(&next) = state.sequence.front() {
            let Some(at) = state.waiting.iter().position(|s| s.file() == next) else {
                return;
            };
            let staged = state.waiting.swap_remove(at);
            state.sequence.pop_front();
            match publish_staged(self.settings, self.publisher, staged) {
                Ok((written, replaced)) => {
                    state.written.push(written);
                    if let Some(replaced) = replaced {
                        close_in_background(replaced);
                    }
                }
                Err(Failed) => {
                    state.failed = true;
                    // Their temporary files are removed as they are dropped.
                    state.waiting.clear();
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::{Diag, HeldMessages};
    use crate::run::encode::{Encoded, EncodedFile};
    use crate::run::publish::stage_file;

    /// A staged file whose contents are its name and whose held message says which it is,
    /// or a FATAL one.
    fn staged<'p>(
        publish: PublishSettings<'_>,
        publisher: &'p Publisher,
        file: OutputFile,
        fatal: bool,
    ) -> StagedOutput<'p> {
        stage_file(publish, publisher, file, true, || {
            let mut messages = HeldMessages::default();
            messages.warning(format!("staged {}", file.name()));
            let encoded = match fatal {
                false => Encoded::Bytes(file.name().as_bytes().to_vec()),
                true => Encoded::Fatal(b"broken".to_vec()),
            };
            EncodedFile {
                file,
                encoded,
                messages,
            }
        })
    }

    fn names(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn each_file_is_published_once_those_before_it_are() {
        let dir = tempfile::tempdir().unwrap();
        let diag = Diag::new(0);
        diag.start_recording();
        let publish = PublishSettings {
            diag: &diag,
            digests: false,
        };
        let publisher = Publisher::new(dir.path().to_path_buf());
        let sequence = vec![OutputFile::Dep, OutputFile::DepBin, OutputFile::Alias];
        let in_order = InOrder::new(publish, &publisher, sequence);

        in_order.offer(staged(publish, &publisher, OutputFile::Alias, false));
        assert!(!dir.path().join("modules.alias").exists());
        in_order
            .publish_next(OutputFile::Dep, |out| out.write_all(b"dep"))
            .unwrap();
        assert!(!dir.path().join("modules.alias").exists());
        in_order.offer(staged(publish, &publisher, OutputFile::DepBin, false));
        // modules.dep.bin's turn came, and modules.alias's right after it.
        assert_eq!(
            names(dir.path()),
            ["modules.alias", "modules.dep", "modules.dep.bin"]
        );
        let written = in_order.finish().unwrap();
        let order: Vec<&str> = written.iter().map(|w| &w.name[..]).collect();
        assert_eq!(order, ["modules.dep", "modules.dep.bin", "modules.alias"]);
        assert_eq!(
            std::fs::read(dir.path().join("modules.alias")).unwrap(),
            b"modules.alias"
        );
        // Each file's messages come just before it is published, in kmod's order.
        assert_eq!(
            diag.take_recorded().unwrap(),
            b"depmod: WARNING: staged modules.dep.bin\n\
              depmod: WARNING: staged modules.alias\n"
        );
    }

    #[test]
    fn nothing_after_a_fatal_file_is_published() {
        let dir = tempfile::tempdir().unwrap();
        let diag = Diag::new(0);
        diag.start_recording();
        let publish = PublishSettings {
            diag: &diag,
            digests: false,
        };
        let publisher = Publisher::new(dir.path().to_path_buf());
        let sequence = vec![OutputFile::Alias, OutputFile::AliasBin, OutputFile::Softdep];
        let in_order = InOrder::new(publish, &publisher, sequence);
        in_order.offer(staged(publish, &publisher, OutputFile::Softdep, false));
        in_order.offer(staged(publish, &publisher, OutputFile::Alias, false));
        in_order.offer(staged(publish, &publisher, OutputFile::AliasBin, true));
        assert_eq!(in_order.finish(), Err(Failed));
        // The file before the fatal one is in place; the one after it is gone, temporary
        // file and all.
        assert_eq!(names(dir.path()), ["modules.alias"]);
        assert_eq!(
            diag.take_recorded().unwrap(),
            b"depmod: WARNING: staged modules.alias\n\
              depmod: WARNING: staged modules.alias.bin\n\
              depmod: FATAL: broken\n"
        );
    }

    #[test]
    fn a_sequence_left_unfinished_is_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let diag = Diag::new(0);
        let publish = PublishSettings {
            diag: &diag,
            digests: false,
        };
        let publisher = Publisher::new(dir.path().to_path_buf());
        let sequence = vec![OutputFile::Dep, OutputFile::Alias];
        let in_order = InOrder::new(publish, &publisher, sequence);
        in_order.offer(staged(publish, &publisher, OutputFile::Alias, false));
        assert_eq!(in_order.finish(), Err(Failed));
        assert!(names(dir.path()).is_empty());
    }
}
