//! Checks before handlers, and what happens after them.

use std::{future::Future, pin::Pin};

use murmur_core::chat::ChatMessage;

use crate::{extract::Reply, HandlerResult};

/// Whether a message goes on to its handler.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Flow {
    /// On to the next middleware, then the handler.
    Continue,
    /// Stops here; the reason is logged and counted.
    Stop(String),
}

/// Runs around every handler, in the order added.
pub trait Middleware: 'static {
    /// Before the handler: a check (a role, a rate, a filter).
    fn before(&self, message: &ChatMessage) -> Flow {
        let _ = message;
        Flow::Continue
    }

    /// After the handler, whatever it answered.
    fn after(&self, message: &ChatMessage, result: &HandlerResult) {
        let _ = (message, result);
    }

    /// When the handler failed: by default nothing (the error is logged
    /// and counted); a bot may apologize to the sender here.
    fn on_error<'a>(
        &'a self,
        message: &'a ChatMessage,
        error: &'a (dyn std::error::Error + Send + Sync),
        reply: &'a Reply,
    ) -> Pin<Box<dyn Future<Output = ()> + 'a>> {
        let _ = (message, error, reply);
        Box::pin(async {})
    }
}
