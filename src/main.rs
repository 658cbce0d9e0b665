fn main() {
    eprintln!("picolet: in progress");
    std::process::exit(2);
}
