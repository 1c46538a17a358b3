//! The membership stage: the default actor is `murmur-membership`'s,
//! re-exported here.

pub use murmur_membership::*;
