//! The `whisper` binary: `./manage` runs it with Django-style subcommands.

fn main() -> std::process::ExitCode {
    whisper::cli::main()
}
