//! `depmod-rs`: a drop-in replacement for kmod's `depmod`.

use std::io::Write;
use std::os::unix::ffi::OsStringExt;

use depmod_rs::cli::{self, Command};

fn main() {
    depmod_rs::run::tune_allocator_for_one_run();
    depmod_rs::run::leave_memory_to_exit();
    depmod_rs::run::start_thread_pool();
    let mut args = std::env::args_os().map(|a| a.into_vec());
    let argv0 = args.next().unwrap_or_else(|| b"depmod".to_vec());
    let rest: Vec<Vec<u8>> = args.collect();
    // The system configuration (/etc/depmod-rs.conf) gives the defaults the command line
    // overrides; a bad one stops here, as a bad option does, before anything is written.
    let defaults = match depmod_rs::sysconfig::command_line_defaults(&rest) {
        Ok(defaults) => defaults,
        Err(err) => {
            eprintln!("depmod: ERROR: {err}");
            std::process::exit(1);
        }
    };
    let code = match cli::parse_with(&argv0, &rest, defaults) {
        Command::Run(options) => depmod_rs::run::run(&options),
        Command::Help(version) => {
            // kmod prints its program_invocation_short_name here; diagnostics keep `depmod:`.
            let program = argv0.rsplit(|&b| b == b'/').next().unwrap_or(b"depmod");
            let program = String::from_utf8_lossy(program);
            let text = cli::help_text(version, &program);
            let _ = std::io::stdout().write_all(text.as_bytes());
            0
        }
        Command::Version(options) => {
            let _ = std::io::stdout().write_all(cli::version_text(&options).as_bytes());
            0
        }
        Command::Fail(messages) => {
            let mut stderr = std::io::stderr().lock();
            for m in messages {
                let _ = stderr.write_all(&m);
                let _ = stderr.write_all(b"\n");
            }
            1
        }
    };
    depmod_rs::run::wait_for_closes();
    std::process::exit(code);
}
