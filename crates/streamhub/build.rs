// Rebuild when the web build changes: release binaries embed web/dist (see src/web.rs).
fn main() {
    println!("cargo:rerun-if-changed=../../web/dist");
}
