//! Wall and CPU time per stage on stderr, when `DEPMOD_RS_TIMINGS` is set (for profiling;
//! the output of a run is unaffected).

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Prints the wall time and the process's CPU time (all threads, user and system) since the
/// last stage ended, when enabled. CPU time over wall time tells how many cores a stage kept
/// busy.
#[derive(Debug)]
pub struct StageTimer {
    last: Cell<Option<(Instant, Duration)>>,
}

impl StageTimer {
    /// A timer that prints only when `DEPMOD_RS_TIMINGS` is set.
    pub fn from_env() -> Self {
        StageTimer {
            last: Cell::new(
                std::env::var_os("DEPMOD_RS_TIMINGS").map(|_| (Instant::now(), process_cpu_time())),
            ),
        }
    }

    /// Ends the stage `name`.
    pub fn stage(&self, name: &str) {
        if let Some((last, last_cpu)) = self.last.get() {
            let (now, cpu) = (Instant::now(), process_cpu_time());
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            eprintln!(
                "timing: {name}: {:.1} ms ({:.1} ms CPU)",
                ms(now - last),
                ms(cpu.saturating_sub(last_cpu))
            );
            self.last.set(Some((now, cpu)));
        }
    }

    /// Prints a note about the stage just ended.
    pub fn note(&self, text: impl FnOnce() -> String) {
        if self.last.get().is_some() {
            eprintln!("timing: ({})", text());
        }
    }
}

/// The CPU time the process has used so far, all threads, user and system.
fn process_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to fill in.
    if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}
