//! Long work shows where it is on the terminal: a spinner on stderr that
//! says what was done so far. Nothing is drawn when stderr is not a
//! terminal (a pipe, a file, CI), so output meant for programs stays clean.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A spinner with a message.
pub(crate) struct Progress(ProgressBar);

impl Progress {
    /// Starts one saying `what`.
    pub(crate) fn new(what: impl Into<String>) -> Self {
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_message(what.into());
        bar.enable_steady_tick(Duration::from_millis(120));
        Self(bar)
    }

    /// Says what was done so far.
    pub(crate) fn set(&self, done: impl Into<String>) {
        self.0.set_message(done.into());
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
