//! `conclave`: the desktop app.
// No console window behind the app on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    // Taken first so the launch-to-first-render figure covers all start-up work.
    let launched = std::time::Instant::now();
    if let Err(e) = conclave_app::run(launched) {
        eprintln!("conclave: {e:#}");
        std::process::exit(1);
    }
}
