//! Generates the app's context and one `allow-<command>` permission per
//! command, so the window's capability can grant exactly these.

const COMMANDS: &[&str] = &include!("src/command_names.rs");

fn main() {
    println!("cargo:rerun-if-changed=src/command_names.rs");
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS)),
    )
    .expect("tauri build script");
}
