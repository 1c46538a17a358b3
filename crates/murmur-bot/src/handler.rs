//! Async functions as handlers, whatever arguments they extract.

use std::{future::Future, pin::Pin};

use crate::{extract::FromContext, Context, HandlerResult};

type LocalFuture = Pin<Box<dyn Future<Output = HandlerResult>>>;

/// An async function whose arguments are all [`FromContext`]: implemented
/// for functions of up to five arguments.
pub trait Handler<Args>: 'static {
    /// Extracts the arguments and runs.
    fn call(&self, cx: Context) -> LocalFuture;
}

pub(crate) trait Erased {
    fn call(&self, cx: Context) -> LocalFuture;
}

struct Wrap<H, Args>(H, std::marker::PhantomData<fn(Args)>);

impl<H: Handler<Args>, Args: 'static> Erased for Wrap<H, Args> {
    fn call(&self, cx: Context) -> LocalFuture {
        self.0.call(cx)
    }
}

pub(crate) fn erase<H: Handler<Args>, Args: 'static>(h: H) -> Box<dyn Erased> {
    Box::new(Wrap(h, std::marker::PhantomData))
}

macro_rules! handler {
    ($($a:ident),*) => {
        impl<F, Fut, $($a,)*> Handler<($($a,)*)> for F
        where
            F: Fn($($a),*) -> Fut + 'static,
            Fut: Future<Output = HandlerResult> + 'static,
            $($a: FromContext + 'static,)*
        {
            #[allow(non_snake_case, unused_variables)]
            fn call(&self, cx: Context) -> LocalFuture {
                $(let $a = match $a::from_context(&cx) {
                    Ok(v) => v,
                    Err(e) => return Box::pin(async move { Err(e) }),
                };)*
                Box::pin((self)($($a),*))
            }
        }
    };
}

handler!();
handler!(A);
handler!(A, B);
handler!(A, B, C);
handler!(A, B, C, D);
handler!(A, B, C, D, E);
