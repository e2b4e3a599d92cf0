//! Project tasks, run as `cargo xtask TASK` (an alias in `.cargo/config.toml`).
//!
//! * `cargo xtask man [DIR]` — manual pages `depmod-rs.8`, `modindex.1` and one page per
//!   `modindex` subcommand (`modindex-diff.1`, ...), into DIR (default `target/assets/man`).
//! * `cargo xtask completions [DIR]` — bash, zsh and fish completions for both programs, into
//!   DIR (default `target/assets/completions`).
//!
//! Both are generated from clap descriptions: `modindex`'s own parser, and for `depmod-rs`
//! (whose parser is a kmod-compatible getopt) [`cli_doc::depmod_command`], which a unit test
//! keeps in step with the parser.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

mod cli_doc;

/// The `modindex` binary's sources, included for its clap description.
#[allow(dead_code)]
#[path = "../../src/bin/modindex/main.rs"]
mod modindex;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("man") => man(&out_dir(args.get(1), "man")),
        Some("completions") => completions(&out_dir(args.get(1), "completions")),
        _ => {
            eprintln!("usage: cargo xtask man [DIR] | cargo xtask completions [DIR]");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(written) => {
            for path in written {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// DIR as given, or `target/assets/<kind>` of the main package.
fn out_dir(given: Option<&String>, kind: &str) -> PathBuf {
    match given {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/assets")
            .join(kind),
    }
}

fn commands() -> [(clap::Command, &'static str); 2] {
    [
        (cli_doc::depmod_command(), "8"),
        (modindex::Cli::command(), "1"),
    ]
}

fn write(path: PathBuf, bytes: &[u8], written: &mut Vec<PathBuf>) -> Result<(), String> {
    std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    written.push(path);
    Ok(())
}

fn man(dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut written = Vec::new();
    for (command, section) in commands() {
        let name = command.get_name().to_string();
        let mut page = Vec::new();
        clap_mangen::Man::new(command.clone())
            .section(section)
            .render(&mut page)
            .map_err(|e| e.to_string())?;
        write(dir.join(format!("{name}.{section}")), &page, &mut written)?;
        for sub in command.get_subcommands() {
            let sub_name = format!("{name}-{}", sub.get_name());
            // A subcommand page is titled `modindex-diff`; clap wants a 'static name.
            let title: &'static str = Box::leak(sub_name.clone().into_boxed_str());
            let sub = sub
                .clone()
                .name(title)
                .display_name(title)
                .bin_name(format!("{name} {}", sub.get_name()));
            let mut page = Vec::new();
            clap_mangen::Man::new(sub)
                .section(section)
                .render(&mut page)
                .map_err(|e| e.to_string())?;
            write(
                dir.join(format!("{sub_name}.{section}")),
                &page,
                &mut written,
            )?;
        }
    }
    Ok(written)
}

fn completions(dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut written = Vec::new();
    for (mut command, _) in commands() {
        let name = command.get_name().to_string();
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, name.clone(), &mut script);
            let file = match shell {
                Shell::Bash => format!("{name}.bash"),
                Shell::Zsh => format!("_{name}"),
                _ => format!("{name}.fish"),
            };
            write(dir.join(file), &script, &mut written)?;
        }
    }
    Ok(written)
}
