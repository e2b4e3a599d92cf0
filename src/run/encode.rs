//! The encode stage: one output file from the resolved data, with its diagnostics held
//! until the file is published.

use crate::builtin::{parse_builtin_modinfo, parse_modules_builtin, BuiltinDiagnostic};
use crate::compat::KmodVersion;
use crate::diag::HeldMessages;
use crate::index::{IndexBuilder, IndexError, NodeOrder, PreparedIndex};
use crate::output::bin::{self as binout, build_index, build_index_steps, DuplicateKind};
use crate::output::{text, OutputFile, Resolved};

use super::input::read_input;

/// What every encoder shares.
#[derive(Debug, Clone, Copy)]
pub struct EncodeSettings<'a> {
    /// The kmod release whose files are written.
    pub version: KmodVersion,
    /// The module directory, where `modules.builtin` and `modules.builtin.modinfo` are read.
    pub dirname: &'a [u8],
    /// `-w`: report duplicate index entries.
    pub warn: bool,
}

/// The contents of one encoded file.
pub enum Encoded {
    /// The whole file.
    Bytes(Vec<u8>),
    /// An index, written to its file in chunks when it is published.
    Index(PreparedIndex),
    /// A FATAL index error: the run stops with exit 1.
    Fatal(Vec<u8>),
}

/// One file encoded, and the diagnostics to print just before it is published.
pub struct EncodedFile {
    /// Which file.
    pub file: OutputFile,
    /// Its contents.
    pub encoded: Encoded,
    /// Its diagnostics, held.
    pub messages: HeldMessages,
}

/// kmod's FATAL text for an index error, without the final newline the logger adds.
fn fatal_text(err: &IndexError) -> Vec<u8> {
    let mut message = err.kmod_message();
    if message.last() == Some(&b'\n') {
        message.pop();
    }
    message
}

/// A built index laid out for publishing, or its FATAL error.
fn prepared_index(built: Result<IndexBuilder, IndexError>, order: NodeOrder) -> Encoded {
    match built.and_then(|builder| builder.prepare(order)) {
        Ok(index) => Encoded::Index(index),
        Err(err) => Encoded::Fatal(fatal_text(&err)),
    }
}

/// An index encoded in one go, or its FATAL error.
fn bulk(encoded: Result<Vec<u8>, IndexError>) -> Encoded {
    match encoded {
        Ok(bytes) => Encoded::Bytes(bytes),
        Err(err) => Encoded::Fatal(fatal_text(&err)),
    }
}

/// Dependency lines of up to this many bytes in all are encoded into `modules.dep.bin` at
/// once, which holds the whole file in memory beside the lines (about as large again);
/// longer ones go through [`IndexBuilder`], which takes the lines over and writes the file
/// in chunks when it is published. bookworm-amd64's lines take 0.5 MB.
const DEP_BIN_AT_ONCE_MAX: usize = 16 << 20;

/// Encodes `modules.dep.bin` from its entries, made beforehand (so that the dependency
/// lists can be freed before its trie is built).
pub fn encode_dep_bin(
    settings: EncodeSettings<'_>,
    entries: Vec<binout::IndexEntry<'_>>,
) -> EncodedFile {
    encode_dep_bin_within(settings, entries, DEP_BIN_AT_ONCE_MAX)
}

/// [`encode_dep_bin`], encoding at once when the lines take at most `at_once_max` bytes
/// (and no duplicate is to be reported).
fn encode_dep_bin_within(
    settings: EncodeSettings<'_>,
    entries: Vec<binout::IndexEntry<'_>>,
    at_once_max: usize,
) -> EncodedFile {
    let mut messages = HeldMessages::default();
    let mut warnings = Vec::new();
    let order = settings.version.node_order();
    let line_bytes: usize = entries.iter().map(|entry| entry.value.len()).sum();
    let encoded = match !settings.warn && line_bytes <= at_once_max {
        true => bulk(binout::encode_entries_bulk(&entries, order)),
        false => {
            let built = build_index(entries, DuplicateKind::Deps, settings.warn, &mut warnings);
            prepared_index(built, order)
        }
    };
    for w in warnings {
        messages.warning(w);
    }
    EncodedFile {
        file: OutputFile::DepBin,
        encoded,
        messages,
    }
}

/// Encodes `file` from `resolved`; its diagnostics are held, not printed.
pub fn encode_file(
    settings: EncodeSettings<'_>,
    resolved: &Resolved<'_>,
    file: OutputFile,
) -> EncodedFile {
    let mut messages = HeldMessages::default();
    let encoded = encode_into(settings, resolved, file, &mut messages);
    EncodedFile {
        file,
        encoded,
        messages,
    }
}

fn encode_into(
    settings: EncodeSettings<'_>,
    r: &Resolved<'_>,
    file: OutputFile,
    messages: &mut HeldMessages,
) -> Encoded {
    let order = settings.version.node_order();
    let warn = settings.warn;
    let mut warnings = Vec::new();
    let prepared = |built| prepared_index(built, order);
    // Without -w no duplicate is reported: the trie is built in one go from its entries.
    let index = |entries: Vec<binout::IndexEntry<'_>>, kind, warnings: &mut Vec<Vec<u8>>| {
        if warn {
            prepared(build_index(entries, kind, warn, warnings))
        } else {
            bulk(binout::encode_entries_bulk(&entries, order))
        }
    };
    let encoded = match file {
        OutputFile::Dep => Encoded::Bytes(text::modules_dep(r)),
        OutputFile::DepBin => index(
            binout::dep_entries(r.modules, r),
            DuplicateKind::Deps,
            &mut warnings,
        ),
        OutputFile::Alias => Encoded::Bytes(text::modules_alias(r)),
        OutputFile::AliasBin => {
            if warn {
                let steps = binout::alias_steps(r);
                prepared(build_index_steps(
                    &steps,
                    DuplicateKind::Alias,
                    warn,
                    &mut warnings,
                ))
            } else {
                bulk(binout::encode_alias_bulk(r, order, &mut warnings))
            }
        }
        OutputFile::Softdep => Encoded::Bytes(text::modules_softdep(r)),
        OutputFile::Weakdep => Encoded::Bytes(text::modules_weakdep(r)),
        OutputFile::Symbols => Encoded::Bytes(text::modules_symbols(r)),
        OutputFile::SymbolsBin => {
            let symbols = binout::SymbolEntries::new(r);
            match warn {
                true => index(symbols.entries(), DuplicateKind::Syms, &mut warnings),
                false => bulk(symbols.encode_bulk(order)),
            }
        }
        OutputFile::BuiltinBin => match read_input(settings.dirname, "modules.builtin", messages) {
            None => Encoded::Bytes(Vec::new()),
            Some(data) => {
                let mut diagnostics = Vec::new();
                let keys = parse_modules_builtin(&data, &mut diagnostics);
                hold_builtin_diagnostics(diagnostics, messages);
                index(
                    binout::builtin_entries(&keys),
                    DuplicateKind::Silent,
                    &mut warnings,
                )
            }
        },
        OutputFile::BuiltinAliasBin => {
            match read_input(settings.dirname, "modules.builtin.modinfo", messages) {
                None => Encoded::Bytes(Vec::new()),
                Some(data) => {
                    let mut diagnostics = Vec::new();
                    let aliases = parse_builtin_modinfo(&data, &mut diagnostics);
                    hold_builtin_diagnostics(diagnostics, messages);
                    index(
                        binout::builtin_alias_entries(&aliases),
                        DuplicateKind::Silent,
                        &mut warnings,
                    )
                }
            }
        }
        OutputFile::Devname => {
            let (bytes, errors) = text::modules_devname(r);
            for e in errors {
                messages.error(e);
            }
            Encoded::Bytes(bytes)
        }
    };
    for w in warnings {
        messages.warning(w);
    }
    encoded
}

fn hold_builtin_diagnostics(diagnostics: Vec<BuiltinDiagnostic>, messages: &mut HeldMessages) {
    for d in diagnostics {
        match d {
            BuiltinDiagnostic::Error(m) => messages.error(m),
            BuiltinDiagnostic::Warning(m) => messages.warning(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::output::bin::IndexEntry;

    /// The bytes of an encoded index, however it was encoded.
    fn bytes_of(encoded: Encoded) -> Vec<u8> {
        match encoded {
            Encoded::Bytes(bytes) => bytes,
            Encoded::Index(index) => {
                let mut out = Vec::new();
                index.write_to(&mut out).unwrap();
                out
            }
            Encoded::Fatal(message) => panic!("{}", String::from_utf8_lossy(&message)),
        }
    }

    /// `modules.dep.bin` encoded at once and through the builder: the same bytes, in both
    /// layouts.
    #[test]
    fn dep_index_at_once_matches_the_builder() {
        let entries = || -> Vec<IndexEntry<'static>> {
            [
                ("snd", "kernel/snd.ko: kernel/soundcore.ko"),
                ("soundcore", "kernel/soundcore.ko:"),
                (
                    "snd_pcm",
                    "kernel/snd-pcm.ko: kernel/snd.ko kernel/soundcore.ko",
                ),
                ("a", "extra/a.ko:"),
            ]
            .into_iter()
            .enumerate()
            .map(|(i, (key, line))| IndexEntry {
                key: Cow::Borrowed(key.as_bytes()),
                value: Cow::Owned(line.as_bytes().to_vec()),
                priority: i as u32,
            })
            .collect()
        };
        for version in [KmodVersion::V34, KmodVersion::V30] {
            let settings = EncodeSettings {
                version,
                dirname: b"/lib/modules/x",
                warn: false,
            };
            let at_once = encode_dep_bin_within(settings, entries(), usize::MAX);
            let built = encode_dep_bin_within(settings, entries(), 0);
            assert!(matches!(at_once.encoded, Encoded::Bytes(_)));
            assert!(matches!(built.encoded, Encoded::Index(_)));
            assert_eq!(bytes_of(at_once.encoded), bytes_of(built.encoded));
        }
    }
}
