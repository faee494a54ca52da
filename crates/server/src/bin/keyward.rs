//! The `keyward` binary: everything lives in `keyward_server::cli`.

fn main() -> std::process::ExitCode {
    keyward_server::cli::main()
}
