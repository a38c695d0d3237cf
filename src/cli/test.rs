//! `test`: the test suite is run by the `./manage` script (`./manage test` runs `cargo test`);
//! the binary itself only says so and exits with status 2.

use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Ignored: passed through by the ./manage script.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

pub fn run(_args: &Args) -> ExitCode {
    eprintln!(
        "The test suite runs via `./manage test` (the script runs `cargo test`); this binary \
         has no test runner."
    );
    ExitCode::from(2)
}
