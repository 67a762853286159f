//! Builds (or finds cached) the minimal image: `cargo run -p kiln-images --example build-minimal -- CACHE_DIR`.
//! Prints each step with the time since the start, then the outputs.

use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let cache = std::env::args_os().nth(1).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("kiln-image-cache"));
    let started = Instant::now();
    let progress = |step: &str| eprintln!("[{:6.2}s] {step}", started.elapsed().as_secs_f64());
    match kiln_images::build_minimal(&cache, &progress) {
        Ok(image) => {
            println!("version  {}", image.version);
            println!("kernel   {}", image.kernel.display());
            println!("initrd   {}", image.initrd.display());
            println!("root     {}", image.root_disk.display());
            println!("cmdline  {}", image.cmdline);
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
