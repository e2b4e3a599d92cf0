//! `modindex`: read, build and check kmod binary indexes (`modules.*.bin`).
//!
//! Each subcommand lives in its own file beside this one.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod build;
mod common;
mod diff;
mod dump;
mod graph;
mod lookup;
mod module;
mod pipeline;
mod report;
mod verify;
mod verify_dir;

/// Read, build and check kmod binary indexes (modules.*.bin).
#[derive(Debug, Parser)]
#[command(name = "modindex", version)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    Dump(dump::Args),
    Build(build::Args),
    Lookup(lookup::Args),
    Verify(verify_dir::Args),
    Module(module::Args),
    Diff(diff::Args),
    Graph(graph::Args),
}

fn main() -> ExitCode {
    // `verify DIR` and `graph --run` walk module trees as depmod does.
    depmod_rs::run::start_thread_pool();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Dump(args) => dump::run(args),
        Command::Build(args) => build::run(args),
        Command::Lookup(args) => lookup::run(args),
        Command::Verify(args) => verify_dir::run(args),
        Command::Module(args) => module::run(args),
        Command::Diff(args) => diff::run(args),
        Command::Graph(args) => graph::run(args),
    };
    match outcome {
        Ok(code) => code,
        Err(message) => {
            eprintln!("modindex: {message}");
            ExitCode::from(2)
        }
    }
}
