//! kmod-style diagnostics: `depmod: LEVEL: message` on stderr, filtered by a `-v` threshold.
//!
//! kmod maps its levels onto syslog priorities and prints a message when its priority is at or
//! below the threshold, which starts at `LOG_WARNING` and grows by one per `-v`, so `-vvv` shows
//! `DEBUG` (Debian's kmod 30 and 34 are built with debug messages). kmod's debug output is full of
//! heap addresses and libkmod internals; depmod-rs prints only the depmod-level debug messages
//! that carry information, in kmod's wording.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The program name kmod prints in front of every diagnostic.
pub const PROGRAM: &str = "depmod";

/// A message severity, ordered like syslog priorities (more severe is smaller).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// `FATAL` (`LOG_CRIT`): the run stops with exit status 1.
    Fatal = 2,
    /// `ERROR` (`LOG_ERR`).
    Error = 3,
    /// `WARNING` (`LOG_WARNING`), the default threshold.
    Warning = 4,
    /// `NOTICE` (`LOG_NOTICE`).
    Notice = 5,
    /// `INFO` (`LOG_INFO`), shown from `-vv`.
    Info = 6,
    /// `DEBUG` (`LOG_DEBUG`), shown from `-vvv`.
    Debug = 7,
}

impl Level {
    /// The word kmod prints for this level.
    pub fn name(self) -> &'static str {
        match self {
            Level::Fatal => "FATAL",
            Level::Error => "ERROR",
            Level::Warning => "WARNING",
            Level::Notice => "NOTICE",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }
}

/// Where diagnostics go and which of them are shown.
///
/// A `Diag` also counts the lines it printed and, once [`Diag::start_recording`] is called,
/// keeps a copy of each, so that a caller can tell whether a stage printed anything and
/// print the same lines again later ([`Diag::replay`]).
#[derive(Debug, Default)]
pub struct Diag {
    verbosity: u32,
    /// How many lines were printed.
    printed: AtomicU64,
    /// Every line printed since [`Diag::start_recording`], while recording.
    recorded: Mutex<Option<Vec<u8>>>,
}

impl Diag {
    /// A logger for `verbosity` repetitions of `-v`.
    pub fn new(verbosity: u32) -> Self {
        Diag {
            verbosity,
            ..Diag::default()
        }
    }

    /// The number of `-v` given.
    pub fn verbosity(&self) -> u32 {
        self.verbosity
    }

    /// Whether messages of `level` are printed.
    pub fn enabled(&self, level: Level) -> bool {
        (level as u32) <= Level::Warning as u32 + self.verbosity
    }

    /// The number of lines printed so far: compared before and after a stage, it tells
    /// whether the stage printed anything.
    pub fn printed_count(&self) -> u64 {
        self.printed.load(Ordering::Relaxed)
    }

    /// Starts keeping a copy of every line printed from now on (see [`Diag::take_recorded`]).
    pub fn start_recording(&self) {
        *self.recording() = Some(Vec::new());
    }

    /// The lines printed since [`Diag::start_recording`], exactly as printed; recording
    /// stops. `None` if it was not recording.
    pub fn take_recorded(&self) -> Option<Vec<u8>> {
        self.recording().take()
    }

    /// Prints lines printed earlier (from [`Diag::take_recorded`]), as they were.
    pub fn replay(&self, lines: &[u8]) {
        if lines.is_empty() {
            return;
        }
        let count = lines.iter().filter(|&&b| b == b'\n').count() as u64;
        self.print(lines, count);
    }

    fn recording(&self) -> std::sync::MutexGuard<'_, Option<Vec<u8>>> {
        self.recorded.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes `lines` (`count` of them) to stderr, counting and recording them.
    fn print(&self, lines: &[u8], count: u64) {
        // A failing stderr cannot be reported anywhere; kmod ignores it too.
        let _ = std::io::stderr().lock().write_all(lines);
        self.printed.fetch_add(count, Ordering::Relaxed);
        if let Some(recorded) = self.recording().as_mut() {
            recorded.extend_from_slice(lines);
        }
    }

    /// Print `depmod: LEVEL: message\n` if `level` passes the threshold. The message is raw
    /// bytes (paths need not be UTF-8) and gets no trailing newline added beyond the one here.
    pub fn log(&self, level: Level, message: &[u8]) {
        if !self.enabled(level) {
            return;
        }
        let mut line = Vec::with_capacity(message.len() + 24);
        line.extend_from_slice(PROGRAM.as_bytes());
        line.extend_from_slice(b": ");
        line.extend_from_slice(level.name().as_bytes());
        line.extend_from_slice(b": ");
        line.extend_from_slice(message);
        line.push(b'\n');
        self.print(&line, 1);
    }

    /// Log at `FATAL`.
    pub fn fatal(&self, message: impl AsRef<[u8]>) {
        self.log(Level::Fatal, message.as_ref());
    }

    /// Log at `ERROR`.
    pub fn error(&self, message: impl AsRef<[u8]>) {
        self.log(Level::Error, message.as_ref());
    }

    /// Log at `WARNING`.
    pub fn warning(&self, message: impl AsRef<[u8]>) {
        self.log(Level::Warning, message.as_ref());
    }

    /// Log at `DEBUG`.
    pub fn debug(&self, message: impl AsRef<[u8]>) {
        self.log(Level::Debug, message.as_ref());
    }

    /// Log at `INFO`.
    pub fn info(&self, message: impl AsRef<[u8]>) {
        self.log(Level::Info, message.as_ref());
    }
}

/// Diagnostics held back, so that work done in parallel or ahead of time reports in kmod's
/// order: recorded where they arise, printed later with [`HeldMessages::flush`].
#[derive(Debug, Default)]
pub struct HeldMessages(Vec<(Level, Vec<u8>)>);

impl HeldMessages {
    /// Holds an `ERROR`.
    pub fn error(&mut self, message: impl Into<Vec<u8>>) {
        self.0.push((Level::Error, message.into()));
    }

    /// Holds a `WARNING`.
    pub fn warning(&mut self, message: impl Into<Vec<u8>>) {
        self.0.push((Level::Warning, message.into()));
    }

    /// Prints the messages through `diag`, in the order they were held.
    pub fn flush(self, diag: &Diag) {
        for (level, message) in self.0 {
            diag.log(level, &message);
        }
    }
}

/// Concatenate byte-string pieces into one message (paths are bytes, not `str`).
#[macro_export]
macro_rules! bmsg {
    ($($part:expr),* $(,)?) => {{
        let mut message: Vec<u8> = Vec::new();
        $( message.extend_from_slice(AsRef::<[u8]>::as_ref(&$part)); )*
        message
    }};
}

/// Appends byte-string parts to a `Vec<u8>`, like [`bmsg!`] without a new allocation:
/// `bappend!(out, "alias ", alias, "\n")`.
#[macro_export]
macro_rules! bappend {
    ($out:expr, $($part:expr),* $(,)?) => {{
        let out: &mut Vec<u8> = &mut $out;
        $( out.extend_from_slice(AsRef::<[u8]>::as_ref(&$part)); )*
    }};
}

/// The C library's `strerror` text for an I/O error, as kmod prints it with `%m`.
pub fn strerror(err: &std::io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => errno_text(code),
        None => err.to_string(),
    }
}

/// glibc's message for an errno value.
pub fn errno_text(code: i32) -> String {
    let text = std::io::Error::from_raw_os_error(code).to_string();
    // Rust formats as "<text> (os error N)".
    match text.rfind(" (os error ") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_follows_verbosity() {
        let quiet = Diag::new(0);
        assert!(quiet.enabled(Level::Warning));
        assert!(!quiet.enabled(Level::Notice));
        assert!(!Diag::new(1).enabled(Level::Info));
        assert!(Diag::new(2).enabled(Level::Info));
        assert!(!Diag::new(2).enabled(Level::Debug));
        assert!(Diag::new(3).enabled(Level::Debug));
    }

    #[test]
    fn strerror_matches_glibc() {
        assert_eq!(errno_text(2), "No such file or directory");
        assert_eq!(errno_text(22), "Invalid argument");
    }
}
