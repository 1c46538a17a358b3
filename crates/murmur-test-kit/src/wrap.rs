//! A stage message wrapped on its way to the stage: counted ([`tally`]) or
//! held until the test lets it through or refuses it ([`gate`]). These are the smallest
//! replacements of a stage an integrator writes (one that wraps the default
//! and observes or delays what goes through): the conformance suites run on
//! them beside the default stages, to prove that a stage is only its
//! handle, and integration tests hold a stage still with a gate.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use actix::prelude::*;
use tokio::sync::watch;

use crate::probe::WAIT;

/// How many messages went through a [`tally`].
#[derive(Debug, Clone, Default)]
pub struct Tally(Arc<AtomicU64>);

impl Tally {
    /// How many so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Where a gate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stand {
    Open,
    Closed,
    /// Answers what it held, and what comes, as if the stage were gone.
    Refusing,
}

/// Forwards each `M` to the stage, counting it (each a gate picks), after
/// the gate (if any) opened.
struct Wrapper<M>
where
    M: Message + Send,
    M::Result: Send,
{
    inner: Recipient<M>,
    tally: Tally,
    open: Option<watch::Receiver<Stand>>,
    held: watch::Sender<usize>,
    /// The answer when the stage behind is gone.
    gone: fn() -> M::Result,
    /// Which messages the gate holds; the others pass it.
    picks: Picks<M>,
}

/// Which messages a gate holds.
type Picks<M> = Box<dyn Fn(&M) -> bool + Send>;

impl<M> Actor for Wrapper<M>
where
    M: Message + Send + 'static,
    M::Result: Send,
{
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
    }
}

impl<M> Handler<M> for Wrapper<M>
where
    M: Message + Send + 'static,
    M::Result: Send,
{
    type Result = ResponseFuture<M::Result>;

    fn handle(&mut self, msg: M, _: &mut Context<Self>) -> Self::Result {
        let picked = (self.picks)(&msg);
        if picked {
            self.tally.0.fetch_add(1, Ordering::Relaxed);
        }
        let (inner, open, held, gone) = (
            self.inner.clone(),
            self.open.clone(),
            self.held.clone(),
            self.gone,
        );
        let open = open.filter(|_| picked);
        Box::pin(async move {
            if let Some(mut open) = open {
                if *open.borrow() == Stand::Closed {
                    held.send_modify(|n| *n += 1);
                    let _ = open.wait_for(|s| *s != Stand::Closed).await;
                    held.send_modify(|n| *n -= 1);
                }
                if *open.borrow() == Stand::Refusing {
                    return gone();
                }
            }
            inner.send(msg).await.unwrap_or_else(|_| gone())
        })
    }
}

fn wrap<M>(
    inner: Recipient<M>,
    gone: fn() -> M::Result,
    open: Option<watch::Receiver<Stand>>,
    picks: Picks<M>,
) -> (Recipient<M>, Tally, watch::Receiver<usize>)
where
    M: Message + Send + 'static,
    M::Result: Send,
{
    let tally = Tally::default();
    let (held_tx, held) = watch::channel(0);
    let wrapper = Wrapper {
        inner,
        tally: tally.clone(),
        open,
        held: held_tx,
        gone,
        picks,
    }
    .start();
    (wrapper.recipient(), tally, held)
}

/// Counts every `M` sent to the returned recipient, then hands it to
/// `inner`; `gone` is the answer when `inner` is no longer there.
///
/// ```
/// use murmur_core::storage::{self, ListState};
/// use murmur_test_kit::{tally, MemoryStorage};
///
/// murmur_test_kit::run(async {
///     let default = storage::Handle::from(MemoryStorage::start());
///     let (list_state, listed) = tally(default.list_state.clone(), || {
///         Err(storage::Error::Backend("gone".to_owned()))
///     });
///     let counted = storage::Handle { list_state, ..default };
///     counted.list_state.send(ListState("x/".to_owned())).await.unwrap().unwrap();
///     assert_eq!(listed.get(), 1);
/// });
/// ```
pub fn tally<M>(inner: Recipient<M>, gone: fn() -> M::Result) -> (Recipient<M>, Tally)
where
    M: Message + Send + 'static,
    M::Result: Send,
{
    let (recipient, tally, _) = wrap(inner, gone, None, Box::new(|_| true));
    (recipient, tally)
}

/// The test's side of a [`gate`].
#[derive(Debug)]
pub struct Valve {
    open: watch::Sender<Stand>,
    held: watch::Receiver<usize>,
    arrived: Tally,
}

/// A closed gate in front of `inner`: every `M` sent to the returned
/// recipient waits until the [`Valve`] opens, then goes to `inner`; `gone`
/// is the answer when `inner` is no longer there, and what a refusing
/// gate answers ([`Valve::refuse`]).
///
/// ```
/// use murmur_core::storage::{self, ListState};
/// use murmur_test_kit::{gate, MemoryStorage};
///
/// murmur_test_kit::run(async {
///     let default = storage::Handle::from(MemoryStorage::start());
///     let (list_state, mut valve) = gate(default.list_state.clone(), || {
///         Err(storage::Error::Backend("gone".to_owned()))
///     });
///     let asked = list_state.send(ListState("x/".to_owned()));
///     let answered = actix::spawn(asked);
///     valve.holding(1).await;
///     valve.open();
///     answered.await.unwrap().unwrap().unwrap();
/// });
/// ```
pub fn gate<M>(inner: Recipient<M>, gone: fn() -> M::Result) -> (Recipient<M>, Valve)
where
    M: Message + Send + 'static,
    M::Result: Send,
{
    gate_some(inner, gone, |_| true)
}

/// A [`gate`] that holds only the messages `picks` answers `true` for: the
/// others go straight to `inner`, so that one held can be overtaken by
/// those sent after it (a stage that answers out of order).
///
/// ```
/// use murmur_core::storage::{self, LoadState};
/// use murmur_test_kit::{gate_some, MemoryStorage};
///
/// murmur_test_kit::run(async {
///     let default = storage::Handle::from(MemoryStorage::start());
///     let (load_state, mut valve) = gate_some(
///         default.load_state.clone(),
///         || Err(storage::Error::Backend("gone".to_owned())),
///         |LoadState(name): &LoadState| name == "held",
///     );
///     let held = actix::spawn(load_state.send(LoadState("held".to_owned())));
///     valve.holding(1).await;
///     let passed = load_state.send(LoadState("passes".to_owned())).await;
///     assert_eq!(passed.unwrap().unwrap(), None, "past the one held");
///     valve.open();
///     held.await.unwrap().unwrap().unwrap();
/// });
/// ```
pub fn gate_some<M>(
    inner: Recipient<M>,
    gone: fn() -> M::Result,
    picks: impl Fn(&M) -> bool + Send + 'static,
) -> (Recipient<M>, Valve)
where
    M: Message + Send + 'static,
    M::Result: Send,
{
    let (open_tx, open) = watch::channel(Stand::Closed);
    let (recipient, arrived, held) = wrap(inner, gone, Some(open), Box::new(picks));
    (
        recipient,
        Valve {
            open: open_tx,
            held,
            arrived,
        },
    )
}

impl Valve {
    /// Waits until at least `n` messages are held.
    ///
    /// # Panics
    ///
    /// If they are not within 15 s: this is for tests.
    pub async fn holding(&mut self, n: usize) {
        tokio::time::timeout(WAIT, self.held.wait_for(|h| *h >= n))
            .await
            .unwrap_or_else(|_| panic!("{n} messages never reached the gate"))
            .expect("the gate is there");
    }

    /// How many messages are held now.
    pub fn held(&self) -> usize {
        *self.held.borrow()
    }

    /// How many messages reached the gate so far, held or not (of a
    /// [`gate_some`], those it picks).
    pub fn arrived(&self) -> u64 {
        self.arrived.get()
    }

    /// Lets every message held, and every later one, through.
    pub fn open(&self) {
        self.open.send_replace(Stand::Open);
    }

    /// Holds every later message (those on their way through go on).
    pub fn close(&self) {
        self.open.send_replace(Stand::Closed);
    }

    /// Answers every message held, and every later one, as if the stage
    /// were gone, without handing it on: a stage that fails.
    pub fn refuse(&self) {
        self.open.send_replace(Stand::Refusing);
    }
}

/// `storage` with its stage-state writes ([`SaveState`]) behind an open
/// gate: a refusing gate answers them as a backend error.
///
/// [`SaveState`]: murmur_core::storage::SaveState
pub fn gate_saves(storage: &murmur_core::storage::Handle) -> (murmur_core::storage::Handle, Valve) {
    use murmur_core::storage;
    let (save_state, valve) = gate(storage.save_state.clone(), || {
        Err(storage::Error::Backend("refused by the test".to_owned()))
    });
    valve.open();
    let gated = storage::Handle {
        save_state,
        ..storage.clone()
    };
    (gated, valve)
}
