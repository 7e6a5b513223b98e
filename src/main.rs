#![forbid(unsafe_code)]

/// mimalloc instead of the system allocator: the verification path allocates and frees many
/// small buffers across threads (TLS records, JSON, SQLite rows), where glibc's allocator spent
/// about a sixth of the CPU (perf, `elicense bench --verify-only`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    elicense::cli::main()
}
