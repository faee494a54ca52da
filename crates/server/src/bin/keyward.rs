//! The `keyward` binary: everything is in the library; see `keyward_server::cli`.

// glibc's allocator showed as ~19% of the verify path's CPU under load (malloc, free,
// unlink_chunk, malloc_consolidate); mimalloc's thread-local free lists cost a fraction of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    keyward_server::cli::main()
}
