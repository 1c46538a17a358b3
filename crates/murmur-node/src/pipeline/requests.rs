//! Message requests on the chat path: what a stranger's messages would
//! have caused (a receipt, joining the group it added this account to) is
//! held, bounded and in memory, until the user accepts it; then it happens.
//! Across a restart nothing is lost. The receipts: when the user accepts
//! an account the crypto stage still lists as a request, its newest
//! messages in the durable inbox are acknowledged too. An invite to a
//! group: its kept plaintext is let go only once the invite is carried out
//! (or declined, or crowded out), so the crypto stage hands it over again
//! at the next start and it is held again ([`as_they_stand`] says, at that
//! start, which senders were accepted or declined since).

use std::collections::{HashMap, HashSet};

use super::*;

/// Accounts whose requests are held at most; the oldest goes first.
const ACCOUNTS: usize = 1024;
/// Receipts held per account at most.
const PER_ACCOUNT: usize = 64;
/// Group control messages (invites) held per account at most: each stays
/// kept on disk until the user answers, and is handled again at every
/// start.
const CONTROLS: usize = 8;

/// What is held for the accounts that wait to be accepted.
#[derive(Default)]
pub(super) struct Held {
    by_account: HashMap<AccountId, Waiting>,
    order: VecDeque<AccountId>,
    /// Accounts accepted while this node runs: an envelope the crypto
    /// stage opened as a request just before the user accepted its sender
    /// may reach the pipeline after [`Accepted`]; it is answered then.
    accepted: HashSet<AccountId>,
}

/// What one account's messages would have caused.
#[derive(Default)]
struct Waiting {
    receipts: Vec<MessageId>,
    /// Group control messages (an invite to a group), each kept by the
    /// crypto stage until it is let go here.
    controls: Vec<Control>,
}

/// A group control message held: from which device, the plaintext, and
/// the crypto stage's kept copy of it.
struct Control {
    device: crypto::DeviceId,
    message: bytes::Bytes,
    journal: Journal,
}

impl Waiting {
    /// The kept plaintexts behind what is held, to let go with it.
    fn journals(&self) -> impl Iterator<Item = Journal> + '_ {
        self.controls.iter().map(|c| c.journal)
    }
}

impl Held {
    /// Whether `account` was accepted since the crypto stage said it was
    /// not.
    pub(super) fn accepted_since(&self, account: AccountId) -> bool {
        self.accepted.contains(&account)
    }

    /// Whether anything is held for `account`.
    pub(super) fn holds(&self, account: AccountId) -> bool {
        self.by_account.contains_key(&account)
    }

    /// What is held for `account`, and the kept plaintexts of the oldest
    /// account's, crowded out to make room, to let go.
    fn waiting(&mut self, account: AccountId) -> (&mut Waiting, Vec<Journal>) {
        let mut crowded = Vec::new();
        if !self.by_account.contains_key(&account) {
            if self.order.len() >= ACCOUNTS {
                if let Some(oldest) = self.order.pop_front() {
                    if let Some(w) = self.by_account.remove(&oldest) {
                        crowded.extend(w.journals());
                    }
                }
            }
            self.order.push_back(account);
        }
        (self.by_account.entry(account).or_default(), crowded)
    }

    /// A message of `account` that was not acknowledged; answers the kept
    /// plaintexts to let go (see [`Held::waiting`]).
    #[must_use]
    pub(super) fn receipt(&mut self, account: AccountId, id: MessageId) -> Vec<Journal> {
        let (w, crowded) = self.waiting(account);
        if w.receipts.len() < PER_ACCOUNT {
            w.receipts.push(id);
        }
        crowded
    }

    /// A group control message of `account` that the membership stage
    /// refused because the account is not accepted; answers the kept
    /// plaintexts to let go: the crowded out, and this one if there is no
    /// room for it.
    #[must_use]
    pub(super) fn control(
        &mut self,
        account: AccountId,
        device: crypto::DeviceId,
        message: bytes::Bytes,
        journal: Journal,
    ) -> Vec<Journal> {
        let (w, mut crowded) = self.waiting(account);
        if w.controls.len() < CONTROLS {
            w.controls.push(Control {
                device,
                message,
                journal,
            });
        } else {
            crowded.push(journal);
        }
        crowded
    }

    /// `account` was declined: what it would have caused is forgotten, and
    /// no longer counts as accepted; answers the kept plaintexts to let go.
    fn declined(&mut self, account: AccountId) -> Vec<Journal> {
        self.accepted.remove(&account);
        self.order.retain(|a| *a != account);
        self.by_account
            .remove(&account)
            .map(|w| w.journals().collect())
            .unwrap_or_default()
    }

    fn take(&mut self, account: AccountId) -> Option<Waiting> {
        if self.accepted.len() >= ACCOUNTS {
            self.accepted.clear();
        }
        self.accepted.insert(account);
        self.order.retain(|a| *a != account);
        self.by_account.remove(&account)
    }
}

/// Group messages parked for a key or an invite that has come since go
/// through the lane again.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Unpark;

impl Handler<Unpark> for Pipeline {
    type Result = ();

    fn handle(&mut self, Unpark: Unpark, ctx: &mut Context<Self>) {
        let parked = self.chat.as_mut().map(|c| std::mem::take(&mut c.parked));
        for delivery in parked.into_iter().flatten() {
            self.queue_for_lane(delivery, ctx);
        }
    }
}

/// `account` was accepted: the receipts held for it go, and the groups it
/// added this account to are joined. `request`: the user accepted it
/// while the crypto stage listed it as a message request, so its messages
/// in the durable inbox are all unacknowledged requests (see the module's
/// doc); not set when a group introduced it, or it was accepted before.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Accepted {
    pub(crate) account: AccountId,
    pub(crate) request: bool,
}

impl Handler<Accepted> for Pipeline {
    type Result = ();

    fn handle(&mut self, accepted: Accepted, ctx: &mut Context<Self>) {
        self.release(accepted.account, accepted.request, ctx);
    }
}

impl Pipeline {
    /// What was held for `account`'s requests goes: it was accepted here
    /// or on another device of this account. With `from_inbox`, the
    /// receipts also go for its messages in the durable inbox, which a
    /// restart did not forget as it forgot what was held.
    pub(super) fn release(
        &mut self,
        account: AccountId,
        from_inbox: bool,
        ctx: &mut Context<Self>,
    ) {
        let mailbox = self.mailbox(ctx);
        let Some(chat) = self.chat.as_mut() else {
            return;
        };
        let held = chat.held.take(account);
        if held.is_none() && !from_inbox {
            return;
        }
        let mut waiting = held.unwrap_or_default();
        if from_inbox {
            // What came before a restart is in the durable inbox only;
            // what came since is held too, and goes once.
            let kept = chat
                .book
                .as_ref()
                .map(|book| book.kept_from(account, PER_ACCOUNT))
                .unwrap_or_default();
            let held: HashSet<MessageId> = waiting.receipts.iter().copied().collect();
            let mut receipts: Vec<MessageId> =
                kept.into_iter().filter(|id| !held.contains(id)).collect();
            receipts.append(&mut waiting.receipts);
            let over = receipts.len().saturating_sub(PER_ACCOUNT);
            waiting.receipts = receipts.split_off(over);
        }
        if !waiting.receipts.is_empty() {
            let publish = publish_sealed(
                chat.crypto.seal.clone(),
                crypto::Seal::new(account, chat::encode_receipt(&waiting.receipts)),
                chat.sharding.clone(),
                chat.outbox.clone(),
                mailbox.publisher(),
            );
            self.background(ctx, "receipts held for a message request", publish);
        }
        let Some(groups) = self.chat.as_ref().and_then(|c| c.groups.clone()) else {
            return;
        };
        if waiting.controls.is_empty() {
            return;
        }
        let join = async move {
            let mut carried = Vec::with_capacity(waiting.controls.len());
            for Control {
                device,
                message,
                journal,
            } in waiting.controls
            {
                let control = groups::Control {
                    from: account,
                    device,
                    message,
                    request: false,
                };
                let applied =
                    ask_again_after_restart(groups.control.clone(), control, groups_restarted);
                match applied.await? {
                    Ok(effects) => {
                        carried.push(journal);
                        if let Some(outcome) = mailbox.ask(ApplyEffects(effects)).await? {
                            outcome?;
                        }
                    }
                    // Still kept: carried out at the next start.
                    Err(e @ groups::Error::Restarted(_)) => {
                        tracing::warn!(error = %e, "a held group invite waits for the next start");
                    }
                    Err(e) => {
                        carried.push(journal);
                        tracing::debug!(error = %e, "held group control refused");
                    }
                }
            }
            // Group messages that came before these keys open now.
            mailbox.ask(Unpark).await?;
            // Carried out (or refused for good): a crash before this point
            // holds them again at the next start, and the account, a
            // contact by then, has them carried out.
            mailbox.ask(LetGo(carried)).await?;
            Ok::<_, Error>(())
        };
        self.background(ctx, "groups held for a message request", join);
    }

    /// Lets go of the kept plaintexts of held requests that went.
    pub(super) fn let_go_held(&mut self, journals: Vec<Journal>, ctx: &mut Context<Self>) {
        for journal in journals {
            self.handled(journal, ctx);
        }
    }
}

/// The kept plaintexts a previous run opened as requests, brought up to
/// date: the sender accepted since is no longer a request (its invite held
/// until then is carried out now). Answers the senders neither accepted
/// nor waiting as requests (declined or blocked, here or on another device
/// of this account), whose invites go; none if the crypto stage cannot
/// say.
pub(super) async fn as_they_stand(
    (contacts, requests): (Recipient<crypto::Contacts>, Recipient<crypto::Requests>),
    pairwise: &mut [(MessageHash, crypto::Opened)],
) -> HashSet<AccountId> {
    if !pairwise.iter().any(|(_, o)| o.request) {
        return HashSet::new();
    }
    let (Ok(Ok(contacts)), Ok(Ok(waiting))) = (
        contacts.send(crypto::Contacts).await,
        requests.send(crypto::Requests).await,
    ) else {
        return HashSet::new();
    };
    let (contacts, waiting): (HashSet<_>, HashSet<_>) = (
        contacts.into_iter().collect(),
        waiting.into_iter().collect(),
    );
    let mut gone = HashSet::new();
    for (_, opened) in pairwise.iter_mut().filter(|(_, o)| o.request) {
        if contacts.contains(&opened.sender) {
            opened.request = false;
        } else if !waiting.contains(&opened.sender) {
            gone.insert(opened.sender);
        }
    }
    gone
}

impl Pipeline {
    /// Whether `opened`, kept by a previous run, is a group invite from an
    /// account in `gone`: nothing would ever carry it out.
    pub(super) fn forgotten_invite(
        &self,
        opened: &crypto::Opened,
        gone: &HashSet<AccountId>,
    ) -> bool {
        let (Some(chat), Some(plaintext)) = (self.chat.as_ref(), opened.plaintext.as_ref()) else {
            return false;
        };
        gone.contains(&opened.sender)
            && matches!(
                chat::decode(opened.sender, opened.device, chat.me, plaintext),
                Ok(Decoded::Group)
            )
    }
}

/// The kept plaintexts of held requests that were carried out can go.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct LetGo(Vec<Journal>);

impl Handler<LetGo> for Pipeline {
    type Result = ();

    fn handle(&mut self, LetGo(journals): LetGo, ctx: &mut Context<Self>) {
        self.let_go_held(journals, ctx);
    }
}

/// `account` was declined or blocked: what its requests left held is
/// forgotten, its kept invites let go, and it no longer counts as accepted
/// in this run.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Declined(pub(crate) AccountId);

impl Handler<Declined> for Pipeline {
    type Result = ();

    fn handle(&mut self, Declined(account): Declined, ctx: &mut Context<Self>) {
        let journals = self
            .chat
            .as_mut()
            .map(|c| c.held.declined(account))
            .unwrap_or_default();
        self.let_go_held(journals, ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(n: u16) -> Journal {
        let mut hash = [0u8; 32];
        hash[..2].copy_from_slice(&n.to_be_bytes());
        Journal::Crypto(MessageHash(hash))
    }

    fn account(n: u16) -> AccountId {
        let mut id = [0u8; 32];
        id[..2].copy_from_slice(&n.to_be_bytes());
        AccountId(id)
    }

    fn invite(held: &mut Held, from: u16, n: u16) -> Vec<Journal> {
        held.control(
            account(from),
            crypto::DeviceId([0; 16]),
            bytes::Bytes::new(),
            journal(n),
        )
    }

    /// What the bounds push out is let go, never left kept for good.
    #[test]
    fn an_invite_crowded_out_is_let_go() {
        let mut held = Held::default();
        for n in 0..CONTROLS as u16 {
            assert!(invite(&mut held, 0, n).is_empty());
        }
        // No room left for the first account's next invite: it goes.
        assert_eq!(invite(&mut held, 0, 9_999), vec![journal(9_999)]);
        for a in 1..ACCOUNTS as u16 {
            assert!(invite(&mut held, a, 10_000 + a).is_empty());
        }
        // One account too many: the oldest account's invites go.
        let crowded = invite(&mut held, ACCOUNTS as u16, 20_000);
        assert_eq!(crowded.len(), CONTROLS);
        assert!(crowded.contains(&journal(0)));
        assert!(!held.holds(account(0)));
        // A receipt crowds out the same way.
        assert_eq!(
            held.receipt(account(ACCOUNTS as u16 + 1), MessageId([0; 16])),
            vec![journal(10_001)]
        );
    }

    /// Declining forgets what was held, lets its invites go, and undoes an
    /// acceptance earlier in the run.
    #[test]
    fn a_declined_account_is_a_stranger_again() {
        let mut held = Held::default();
        assert!(invite(&mut held, 1, 1).is_empty());
        assert!(held.take(account(1)).is_some());
        assert!(held.accepted_since(account(1)));
        assert!(invite(&mut held, 1, 2).is_empty());
        assert_eq!(held.declined(account(1)), vec![journal(2)]);
        assert!(!held.accepted_since(account(1)));
        assert!(!held.holds(account(1)));
    }
}
