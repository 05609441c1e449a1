//! The `hypertape` command line: parses arguments, calls the library, prints, and turns the
//! outcome into an exit code. One file per subcommand in `commands/`; no numerics here.

mod args;
mod commands;
mod settings;

use args::{Cli, Command};
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => commands::run::exec(&args),
        Command::Learn(args) => commands::learn::exec(&args),
        Command::Eval(args) => commands::eval::exec(&args),
        Command::Export(args) => commands::export::exec(&args),
        Command::Compare(args) => commands::compare::exec(&args),
        Command::Gradcheck(args) => commands::gradcheck::exec(&args),
        Command::Bench(args) => commands::bench::exec(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
