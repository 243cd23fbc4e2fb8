//! Benchmark bounds: `cargo xtask bench server` builds a separate binary with the `bench-bounds`
//! feature, which no served build has, to measure how fast a removal could be if parts of it cost
//! nothing. The module compiles in every build (so its tests run with the others); only the hooks
//! that consult it, in the removal queue, the backend and `invites serve`, are behind the feature.
//!
//! `INVITES_BENCH_BOUND=authorized` answers a removal as soon as it is authorized (the store is
//! never asked); `INVITES_BENCH_BOUND=queued` sends it through the removal queue and the writer
//! thread's transaction as usual, but the writer executes no SQL for it. Either way nothing is
//! removed or audited: the figures bound what the real removal can reach.
//! `INVITES_BENCH_BOUND=uncounted` is of another kind: community writes on SQLite keep no page
//! counts (migration 8), so that a community bulk removal does what it did before list pages
//! scaled (migration 10 dropped the indexes migration 8 had added), for comparison in the same
//! run.

use std::sync::OnceLock;

/// Which part of a removal is skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// Answered once authorized; the store is never asked.
    Authorized,
    /// Queued and batched into a writer transaction that executes nothing.
    Queued,
    /// Community writes on SQLite keep no page counts.
    Uncounted,
}

impl Bound {
    /// What it changes, for the server's warning at start-up.
    pub fn effect(self) -> &'static str {
        match self {
            Bound::Authorized | Bound::Queued => "removals remove nothing",
            Bound::Uncounted => "community writes keep no page counts",
        }
    }

    /// Reads a bound's name as `INVITES_BENCH_BOUND` gives it.
    pub fn parse(name: &str) -> Option<Bound> {
        match name {
            "authorized" => Some(Bound::Authorized),
            "queued" => Some(Bound::Queued),
            "uncounted" => Some(Bound::Uncounted),
            _ => None,
        }
    }
}

/// The bound in force, read from `INVITES_BENCH_BOUND` once; `Err` names a value that is not a
/// bound (the server refuses to start on it, see [`check`]).
fn read() -> &'static Result<Option<Bound>, String> {
    static BOUND: OnceLock<Result<Option<Bound>, String>> = OnceLock::new();
    BOUND.get_or_init(|| match std::env::var("INVITES_BENCH_BOUND") {
        Err(_) => Ok(None),
        Ok(name) => Bound::parse(&name).map(Some).ok_or(name),
    })
}

/// The bound in force, if any.
pub fn current() -> Option<Bound> {
    read().clone().unwrap_or(None)
}

/// Called at start-up: the bound in force, or why `INVITES_BENCH_BOUND` is not one.
pub fn check() -> Result<Option<Bound>, String> {
    read().clone().map_err(|name| {
        format!("INVITES_BENCH_BOUND={name:?} is not a bound: use \"authorized\", \"queued\" or \"uncounted\"")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_names_parse_and_nothing_else_does() {
        assert_eq!(Bound::parse("authorized"), Some(Bound::Authorized));
        assert_eq!(Bound::parse("queued"), Some(Bound::Queued));
        assert_eq!(Bound::parse("uncounted"), Some(Bound::Uncounted));
        assert_eq!(Bound::parse(""), None);
        assert_eq!(Bound::parse("Queued"), None);
    }
}
