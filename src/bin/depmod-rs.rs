//! `depmod-rs`: a drop-in replacement for kmod's `depmod`.

fn main() {
    eprintln!("depmod-rs: not built yet");
    std::process::exit(1);
}
