//! The admin commands: `/ban ACCOUNT`, `/unban ACCOUNT`, `/kick ACCOUNT`,
//! `/mute ACCOUNT [SECONDS]`, `/delete MESSAGE`, with accounts and message
//! ids in hex.

use murmur_core::{chat::MessageId, crypto::AccountId};

/// An admin command, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdminCommand {
    /// Drops everything the account sends (and removes it from the group).
    Ban(AccountId),
    /// Lifts a ban.
    Unban(AccountId),
    /// Removes the account from the group.
    Kick(AccountId),
    /// Drops what the account sends for a while (the configured time if
    /// none is given).
    Mute(AccountId, Option<u64>),
    /// Deletes a message: its copies are dropped, and apps hide it.
    Delete(MessageId),
}

/// Why a command did not parse: the text is the polite reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("/{command}: {reason}. Usage: {usage}")]
pub struct CommandError {
    /// The command.
    pub command: &'static str,
    /// What is wrong.
    pub reason: String,
    /// How to call it.
    pub usage: &'static str,
}

const COMMANDS: [(&str, &str); 5] = [
    ("ban", "/ban ACCOUNT (64 hex digits)"),
    ("unban", "/unban ACCOUNT (64 hex digits)"),
    ("kick", "/kick ACCOUNT (64 hex digits)"),
    ("mute", "/mute ACCOUNT [SECONDS]"),
    ("delete", "/delete MESSAGE (32 hex digits)"),
];

impl AdminCommand {
    /// The command in `text`, if it is one: `None` for any other text.
    pub fn parse(text: &str) -> Option<Result<Self, CommandError>> {
        let body = text.trim().strip_prefix('/')?;
        let mut words = body.split_whitespace();
        let name = words.next()?;
        let &(command, usage) = COMMANDS.iter().find(|(c, _)| *c == name)?;
        let args: Vec<&str> = words.collect();
        let fail = |reason: &str| CommandError {
            command,
            reason: reason.to_owned(),
            usage,
        };
        let account = |s: Option<&&str>| -> Result<AccountId, CommandError> {
            let s = s.ok_or_else(|| fail("which account?"))?;
            let mut id = [0u8; 32];
            hex::decode_to_slice(s, &mut id).map_err(|_| fail("an account is 64 hex digits"))?;
            Ok(AccountId(id))
        };
        let parsed = (|| {
            let max = if command == "mute" { 2 } else { 1 };
            if args.len() > max {
                return Err(fail("too many arguments"));
            }
            Ok(match command {
                "ban" => Self::Ban(account(args.first())?),
                "unban" => Self::Unban(account(args.first())?),
                "kick" => Self::Kick(account(args.first())?),
                "mute" => {
                    let seconds = match args.get(1) {
                        None => None,
                        Some(s) => Some(
                            s.parse::<u64>()
                                .ok()
                                .filter(|n| *n > 0)
                                .ok_or_else(|| fail("seconds is a positive number"))?,
                        ),
                    };
                    Self::Mute(account(args.first())?, seconds)
                }
                _ => {
                    let s = args.first().ok_or_else(|| fail("which message?"))?;
                    let id = s
                        .parse()
                        .map_err(|_| fail("a message id is 32 hex digits"))?;
                    Self::Delete(id)
                }
            })
        })();
        Some(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_and_bad_arguments_say_why() {
        let a = "ab".repeat(32);
        assert_eq!(
            AdminCommand::parse(&format!("/ban {a}")),
            Some(Ok(AdminCommand::Ban(AccountId([0xab; 32]))))
        );
        assert_eq!(
            AdminCommand::parse(&format!("/mute {a} 30")),
            Some(Ok(AdminCommand::Mute(AccountId([0xab; 32]), Some(30))))
        );
        assert_eq!(AdminCommand::parse("hello"), None);
        assert_eq!(AdminCommand::parse("/help"), None);
        let err = AdminCommand::parse("/kick bob").unwrap().unwrap_err();
        assert_eq!(
            err.to_string(),
            "/kick: an account is 64 hex digits. Usage: /kick ACCOUNT (64 hex digits)"
        );
        assert!(AdminCommand::parse(&format!("/mute {a} -1"))
            .unwrap()
            .is_err());
        assert!(AdminCommand::parse(&format!("/ban {a} {a}"))
            .unwrap()
            .is_err());
        assert!(AdminCommand::parse("/delete").unwrap().is_err());
    }
}
