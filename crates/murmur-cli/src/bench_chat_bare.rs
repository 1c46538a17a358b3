//! The bare composition beside `murmur bench chat`'s 1:1 runs: two
//! rust-libp2p gossipsub swarms, a Double Ratchet session of
//! `murmur-crypto` used directly, and sqlx writes of the messages and the
//! session state in batches, with a receipt back for every batch read at
//! once, as murmur acknowledges what its lane read. Nothing of murmur's is
//! on the path but the ratchet, and, in the sealed variants, its
//! sealed-sender envelope around each ratchet message: the public-key work
//! that hides who writes to whom, without murmur's stages. Messages go one
//! per ratchet message, or what the window lets go at once in one (framed
//! by their lengths), at most as many and as large as murmur seals
//! together.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt as _;
use murmur_storage::Checkpoint;

use libp2p::{
    gossipsub::{self, IdentTopic},
    Swarm,
};
use murmur_crypto::{
    envelope, x3dh, Account, Ciphertext, Installation, Limits, Message, PrekeyPolicy, PublicKey,
    Session,
};

use crate::{
    bench::{RUN_LIMIT, SETUP},
    bench_bare::{events, listening, messages, on_own_thread, subscribed, tell_address, Bare},
    bench_chat::{Args, Clock, Report, BATCH},
    error::CliError,
};

/// What travels: the ratchet message as it is, or sealed for the other
/// side's device as murmur sends every pairwise message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wrap {
    Plain,
    Sealed,
}

/// How the sender hands messages to the ratchet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pack {
    /// One ratchet message each.
    Alone,
    /// What the window lets go at once in one ratchet message, up to
    /// `--batch` messages and [`BATCH_BYTES`], as murmur seals the messages
    /// that wait while the envelope before them is being sealed.
    Together,
}

/// The most text one ratchet message of [`Pack::Together`] carries: the
/// limit of murmur's batches.
const BATCH_BYTES: usize = 32 * 1024;

impl Pack {
    /// The texts from `*sent` on that go in the next ratchet message, with
    /// `room` left in the window (one at least): one, or up to `most` and
    /// [`BATCH_BYTES`].
    pub(crate) fn next(
        self,
        clock: &Clock,
        sent: &mut usize,
        room: usize,
        most: usize,
        size: usize,
    ) -> Vec<String> {
        let most = match self {
            Self::Alone => 1,
            Self::Together => most.min(room).max(1),
        };
        let (mut texts, mut bytes) = (Vec::new(), 0);
        while texts.len() < most && (texts.is_empty() || bytes + size <= BATCH_BYTES) {
            let text = clock.text(*sent, size);
            bytes += text.len();
            texts.push(text);
            *sent += 1;
        }
        texts
    }

    /// The plaintext of one ratchet message holding `texts`: the text
    /// itself, alone; each behind its length, together.
    pub(crate) fn plaintext(self, texts: &[String]) -> Vec<u8> {
        match self {
            Self::Alone => texts.concat().into_bytes(),
            Self::Together => {
                let mut frame = Vec::new();
                for t in texts {
                    frame.extend_from_slice(&(t.len() as u32).to_be_bytes());
                    frame.extend_from_slice(t.as_bytes());
                }
                frame
            }
        }
    }

    /// The texts in a ratchet message's plaintext.
    pub(crate) fn texts(self, plaintext: Vec<u8>) -> Result<Vec<Vec<u8>>, CliError> {
        match self {
            Self::Alone => Ok(vec![plaintext]),
            Self::Together => unframe(&plaintext),
        }
    }
}

/// The texts of a batch.
fn unframe(mut frame: &[u8]) -> Result<Vec<Vec<u8>>, CliError> {
    let mut texts = Vec::new();
    while !frame.is_empty() {
        let (len, rest) = frame
            .split_first_chunk::<4>()
            .ok_or_else(|| CliError::Failed("bare batch: a cut length".to_owned()))?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return Err(CliError::Failed("bare batch: a cut text".to_owned()));
        }
        texts.push(rest[..len].to_vec());
        frame = &rest[len..];
    }
    Ok(texts)
}

/// One side of the bare composition: its device, and the other side's
/// identity key (what a sealed envelope is sealed to).
struct End {
    session: Session,
    ours: Installation,
    theirs: PublicKey,
    wrap: Wrap,
}

impl End {
    fn seal(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, CliError> {
        let message = self
            .session
            .encrypt(plaintext)
            .map_err(|e| CliError::Failed(format!("bare seal: {e}")))?;
        Ok(match self.wrap {
            Wrap::Plain => message.to_bytes(),
            Wrap::Sealed => envelope::seal(
                &self.theirs,
                (self.ours.account(), self.ours.device()),
                &Ciphertext::Message(message),
            ),
        })
    }

    /// The plaintext, and the message's ratchet key and index: unique
    /// within the session.
    fn open(&mut self, data: &[u8]) -> Result<(Vec<u8>, Vec<u8>), CliError> {
        let fail = |e: String| CliError::Failed(format!("bare open: {e}"));
        let message = match self.wrap {
            Wrap::Plain => Message::from_bytes(data).map_err(|e| fail(e.to_string()))?,
            Wrap::Sealed => match envelope::open(&self.ours, data)
                .map_err(|e| fail(e.to_string()))?
                .ciphertext
            {
                Ciphertext::Message(m) => m,
                Ciphertext::Prekey(..) => return Err(fail("a prekey message".to_owned())),
            },
        };
        let header = &message.header;
        let mut key = header.ratchet_key.as_bytes().to_vec();
        key.extend_from_slice(&header.index.to_be_bytes());
        let text = self
            .session
            .decrypt(&message)
            .map_err(|e| fail(e.to_string()))?;
        Ok((text, key))
    }
}

/// Both ends as X3DH leaves them, one message each way: the sender's and
/// the receiver's.
fn ends(wrap: Wrap) -> Result<(End, End), CliError> {
    let fail = |e: String| CliError::Failed(format!("bare sessions: {e}"));
    let now = murmur_core::now_nanos().unsigned_abs() / 1_000_000_000;
    let alice = Installation::create(&Account::generate(), PrekeyPolicy::default(), now);
    let mut bob = Installation::create(&Account::generate(), PrekeyPolicy::default(), now);
    let mut a = x3dh::initiate(&alice, &bob.bundle(now), Limits::default())
        .map_err(|e| fail(e.to_string()))?;
    let Ciphertext::Prekey(init, m) = a.seal(b"hi").map_err(|e| fail(e.to_string()))? else {
        return Err(fail("the first message is not a prekey message".to_owned()));
    };
    let (mut b, _) =
        x3dh::respond(&mut bob, &init, &m, Limits::default()).map_err(|e| fail(e.to_string()))?;
    let answer = b.encrypt(b"ok").map_err(|e| fail(e.to_string()))?;
    a.decrypt(&answer).map_err(|e| fail(e.to_string()))?;
    let (alice_key, bob_key) = (alice.identity_key(), bob.identity_key());
    Ok((
        End {
            session: a,
            ours: alice,
            theirs: bob_key,
            wrap,
        },
        End {
            session: b,
            ours: bob,
            theirs: alice_key,
            wrap,
        },
    ))
}

/// One side's SQLite database with the archive's schema, written as
/// murmur's storage stage writes ([`Bare`]).
pub(crate) async fn database(dir: &std::path::Path, name: &str) -> Result<Bare, CliError> {
    Bare::open(&dir.join(name).join("bare.db")).await
}

/// Writes `messages` (each its plaintext under a unique key) and the
/// session's (or chain's) state in one transaction.
pub(crate) async fn save(
    db: &mut Bare,
    messages: &[(Vec<u8>, Vec<u8>)],
    state: &[u8],
) -> Result<(), CliError> {
    let mut statements = Vec::with_capacity(2);
    if !messages.is_empty() {
        statements.push(murmur_storage::archive_insert(messages.len(), true));
    }
    statements.push(
        "INSERT INTO state (name, value, updated_at) VALUES (?, ?, ?) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
            .to_owned(),
    );
    let text = Bare::script(&statements);
    let mut q = sqlx::query(&text);
    let now = murmur_core::now_nanos();
    let mut bytes = state.len() + Checkpoint::ROW;
    for (hash, text) in messages {
        q = q
            .bind(hash.clone())
            .bind("bench")
            .bind("bench")
            .bind(now)
            .bind(text.clone())
            .bind(now);
        bytes += hash.len() + text.len() + Checkpoint::ROW;
    }
    let q = q.bind("session").bind(state.to_vec()).bind(now);
    db.commit(q, bytes).await
}

/// The same path with nothing of murmur's on it but the ratchet (and
/// with [`Wrap::Sealed`] the envelope): the receiver opens each message, writes it and the session's state (a batch
/// of what is ready at once per transaction), then seals and publishes one
/// receipt for the batch; the sender opens the receipts and writes its
/// session's state the same way.
pub(crate) async fn run(args: &Args, wrap: Wrap, pack: Pack) -> Result<Report, CliError> {
    let data = Arc::new(tempfile::tempdir()?);
    let (sending, receiving) = ends(wrap)?;
    let (there, back) = (
        IdentTopic::new("bench-messages"),
        IdentTopic::new("bench-receipts"),
    );
    let clock = Clock::new();
    let n = args.messages;
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let receiver = {
        let (clock, data, there, back) = (clock.clone(), data.clone(), there.clone(), back.clone());
        on_own_thread("bare-chat-receiver", async move {
            let mut db = database(data.path(), "receiver").await?;
            let mut end = receiving;
            let mut swarm = listening(&[&there, &back])?;
            let mut addr_tx = Some(addr_tx);
            let deadline = tokio::time::Instant::now() + RUN_LIMIT;
            let mut received = 0;
            while received < n {
                let ready = events(&mut swarm, deadline, BATCH).await?;
                tell_address(&ready, &mut addr_tx);
                let mut opened = Vec::new();
                for data in messages(&mut swarm, ready) {
                    let (plaintext, key) = end.open(&data)?;
                    for (i, text) in pack.texts(plaintext)?.into_iter().enumerate() {
                        let mut key = key.clone();
                        key.extend_from_slice(&(i as u32).to_be_bytes());
                        opened.push((key, text));
                    }
                }
                if opened.is_empty() {
                    continue;
                }
                save(&mut db, &opened, &end.session.to_bytes()).await?;
                // One receipt for the batch, as murmur sends one for what
                // its lane read at once: each message's first 8 bytes.
                let mut ids = Vec::with_capacity(8 * opened.len());
                for (_, text) in &opened {
                    clock.arrived(std::str::from_utf8(text).unwrap_or_default());
                    let mut id = [0u8; 8];
                    let k = 8.min(text.len());
                    id[..k].copy_from_slice(&text[..k]);
                    ids.extend_from_slice(&id);
                }
                let receipt = end.seal(&ids)?;
                publish(&mut swarm, &back, receipt).await?;
                save(&mut db, &[], &end.session.to_bytes()).await?;
                received += opened.len();
            }
            // The last receipts leave before the swarm goes.
            let linger = tokio::time::Instant::now() + Duration::from_millis(500);
            while tokio::time::timeout_at(linger, swarm.select_next_some())
                .await
                .is_ok()
            {}
            Ok(())
        })
    };
    let addr = addr_rx
        .await
        .map_err(|_| CliError::Failed("bare receiver did not listen".to_owned()))?;
    let (window, size, most) = (args.window, args.size, args.batch.max(1));
    let sender = {
        let clock = clock.clone();
        on_own_thread("bare-chat-sender", async move {
            let fail = |e: String| CliError::Failed(format!("bare sender: {e}"));
            let mut db = database(data.path(), "sender").await?;
            let mut end = sending;
            let mut swarm = subscribed(&[&there, &back])?;
            swarm.dial(addr).map_err(|e| fail(e.to_string()))?;
            let setup = tokio::time::Instant::now() + SETUP;
            while swarm.behaviour().mesh_peers(&there.hash()).count() == 0
                || swarm.behaviour().mesh_peers(&back.hash()).count() == 0
            {
                tokio::time::timeout_at(setup, swarm.select_next_some())
                    .await
                    .map_err(|_| fail("no mesh within 20 s".to_owned()))?;
            }
            let started = Instant::now();
            let deadline = tokio::time::Instant::now() + RUN_LIMIT;
            let (mut sent, mut acked) = (0, 0);
            while acked < n {
                let mut sealed = 0;
                while sent < n && sent - acked < window {
                    let room = (window - (sent - acked)).min(n - sent);
                    let texts = pack.next(&clock, &mut sent, room, most, size);
                    let message = end.seal(&pack.plaintext(&texts))?;
                    publish(&mut swarm, &there, message).await?;
                    sealed += 1;
                }
                if sealed > 0 {
                    save(&mut db, &[], &end.session.to_bytes()).await?;
                }
                let ready = events(&mut swarm, deadline, BATCH).await?;
                let mut opened = 0;
                for data in messages(&mut swarm, ready) {
                    opened += end.open(&data)?.0.len() / 8;
                }
                if opened > 0 {
                    save(&mut db, &[], &end.session.to_bytes()).await?;
                    acked += opened;
                }
            }
            Ok(started.elapsed())
        })
    };
    let elapsed = sender.await?;
    receiver.await?;
    clock.report(n, elapsed)
}

/// Publishes `bytes` on `topic`, letting the swarm drain its queue while
/// it is full.
pub(crate) async fn publish(
    swarm: &mut Swarm<gossipsub::Behaviour>,
    topic: &IdentTopic,
    bytes: Vec<u8>,
) -> Result<(), CliError> {
    loop {
        match swarm.behaviour_mut().publish(topic.clone(), bytes.clone()) {
            Ok(_) => return Ok(()),
            Err(gossipsub::PublishError::AllQueuesFull(_)) => {
                let _ = swarm.select_next_some().await;
            }
            Err(e) => return Err(CliError::Failed(format!("bare publish: {e}"))),
        }
    }
}
