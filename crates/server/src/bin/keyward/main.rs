//! The `keyward` binary: the command line (`cli`), the operator's commands on the database
//! (`commands`, through `keyward_core`), and the benchmark's seeding (`bench_seed`). Serving is
//! `keyward_server`'s.

// The command line times its own steps (start-up, seeding, backups) by the real clock; the
// operations it calls take theirs from a Clock.
#![allow(clippy::disallowed_methods)]

mod bench_seed;
mod cli;
mod commands;
mod import;
mod migrate;

// glibc's allocator showed as ~19% of the verify path's CPU under load (malloc, free,
// unlink_chunk, malloc_consolidate); mimalloc's thread-local free lists cost a fraction of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
