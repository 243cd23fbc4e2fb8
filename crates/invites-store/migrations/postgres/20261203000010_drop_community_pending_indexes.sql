-- A community list page reads its rows by primary key, run by run of the count chunks that hold
-- them (at most 256 ids each, see invites-store's `PagePlan`), so the partial indexes of pending
-- invitations on (target, id) that migration 8 added serve no query any more. They cost every
-- community write a B-tree entry more: bulk removals (benchmark scenario (d)) measured about a
-- quarter more writer CPU with them.
DROP INDEX community_invitations_group_pending;
DROP INDEX community_invitations_course_pending;
