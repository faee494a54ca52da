//! `sqlx::migrate!` embeds `migrations/` when the crate compiles; a migration added or edited
//! alone changes no Rust file, so without this the build would keep the old set.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
