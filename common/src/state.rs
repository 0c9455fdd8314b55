//! The state a service's handlers reach, as axum holds it: axum clones the state for every
//! request, more than once, so it is one `Arc` to the service's parts, and a clone is one atomic
//! increment whatever they hold (a cache handle, a pool and a dozen metrics handles cost tens of
//! atomic operations per clone and showed in the profile of a 10 KB download).

use std::{ops::Deref, sync::Arc};

use axum::extract::FromRef;

use crate::auth::TokenVerifier;

/// A service's parts `T` behind one `Arc`; derefs to `T`.
pub struct SharedState<T>(Arc<T>);

impl<T> SharedState<T> {
    /// The state of a service holding `parts`.
    pub fn new(parts: T) -> Self {
        Self(Arc::new(parts))
    }
}

impl<T> Clone for SharedState<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T> Deref for SharedState<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// Parts that hold the token verifier, which the shared `AuthUser` extractor asks for alone.
pub trait HoldsVerifier {
    fn verifier(&self) -> &Arc<TokenVerifier>;
}

impl<T: HoldsVerifier> FromRef<SharedState<T>> for Arc<TokenVerifier> {
    fn from_ref(state: &SharedState<T>) -> Self {
        Arc::clone(state.verifier())
    }
}
