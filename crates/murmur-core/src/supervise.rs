//! Supervision that holds for every stage.
//!
//! actix's `Supervisor` restarts an actor only when the actor stops itself: a
//! panic that escapes a handler kills the actor's task, its mailbox closes and
//! every later request answers `MailboxError`. A stage therefore runs the body
//! of each handler through [`guard`] (and the futures it returns through
//! [`Guarded`] or [`catch`]): a panic is caught there, logged, answered to
//! the asker as [`Panicked`] (which every stage's `Error` converts from), and
//! the actor stops itself so that its supervisor restarts it. What waited in
//! the mailbox stays there for the restarted actor, which reloads what it
//! keeps from its persisted state in `Supervised::restarting`.
//!
//! ```
//! use actix::prelude::*;
//! use murmur_core::supervise::{self, Fuse, Panicked, Restartable};
//!
//! #[derive(Default)]
//! struct Counter {
//!     n: u64,
//!     fuse: Fuse,
//! }
//!
//! impl Actor for Counter {
//!     type Context = Context<Self>;
//! }
//! impl Supervised for Counter {}
//! impl Restartable for Counter {
//!     const NAME: &'static str = "counter";
//!     fn fuse(&mut self) -> &mut Fuse {
//!         &mut self.fuse
//!     }
//! }
//!
//! #[derive(Message)]
//! #[rtype(result = "Result<u64, Panicked>")]
//! struct Add(u64);
//!
//! impl Handler<Add> for Counter {
//!     type Result = Result<u64, Panicked>;
//!     fn handle(&mut self, Add(n): Add, ctx: &mut Context<Self>) -> Self::Result {
//!         supervise::guard(self, ctx, |act, _| {
//!             assert!(n < 100, "too big");
//!             act.n += n;
//!             act.n
//!         })
//!     }
//! }
//!
//! # actix::System::new().block_on(async {
//! let counter = Supervisor::start(|_| Counter::default());
//! assert_eq!(counter.send(Add(1)).await.unwrap(), Ok(1));
//! // The panic is answered, not propagated, and the actor is restarted.
//! assert!(counter.send(Add(500)).await.unwrap().is_err());
//! assert_eq!(counter.send(Add(2)).await.unwrap(), Ok(3));
//! # });
//! ```

use std::{
    any::Any,
    future::Future,
    panic::{catch_unwind, AssertUnwindSafe},
    pin::Pin,
    task::{Context as TaskContext, Poll},
};

use actix::{
    dev::{MessageResponse, OneshotSender},
    Actor, ActorContext, ActorFuture, ActorFutureExt as _, AsyncContext as _, Context, Message,
    ResponseActFuture, Supervised,
};

/// A request that made its stage panic: the stage restarted, and the request
/// was not carried out (or not to the end; the stage's persisted state is
/// what holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the {0} stage failed on this request and was restarted")]
pub struct Panicked(pub &'static str);

/// A stage actor run under a supervisor whose handlers are guarded, so
/// that a panic restarts it instead of ending it.
pub trait Restartable: Actor<Context = Context<Self>> + Supervised {
    /// The stage's name in logs and errors.
    const NAME: &'static str;

    /// The stage's fault-injection fuse.
    fn fuse(&mut self) -> &mut Fuse;
}

/// Arms a fault for tests of supervision: the next guarded handler of the
/// stage panics inside its guard, as a defect in that handler would.
#[derive(Debug, Default)]
pub struct Fuse {
    armed: bool,
}

impl Fuse {
    /// Arms the fuse.
    pub fn arm(&mut self) {
        self.armed = true;
    }

    fn blow(&mut self) -> bool {
        std::mem::take(&mut self.armed)
    }
}

/// Asks a stage to panic in its next guarded handler (tests of supervision).
/// Every stage handles it; it is harmless in production code only in that
/// whoever holds a stage's address can already stop it.
#[derive(Debug, Clone, Copy, actix::Message)]
#[rtype(result = "()")]
pub struct InjectPanic;

/// Handles [`InjectPanic`] for a [`Restartable`] stage (orphan rules forbid a blanket
/// impl in this crate).
#[macro_export]
macro_rules! inject_panic_handler {
    ($stage:ty) => {
        impl ::actix::Handler<$crate::supervise::InjectPanic> for $stage {
            type Result = ();

            fn handle(
                &mut self,
                _: $crate::supervise::InjectPanic,
                _: &mut ::actix::Context<Self>,
            ) {
                $crate::supervise::Restartable::fuse(self).arm();
            }
        }
    };
}

/// Runs a handler's body; a panic in it is logged, the actor stopped (its
/// supervisor restarts it) and [`Panicked`] returned for the asker.
pub fn guard<A, R>(
    act: &mut A,
    ctx: &mut Context<A>,
    body: impl FnOnce(&mut A, &mut Context<A>) -> R,
) -> Result<R, Panicked>
where
    A: Restartable,
{
    let armed = act.fuse().blow();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        assert!(!armed, "fault injected into the {} stage", A::NAME);
        body(act, ctx)
    }));
    outcome.map_err(|panic| {
        tracing::error!(stage = A::NAME, panic = %message(&*panic), "stage panicked; restarting it");
        ctx.stop();
        Panicked(A::NAME)
    })
}

/// A future a handler returns, with its panics caught: answered as
/// [`Panicked`]. The actor itself is not touched by such a future, so it
/// need not restart.
pub async fn catch<F: Future>(stage: &'static str, future: F) -> Result<F::Output, Panicked> {
    use futures::FutureExt as _;
    AssertUnwindSafe(future)
        .catch_unwind()
        .await
        .map_err(|panic| {
            tracing::error!(stage, panic = %message(&*panic), "stage future panicked");
            Panicked(stage)
        })
}

/// An actor future (one that works on the actor's state as it runs) with its
/// panics caught: the actor stops so that it is restarted, and the future
/// completes with [`Panicked`].
pub struct Guarded<F> {
    inner: F,
}

impl<F> Guarded<F> {
    /// Guards `inner`.
    pub fn new(inner: F) -> Self {
        Self { inner }
    }
}

impl<A, F, T> ActorFuture<A> for Guarded<F>
where
    A: Restartable,
    F: ActorFuture<A, Output = T> + Unpin,
{
    type Output = Result<T, Panicked>;

    fn poll(
        self: Pin<&mut Self>,
        act: &mut A,
        ctx: &mut Context<A>,
        task: &mut TaskContext<'_>,
    ) -> Poll<Self::Output> {
        let this = self.get_mut();
        let polled = catch_unwind(AssertUnwindSafe(|| {
            Pin::new(&mut this.inner).poll(act, ctx, task)
        }));
        match polled {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => {
                tracing::error!(stage = A::NAME, panic = %message(&*panic), "stage panicked; restarting it");
                ctx.stop();
                Poll::Ready(Err(Panicked(A::NAME)))
            }
        }
    }
}

/// An answer on its way apart from the actor (see [`Reply::Detached`]).
pub type Later<T> = Pin<Box<dyn Future<Output = T>>>;

/// Runs a handler's body that answers with an actor future, both guarded:
/// a panic in either is answered as [`Panicked`] and restarts the stage.
/// The future runs beside the mailbox; see [`atomic`] for one the mailbox
/// waits for.
pub fn act_future<A, T, E>(
    act: &mut A,
    ctx: &mut Context<A>,
    body: impl FnOnce(&mut A, &mut Context<A>) -> ResponseActFuture<A, Result<T, E>>,
) -> Reply<A, Result<T, E>>
where
    A: Restartable,
    T: 'static,
    E: From<Panicked> + 'static,
{
    guarded_future(act, ctx, body).map_or_else(|e| Reply::Now(Err(e)), Reply::Spawn)
}

/// [`act_future`] for a future the mailbox waits for, as actix's
/// `AtomicResponse`.
pub fn atomic<A, T, E>(
    act: &mut A,
    ctx: &mut Context<A>,
    body: impl FnOnce(&mut A, &mut Context<A>) -> ResponseActFuture<A, Result<T, E>>,
) -> Reply<A, Result<T, E>>
where
    A: Restartable,
    T: 'static,
    E: From<Panicked> + 'static,
{
    guarded_future(act, ctx, body).map_or_else(|e| Reply::Now(Err(e)), Reply::Wait)
}

/// Runs a handler's body, guarded, that answers with a future apart from
/// the actor ([`Reply::Detached`]).
pub fn detached<A, T, E>(
    act: &mut A,
    ctx: &mut Context<A>,
    body: impl FnOnce(&mut A, &mut Context<A>) -> Later<Result<T, E>>,
) -> Reply<A, Result<T, E>>
where
    A: Restartable,
    E: From<Panicked>,
{
    guard(act, ctx, body).map_or_else(|p| Reply::Now(Err(p.into())), Reply::Detached)
}

/// [`atomic`] for a change whose answer waits for something apart from
/// the actor (its write to storage): the mailbox waits while the body's
/// future changes the state, and goes on while the answer it hands on
/// ([`Reply::Staged`]) waits. A stage whose writes are grouped needs it
/// where a change first asks another stage something: were the mailbox
/// held until the write landed, the write of the group before it, which
/// the actor must see landed before it starts the next, would never be
/// seen.
pub fn staged<A, T, E>(
    act: &mut A,
    ctx: &mut Context<A>,
    body: impl FnOnce(&mut A, &mut Context<A>) -> ResponseActFuture<A, Later<Result<T, E>>>,
) -> Reply<A, Result<T, E>>
where
    A: Restartable,
    T: 'static,
    E: From<Panicked> + 'static,
{
    match guard(act, ctx, body) {
        Ok(future) => Reply::Staged(Box::pin(Guarded::new(future).map(|outcome, _, _| {
            outcome.unwrap_or_else(|p| Box::pin(std::future::ready(Err(p.into()))))
        }))),
        Err(p) => Reply::Now(Err(p.into())),
    }
}

/// The body's future, both guarded, or the error of a body that panicked.
#[allow(clippy::type_complexity)]
fn guarded_future<A, T, E>(
    act: &mut A,
    ctx: &mut Context<A>,
    body: impl FnOnce(&mut A, &mut Context<A>) -> ResponseActFuture<A, Result<T, E>>,
) -> Result<ResponseActFuture<A, Result<T, E>>, E>
where
    A: Restartable,
    T: 'static,
    E: From<Panicked> + 'static,
{
    guard(act, ctx, body).map(flatten).map_err(E::from)
}

fn flatten<A, T, E>(
    future: ResponseActFuture<A, Result<T, E>>,
) -> ResponseActFuture<A, Result<T, E>>
where
    A: Restartable,
    T: 'static,
    E: From<Panicked> + 'static,
{
    Box::pin(Guarded::new(future).map(|outcome, _, _| outcome.unwrap_or_else(|p| Err(p.into()))))
}

/// A guarded handler's answer. A stage that stopped to be restarted polls
/// none of its futures again, so the answer to the request that met the
/// panic must go out at once ([`Reply::Now`]), not as a future.
pub enum Reply<A: Actor, T> {
    /// Answered now.
    Now(T),
    /// Answered by a future the mailbox waits for.
    Wait(ResponseActFuture<A, T>),
    /// Answered by a future that runs beside the mailbox.
    Spawn(ResponseActFuture<A, T>),
    /// Answered by a future that runs on the arbiter, apart from the actor:
    /// it answers even if the actor restarts meanwhile (a write already
    /// handed on lands either way, and its asker hears how it went).
    Detached(Later<T>),
    /// Answered in two steps: a future the mailbox waits for, then the one
    /// it hands on, apart from the actor as [`Reply::Detached`]
    /// ([`staged`]).
    Staged(ResponseActFuture<A, Later<T>>),
}

impl<A, M, T> MessageResponse<A, M> for Reply<A, T>
where
    A: Actor<Context = Context<A>>,
    M: Message<Result = T>,
    T: 'static,
{
    fn handle(self, ctx: &mut Context<A>, tx: Option<OneshotSender<T>>) {
        let send = move |value: T| {
            if let Some(tx) = tx {
                let _ = tx.send(value);
            }
        };
        match self {
            Self::Now(value) => send(value),
            Self::Wait(future) => {
                ctx.wait(future.map(move |value, _, _| send(value)));
            }
            Self::Spawn(future) => {
                ctx.spawn(future.map(move |value, _, _| send(value)));
            }
            Self::Detached(future) => {
                actix::spawn(async move { send(future.await) });
            }
            Self::Staged(future) => {
                ctx.wait(future.map(move |later, _, _| {
                    actix::spawn(async move { send(later.await) });
                }));
            }
        }
    }
}

/// The answer of a handler whose message cannot fail: its value, or, after
/// a panic, no answer at all, so that the asker's `send` fails with
/// `MailboxError::Closed` (a typed error, not a hang).
#[derive(Debug)]
pub struct Answer<T>(Result<T, Panicked>);

impl<T> From<Result<T, Panicked>> for Answer<T> {
    fn from(outcome: Result<T, Panicked>) -> Self {
        Self(outcome)
    }
}

impl<A, M, T> MessageResponse<A, M> for Answer<T>
where
    A: Actor,
    M: Message<Result = T>,
    T: 'static,
{
    fn handle(self, _: &mut A::Context, tx: Option<OneshotSender<T>>) {
        if let (Ok(value), Some(tx)) = (self.0, tx) {
            let _ = tx.send(value);
        }
    }
}

/// The text of a panic's payload.
pub fn message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}
