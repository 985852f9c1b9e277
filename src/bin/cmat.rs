fn main() -> std::process::ExitCode {
    cmat::cli::main()
}
