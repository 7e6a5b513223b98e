#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    elicense::cli::main()
}
