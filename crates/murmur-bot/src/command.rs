//! Typed commands: `/name arguments` text messages, parsed into the
//! command's own type before its handler runs.

use std::fmt;

use crate::{extract::FromContext, Context, Error};

/// A command a bot understands: its name, its usage, and how its
/// arguments parse.
///
/// ```
/// use murmur_bot::BotCommand;
///
/// /// `/roll 2d6`
/// struct Roll { dice: u32, sides: u32 }
///
/// impl BotCommand for Roll {
///     const NAME: &'static str = "roll";
///     const USAGE: &'static str = "/roll NdM, for example /roll 2d6";
///     fn parse(args: &str) -> Result<Self, String> {
///         let (n, m) = args.trim().split_once('d').ok_or("expected NdM")?;
///         let dice = n.parse().map_err(|_| "N is a number")?;
///         let sides = m.parse().map_err(|_| "M is a number")?;
///         Ok(Self { dice, sides })
///     }
/// }
/// assert!(Roll::parse("2d6").is_ok());
/// assert!(Roll::parse("two").is_err());
/// ```
pub trait BotCommand: Sized + 'static {
    /// The name after the slash.
    const NAME: &'static str;
    /// How to call it, shown when the arguments do not parse.
    const USAGE: &'static str;

    /// Parses the text after `/NAME`; the error says what is wrong.
    fn parse(args: &str) -> Result<Self, String>;
}

/// A handler argument: the parsed command. Bad arguments never reach the
/// handler: the sender gets the usage instead.
#[derive(Debug)]
pub struct Command<C>(pub C);

/// A command whose arguments did not parse; its text is the polite reply.
#[derive(Debug)]
pub(crate) struct BadArguments {
    name: &'static str,
    usage: &'static str,
    reason: String,
}

impl fmt::Display for BadArguments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}: {}. Usage: {}", self.name, self.reason, self.usage)
    }
}

impl std::error::Error for BadArguments {}

impl<C: BotCommand> FromContext for Command<C> {
    fn from_context(cx: &Context) -> Result<Self, crate::BoxError> {
        let args = cx
            .args
            .as_deref()
            .ok_or(Error::Missing("a command outside a command route"))?;
        C::parse(args).map(Command).map_err(|reason| {
            Box::new(BadArguments {
                name: C::NAME,
                usage: C::USAGE,
                reason,
            }) as crate::BoxError
        })
    }
}

/// `/name rest` into `("name", "rest")`; `None` for other text.
pub(crate) fn split(text: &str) -> Option<(&str, &str)> {
    let body = text.trim_start().strip_prefix('/')?;
    let (name, args) = body.split_once(char::is_whitespace).unwrap_or((body, ""));
    (!name.is_empty()).then_some((name, args.trim()))
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn commands_split_at_the_first_space() {
        assert_eq!(split("/ban abc  "), Some(("ban", "abc")));
        assert_eq!(split("  /help"), Some(("help", "")));
        assert_eq!(split("hello /ban"), None);
        assert_eq!(split("/"), None);
    }
}
