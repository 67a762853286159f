//! Builds (or finds cached) a provided image by name:
//! `cargo run -p kiln-images --example build-image -- NAME CACHE_DIR` (NAME: `minimal` or
//! `debian-12`). Prints each step with the time since the start, then the outputs.

use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let mut args = std::env::args_os().skip(1);
    let name = args.next().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "minimal".to_owned());
    let cache = args.next().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("kiln-image-cache"));
    let started = Instant::now();
    let progress = |step: &str| eprintln!("[{:6.2}s] {step}", started.elapsed().as_secs_f64());
    match kiln_images::build_named(&name, &cache, &progress) {
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
