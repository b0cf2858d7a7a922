//! `substrate`: one binary for a commons node and its command line.

mod cli;
mod client;
mod command;
mod config;
mod duration;
mod keys;

use clap::Parser;

/// mimalloc: the tokenizer, the fold and the run's JSON allocate many small objects from every
/// core, where glibc's allocator spent a fifth of the training run's bookkeeping.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[allow(unsafe_code)]
fn default_sigpipe() {
    // SAFETY: called before any other thread exists; SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    // A command whose reader stops early (`| head`, `| grep -q`) ends quietly, as Unix tools do,
    // instead of panicking at its next print. Commands that run a server keep SIGPIPE ignored, so
    // a client that hangs up is an error on its socket, not the end of the node.
    if !matches!(cli.command, cli::Command::Serve { .. } | cli::Command::Demo { .. } | cli::Command::Bench(_))
    {
        default_sigpipe();
    }
    // The demo prints its own account of each step; its nodes say only what went wrong.
    let quiet = matches!(cli.command, cli::Command::Demo { .. } | cli::Command::Workload { .. });
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(if quiet { "warn" } else { "info" })),
        )
        .with_writer(std::io::stderr)
        .init();
    match command::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}
