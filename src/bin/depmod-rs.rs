//! `depmod-rs`: a drop-in replacement for kmod's `depmod`.

use std::io::Write;
use std::os::unix::ffi::OsStringExt;

use depmod_rs::cli::{self, Command};

fn main() {
    let mut args = std::env::args_os().map(|a| a.into_vec());
    let argv0 = args.next().unwrap_or_else(|| b"depmod".to_vec());
    let rest: Vec<Vec<u8>> = args.collect();
    let code = match cli::parse(&argv0, &rest) {
        Command::Run(options) => depmod_rs::run::run(&options),
        Command::Help(version) => {
            let text = cli::help_text(version, depmod_rs::diag::PROGRAM);
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
    std::process::exit(code);
}
