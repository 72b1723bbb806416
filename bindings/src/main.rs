//! The `uniffi-bindgen` command, built from the same pinned uniffi version as the
//! mobile core (a mismatch fails at load time with a contract-version error).
//! Usage: `cargo run -p uniffi-bindgen -- generate --library LIB --language kotlin --out-dir DIR`.

fn main() {
    uniffi::uniffi_bindgen_main()
}
