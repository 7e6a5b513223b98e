// sqlx's `migrate!` embeds the files of `migrations/` at compile time; without this, adding a
// migration file (and nothing else) would not rebuild the crate.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
