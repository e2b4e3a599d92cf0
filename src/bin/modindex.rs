//! `modindex`: read, build and check kmod binary indexes (`modules.*.bin`).
//!
//! Each subcommand lives in its own file under `src/bin/modindex/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[path = "modindex/build.rs"]
mod build;
#[path = "modindex/common.rs"]
mod common;
#[path = "modindex/diff.rs"]
mod diff;
#[path = "modindex/dump.rs"]
mod dump;
#[path = "modindex/graph.rs"]
mod graph;
#[path = "modindex/lookup.rs"]
mod lookup;
#[path = "modindex/module.rs"]
mod module;
#[path = "modindex/pipeline.rs"]
mod pipeline;
#[path = "modindex/verify.rs"]
mod verify;
#[path = "modindex/verify_dir.rs"]
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
