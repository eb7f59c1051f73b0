// Rebuild when the web build changes: release binaries embed web/dist (see src/web.rs); and
// when a migration changes: `sqlx::migrate!` embeds them (see src/store/sqlite.rs).
fn main() {
    println!("cargo:rerun-if-changed=../../web/dist");
    println!("cargo:rerun-if-changed=migrations");
}
