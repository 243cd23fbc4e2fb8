-- A community list page costs what the page holds, not what the target holds before it.
--
-- The pending invitations of a group or course in invitation order come from a partial index on
-- (target, id). How many a target has, and how many fall in each run of 256 consecutive
-- invitation ids (a "chunk": id >> 8), are kept in the same transaction as every write, so a page
-- at offset k sums at most k / 256 + 1 chunk rows to find the chunk where it starts and then skips
-- fewer than 256 rows of the index, instead of counting every pending invitation and skipping k.
--
-- Unlike PostgreSQL's twin, no triggers: SQLite fires them per row, and per-row triggers cost a
-- bulk removal about 70% more writer CPU (measured: 10 removals with their audit rows, 108 us
-- without, 187 us with, 179 us even with a WHEN that skips them). The store's writes add their
-- changes per statement instead (invites-store's community module), and SQL run as a script
-- (`invites admin load-fixtures`) is followed by a recount. Other SQL that changes pending
-- invitations must be run as a script too.
-- kind: 0 for a group, 1 for a course (the column of community_invitations that is not NULL).
CREATE INDEX community_invitations_group_pending
    ON community_invitations (group_id, id) WHERE status = 'PENDING' AND group_id IS NOT NULL;
CREATE INDEX community_invitations_course_pending
    ON community_invitations (course_id, id) WHERE status = 'PENDING' AND course_id IS NOT NULL;
CREATE TABLE community_pending_totals (
    kind       SMALLINT NOT NULL,
    target_id  BIGINT NOT NULL,
    pending    BIGINT NOT NULL,
    PRIMARY KEY (kind, target_id)
) WITHOUT ROWID;
CREATE TABLE community_pending_chunks (
    kind       SMALLINT NOT NULL,
    target_id  BIGINT NOT NULL,
    chunk      BIGINT NOT NULL,
    pending    BIGINT NOT NULL,
    PRIMARY KEY (kind, target_id, chunk)
) WITHOUT ROWID;
INSERT INTO community_pending_totals (kind, target_id, pending)
    SELECT group_id IS NULL, COALESCE(group_id, course_id), COUNT(*)
    FROM community_invitations WHERE status = 'PENDING' GROUP BY 1, 2;
INSERT INTO community_pending_chunks (kind, target_id, chunk, pending)
    SELECT group_id IS NULL, COALESCE(group_id, course_id), id >> 8, COUNT(*)
    FROM community_invitations WHERE status = 'PENDING' GROUP BY 1, 2, 3;
