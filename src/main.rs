fn main() {
    // The one place the tandem binary exits: cli::run() maps every error to its code.
    #[allow(clippy::disallowed_methods)]
    std::process::exit(tandem::cli::run());
}
