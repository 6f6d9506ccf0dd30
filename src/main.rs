fn main() {
    std::process::exit(tandem::cli::run());
}
