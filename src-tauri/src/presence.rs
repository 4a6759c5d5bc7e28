//! Whether a person can see the window. While nobody can (hidden to the
//! tray, minimised), the app stops pushing stats samples to it and the tray
//! says the window's updates are paused; the window fetches a fresh snapshot
//! when it is shown again.

use std::sync::atomic::{AtomicBool, Ordering};

use tauri::{AppHandle, Manager, Runtime};

/// The window's visibility, as the tray and the window itself report it.
#[derive(Debug)]
pub struct WindowPresence {
    visible: AtomicBool,
    /// The window was shown (or loaded) and holds no recent sample: the
    /// next one goes out even if nothing changed.
    wants_sample: AtomicBool,
}

impl Default for WindowPresence {
    /// The window starts visible (`tauri.conf.json`).
    fn default() -> Self {
        Self {
            visible: AtomicBool::new(true),
            wants_sample: AtomicBool::new(false),
        }
    }
}

impl WindowPresence {
    /// True while the window can be seen.
    pub fn is_visible(&self) -> bool {
        self.visible.load(Ordering::Relaxed)
    }

    /// Records the window's visibility; true if it changed. A visible
    /// window asks for the next sample.
    pub fn set_visible(&self, visible: bool) -> bool {
        if visible {
            self.wants_sample.store(true, Ordering::Relaxed);
        }
        self.visible.swap(visible, Ordering::Relaxed) != visible
    }

    /// True once after the window asked for a sample.
    pub fn take_sample_request(&self) -> bool {
        self.wants_sample.swap(false, Ordering::Relaxed)
    }
}

/// True unless the app knows the window is hidden (an app without the state
/// behaves as before: always visible).
pub fn window_visible<R: Runtime>(app: &AppHandle<R>) -> bool {
    app.try_state::<WindowPresence>()
        .is_none_or(|p| p.is_visible())
}

/// True once after the window was shown or loaded (see
/// [`WindowPresence::take_sample_request`]).
pub fn take_sample_request<R: Runtime>(app: &AppHandle<R>) -> bool {
    app.try_state::<WindowPresence>()
        .is_some_and(|p| p.take_sample_request())
}

/// Records the window's visibility and shows it in the tray.
pub fn set_window_visible<R: Runtime>(app: &AppHandle<R>, visible: bool) {
    let changed = app
        .try_state::<WindowPresence>()
        .is_some_and(|p| p.set_visible(visible));
    if changed {
        tracing::debug!(visible, "window visibility changed");
        crate::tray::show_paused(app, !visible);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_only_changes() {
        let presence = WindowPresence::default();
        assert!(presence.is_visible());
        assert!(!presence.set_visible(true), "already visible");
        assert!(presence.set_visible(false));
        assert!(!presence.is_visible());
        assert!(!presence.set_visible(false), "already hidden");
        assert!(presence.set_visible(true));
    }

    #[test]
    fn a_shown_window_asks_for_one_sample() {
        let presence = WindowPresence::default();
        assert!(!presence.take_sample_request(), "nothing asked yet");
        presence.set_visible(false);
        assert!(
            !presence.take_sample_request(),
            "a hidden window wants none"
        );
        presence.set_visible(true);
        assert!(presence.take_sample_request());
        assert!(!presence.take_sample_request(), "once");
        // A window that reloads reports itself visible again.
        presence.set_visible(true);
        assert!(presence.take_sample_request());
    }
}
