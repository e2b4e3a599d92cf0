//! Wall time per stage on stderr, when `DEPMOD_RS_TIMINGS` is set (for profiling; the output
//! of a run is unaffected).

use std::cell::Cell;
use std::time::Instant;

/// Prints the time since the last stage ended, when enabled.
#[derive(Debug)]
pub struct StageTimer {
    last: Cell<Option<Instant>>,
}

impl StageTimer {
    /// A timer that prints only when `DEPMOD_RS_TIMINGS` is set.
    pub fn from_env() -> Self {
        StageTimer {
            last: Cell::new(std::env::var_os("DEPMOD_RS_TIMINGS").map(|_| Instant::now())),
        }
    }

    /// Ends the stage `name`.
    pub fn stage(&self, name: &str) {
        if let Some(last) = self.last.get() {
            let now = Instant::now();
            eprintln!("timing: {name}: {:.1} ms", (now - last).as_secs_f64() * 1e3);
            self.last.set(Some(now));
        }
    }

    /// Prints a note about the stage just ended.
    pub fn note(&self, text: impl FnOnce() -> String) {
        if self.last.get().is_some() {
            eprintln!("timing: ({})", text());
        }
    }
}
