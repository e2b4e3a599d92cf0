//! A progress line on stderr for long runs at a terminal.
//!
//! kmod prints nothing while it works; on a large compressed tree that can take seconds. When
//! stderr is a terminal, not in verbose mode, and reading the modules takes longer than
//! [`DELAY`], depmod-rs shows `depmod-rs: reading modules N/TOTAL` on one line, rewritten in
//! place and erased when the stage ends, so the terminal looks exactly as after kmod's run.
//! When stderr is not a terminal (scripts, logs, tests comparing stderr with kmod's) nothing
//! is ever printed.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a stage runs before the line appears.
pub const DELAY: Duration = Duration::from_millis(500);
/// How often the line is rewritten.
const INTERVAL: Duration = Duration::from_millis(100);

/// Items started in the current stage, counted by [`tick`].
static DONE: AtomicUsize = AtomicUsize::new(0);

/// Counts one item of the running stage as started. Cheap enough to call per module.
pub fn tick() {
    DONE.fetch_add(1, Ordering::Relaxed);
}

/// A running progress display; the line is erased when it is dropped.
#[derive(Debug)]
pub struct Progress {
    stop: Arc<AtomicBool>,
    reporter: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts counting a stage of `total` items. A reporter thread is started only when
    /// stderr is a terminal and `verbose` is 0 (verbose output goes to the same terminal).
    pub fn start(label: &'static str, total: usize, verbose: u32) -> Progress {
        DONE.store(0, Ordering::Relaxed);
        let stop = Arc::new(AtomicBool::new(false));
        let enabled = verbose == 0 && std::io::stderr().is_terminal();
        let reporter = enabled.then(|| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || report(label, total, &stop))
        });
        Progress { stop, reporter }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(reporter) = self.reporter.take() {
            reporter.thread().unpark();
            let _ = reporter.join();
        }
    }
}

/// The line for `done` of `total` items.
pub fn line(label: &str, done: usize, total: usize) -> String {
    format!("\rdepmod-rs: {label} {}/{total}", done.min(total))
}

fn report(label: &str, total: usize, stop: &AtomicBool) {
    let started = Instant::now();
    let mut shown = false;
    while !stop.load(Ordering::Relaxed) {
        std::thread::park_timeout(INTERVAL);
        if stop.load(Ordering::Relaxed) || started.elapsed() < DELAY {
            continue;
        }
        let text = line(label, DONE.load(Ordering::Relaxed), total);
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
        shown = true;
    }
    if shown {
        // Carriage return and erase to the end of the line.
        let _ = std::io::stderr().lock().write_all(b"\r\x1b[K");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_counts_and_clamps() {
        assert_eq!(
            line("reading modules", 3, 10),
            "\rdepmod-rs: reading modules 3/10"
        );
        assert_eq!(line("x", 12, 10), "\rdepmod-rs: x 10/10");
    }

    #[test]
    fn silent_when_stderr_is_not_a_terminal_or_verbose() {
        let progress = Progress::start("x", 1, 1);
        assert!(progress.reporter.is_none());
    }
}
