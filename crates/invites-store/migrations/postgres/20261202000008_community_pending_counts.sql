-- A community list page costs what the page holds, not what the target holds before it.
--
-- The pending invitations of a group or course in invitation order come from a partial index on
-- (target, id). How many a target has, and how many fall in each run of 256 consecutive
-- invitation ids (a "chunk": id >> 8), are kept by triggers in the same transaction as every write
-- (the service's, replicas', fixture loads', plain SQL), so a page at offset k sums at most
-- k / 256 + 1 chunk rows to find the chunk where it starts and then skips fewer than 256 rows of
-- the index, instead of counting every pending invitation and skipping k of them.
-- kind: 0 for a group, 1 for a course (the column of community_invitations that is not NULL).
-- Once per statement (the SQLite twin: once per row), the totals row first and then the chunks in
-- ascending order, so that two statements lock count rows in the same order.
CREATE INDEX community_invitations_group_pending
    ON community_invitations (group_id, id) WHERE status = 'PENDING' AND group_id IS NOT NULL;
CREATE INDEX community_invitations_course_pending
    ON community_invitations (course_id, id) WHERE status = 'PENDING' AND course_id IS NOT NULL;
CREATE TABLE community_pending_totals (
    kind       SMALLINT NOT NULL,
    target_id  BIGINT NOT NULL,
    pending    BIGINT NOT NULL,
    PRIMARY KEY (kind, target_id)
);
CREATE TABLE community_pending_chunks (
    kind       SMALLINT NOT NULL,
    target_id  BIGINT NOT NULL,
    chunk      BIGINT NOT NULL,
    pending    BIGINT NOT NULL,
    PRIMARY KEY (kind, target_id, chunk)
);
INSERT INTO community_pending_totals (kind, target_id, pending)
    SELECT CASE WHEN group_id IS NULL THEN 1 ELSE 0 END, COALESCE(group_id, course_id), COUNT(*)
    FROM community_invitations WHERE status = 'PENDING' GROUP BY 1, 2;
INSERT INTO community_pending_chunks (kind, target_id, chunk, pending)
    SELECT CASE WHEN group_id IS NULL THEN 1 ELSE 0 END, COALESCE(group_id, course_id), id >> 8,
           COUNT(*)
    FROM community_invitations WHERE status = 'PENDING' GROUP BY 1, 2, 3;
-- The statement's changes to the counts: +1 per pending row it made, -1 per pending row it
-- removed (deleted, or no longer pending), summed per (kind, target, chunk). Sums of 0 (an UPDATE
-- that left the status alone) write nothing. The branches differ only in the transition tables
-- they read: a statement has only those of its operation.
CREATE TYPE community_pending_delta AS (kind SMALLINT, target_id BIGINT, chunk BIGINT, delta BIGINT);
CREATE FUNCTION count_community_pending() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    deltas community_pending_delta[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        deltas := ARRAY(SELECT ROW(CASE WHEN group_id IS NULL THEN 1 ELSE 0 END,
                COALESCE(group_id, course_id), id >> 8, 1)::community_pending_delta
            FROM new_rows WHERE status = 'PENDING');
    ELSIF TG_OP = 'DELETE' THEN
        deltas := ARRAY(SELECT ROW(CASE WHEN group_id IS NULL THEN 1 ELSE 0 END,
                COALESCE(group_id, course_id), id >> 8, -1)::community_pending_delta
            FROM old_rows WHERE status = 'PENDING');
    ELSE
        deltas := ARRAY(SELECT ROW(CASE WHEN group_id IS NULL THEN 1 ELSE 0 END,
                COALESCE(group_id, course_id), id >> 8, 1)::community_pending_delta
            FROM new_rows WHERE status = 'PENDING'
            UNION ALL SELECT ROW(CASE WHEN group_id IS NULL THEN 1 ELSE 0 END,
                COALESCE(group_id, course_id), id >> 8, -1)::community_pending_delta
            FROM old_rows WHERE status = 'PENDING');
    END IF;
    INSERT INTO community_pending_totals (kind, target_id, pending)
        SELECT kind, target_id, SUM(delta) FROM unnest(deltas)
        GROUP BY kind, target_id HAVING SUM(delta) <> 0 ORDER BY kind, target_id
        ON CONFLICT (kind, target_id)
        DO UPDATE SET pending = community_pending_totals.pending + EXCLUDED.pending;
    INSERT INTO community_pending_chunks (kind, target_id, chunk, pending)
        SELECT kind, target_id, chunk, SUM(delta) FROM unnest(deltas)
        GROUP BY kind, target_id, chunk HAVING SUM(delta) <> 0 ORDER BY kind, target_id, chunk
        ON CONFLICT (kind, target_id, chunk)
        DO UPDATE SET pending = community_pending_chunks.pending + EXCLUDED.pending;
    RETURN NULL;
END;
$$;
CREATE TRIGGER community_pending_insert AFTER INSERT ON community_invitations
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_community_pending();
CREATE TRIGGER community_pending_update AFTER UPDATE ON community_invitations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_community_pending();
CREATE TRIGGER community_pending_delete AFTER DELETE ON community_invitations
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_community_pending();
