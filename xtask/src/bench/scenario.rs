//! The scenarios of `cargo xtask bench server`: what `invites-bench load --scenario` calls
//! each, its title and letter in the report, the status every answer must have, and which
//! carry the targets of issues 8 and 18. (h) runs on PostgreSQL only, beside (g): the same creates
//! spread over many scopes instead of one.

/// One load of `cargo xtask bench server`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// (a) the bare poem route: the ceiling the others are compared with.
    Ceiling,
    /// (b) `deleteOrgInvite` with Digest.
    Digest,
    /// (c) `deleteOrgInvite` with a service account's Bearer token.
    Bearer,
    /// (d) a community bulk removal of 10 users.
    Bulk,
    /// (e) `listOrgInvites` of 1,000 invitations.
    List,
    /// (f) `updateOrgInviteById`, beyond the five.
    Update,
    /// (g) `createOrgInvite`, beyond the five; runs last (it grows the table).
    Create,
    /// (h) `createOrgInvite` spread over 32 organizations, one per connection (PostgreSQL only:
    /// (g) and (h) measure the lock on a scope's version row).
    CreateSpread,
    /// (i) a community list page of 20 at offset 0 of a group with 1,000,000 pending invitations.
    PageFirst,
    /// (j) the same at offset 10,000.
    PageDeep,
}

impl Scenario {
    /// Every scenario, in the report's order (their letters are a to j).
    #[cfg(test)]
    pub const ALL: [Scenario; 10] = [
        Scenario::Ceiling,
        Scenario::Digest,
        Scenario::Bearer,
        Scenario::Bulk,
        Scenario::List,
        Scenario::Update,
        Scenario::Create,
        Scenario::CreateSpread,
        Scenario::PageFirst,
        Scenario::PageDeep,
    ];

    /// What `--database postgres` measures besides the ceiling: all but the pages, which need
    /// SQLite's 1M-row table.
    pub const ON_POSTGRES: [Scenario; 7] = [
        Scenario::Digest,
        Scenario::Bearer,
        Scenario::Bulk,
        Scenario::List,
        Scenario::Update,
        Scenario::Create,
        Scenario::CreateSpread,
    ];

    /// The list pages of issue 18, with the offset each asks for.
    pub const PAGES: [(Scenario, u64); 2] =
        [(Scenario::PageFirst, 0), (Scenario::PageDeep, 10_000)];

    /// The scenarios issue 8 sets targets for, besides the ceiling.
    pub const TARGETED: [Scenario; 4] = [
        Scenario::Digest,
        Scenario::Bearer,
        Scenario::Bulk,
        Scenario::List,
    ];

    /// What `invites-bench load --scenario` calls its load ((h) is (g)'s load given several
    /// organizations).
    pub fn load_name(self) -> &'static str {
        match self {
            Scenario::CreateSpread => Scenario::Create.name(),
            other => other.name(),
        }
    }

    /// Its name in the report and the replay file.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Ceiling => "ceiling",
            Scenario::Digest => "digest",
            Scenario::Bearer => "bearer",
            Scenario::Bulk => "bulk",
            Scenario::List => "list",
            Scenario::Update => "update",
            Scenario::Create => "create",
            Scenario::CreateSpread => "create-spread",
            Scenario::PageFirst | Scenario::PageDeep => "page",
        }
    }

    /// Its title in the report, starting with its letter.
    pub fn title(self) -> &'static str {
        match self {
            Scenario::Ceiling => "(a) bare poem route, 204",
            Scenario::Digest => "(b) deleteOrgInvite, Digest",
            Scenario::Bearer => "(c) deleteOrgInvite, Bearer",
            Scenario::Bulk => "(d) community bulk DELETE, 10 users",
            Scenario::List => "(e) listOrgInvites, 1,000 invitations",
            Scenario::Update => "(f) updateOrgInvite, Bearer",
            Scenario::Create => "(g) createOrgInvite, Bearer",
            Scenario::CreateSpread => "(h) createOrgInvite, Bearer, 32 organizations",
            Scenario::PageFirst => "(i) community list page at offset 0, 1M pending",
            Scenario::PageDeep => "(j) community list page at offset 10,000, 1M pending",
        }
    }

    /// Its letter in the report.
    pub fn letter(self) -> char {
        self.title().chars().nth(1).unwrap_or('?')
    }

    /// The status every answer must have: a run with any other answer measured nothing.
    pub fn success(self) -> u16 {
        match self {
            Scenario::Ceiling | Scenario::Digest | Scenario::Bearer | Scenario::Bulk => 204,
            Scenario::List
            | Scenario::Update
            | Scenario::Create
            | Scenario::CreateSpread
            | Scenario::PageFirst
            | Scenario::PageDeep => 200,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_measures_all_but_the_ceiling_and_the_pages() {
        let pages: Vec<Scenario> = Scenario::PAGES.iter().map(|&(s, _)| s).collect();
        let rest: Vec<Scenario> = Scenario::ALL
            .into_iter()
            .filter(|s| *s != Scenario::Ceiling && !pages.contains(s))
            .collect();
        assert_eq!(rest, Scenario::ON_POSTGRES);
    }

    #[test]
    fn letters_run_a_to_g_in_order_and_titles_start_with_them() {
        let letters: String = Scenario::ALL.iter().map(|s| s.letter()).collect();
        assert_eq!(letters, "abcdefghij");
        assert_eq!(
            Scenario::Bulk.title(),
            "(d) community bulk DELETE, 10 users"
        );
    }

    #[test]
    fn names_are_distinct_but_for_the_two_pages() {
        let mut names: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(Scenario::PageFirst.name(), Scenario::PageDeep.name());
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Scenario::ALL.len() - 1);
    }
}
