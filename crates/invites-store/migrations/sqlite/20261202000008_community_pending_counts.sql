-- A community list page costs what the page holds, not what the target holds before it.
--
-- The pending invitations of a group or course in invitation order come from a partial index on
-- (target, id). How many a target has, and how many fall in each run of 256 consecutive
-- invitation ids (a "chunk": id >> 8), are kept by triggers in the same transaction as every write
-- (the service's, replicas', fixture loads', plain SQL), so a page at offset k sums at most
-- k / 256 + 1 chunk rows to find the chunk where it starts and then skips fewer than 256 rows of
-- the index, instead of counting every pending invitation and skipping k of them.
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
CREATE TRIGGER community_pending_insert AFTER INSERT ON community_invitations
    WHEN NEW.status = 'PENDING'
BEGIN
    INSERT INTO community_pending_totals (kind, target_id, pending)
        VALUES (NEW.group_id IS NULL, COALESCE(NEW.group_id, NEW.course_id), 1)
        ON CONFLICT (kind, target_id) DO UPDATE SET pending = pending + 1;
    INSERT INTO community_pending_chunks (kind, target_id, chunk, pending)
        VALUES (NEW.group_id IS NULL, COALESCE(NEW.group_id, NEW.course_id), NEW.id >> 8, 1)
        ON CONFLICT (kind, target_id, chunk) DO UPDATE SET pending = pending + 1;
END;
CREATE TRIGGER community_pending_delete AFTER DELETE ON community_invitations
    WHEN OLD.status = 'PENDING'
BEGIN
    UPDATE community_pending_totals SET pending = pending - 1
        WHERE kind = (OLD.group_id IS NULL) AND target_id = COALESCE(OLD.group_id, OLD.course_id);
    UPDATE community_pending_chunks SET pending = pending - 1
        WHERE kind = (OLD.group_id IS NULL) AND target_id = COALESCE(OLD.group_id, OLD.course_id)
          AND chunk = OLD.id >> 8;
END;
-- An invitation leaves the pending ones when it is accepted (the only status change the service
-- makes); the reverse is counted too, so that no UPDATE by hand can skew the counts. Targets and
-- ids of an invitation never change.
CREATE TRIGGER community_pending_accepted AFTER UPDATE OF status ON community_invitations
    WHEN OLD.status = 'PENDING' AND NEW.status <> 'PENDING'
BEGIN
    UPDATE community_pending_totals SET pending = pending - 1
        WHERE kind = (OLD.group_id IS NULL) AND target_id = COALESCE(OLD.group_id, OLD.course_id);
    UPDATE community_pending_chunks SET pending = pending - 1
        WHERE kind = (OLD.group_id IS NULL) AND target_id = COALESCE(OLD.group_id, OLD.course_id)
          AND chunk = OLD.id >> 8;
END;
CREATE TRIGGER community_pending_reopened AFTER UPDATE OF status ON community_invitations
    WHEN OLD.status <> 'PENDING' AND NEW.status = 'PENDING'
BEGIN
    INSERT INTO community_pending_totals (kind, target_id, pending)
        VALUES (NEW.group_id IS NULL, COALESCE(NEW.group_id, NEW.course_id), 1)
        ON CONFLICT (kind, target_id) DO UPDATE SET pending = pending + 1;
    INSERT INTO community_pending_chunks (kind, target_id, chunk, pending)
        VALUES (NEW.group_id IS NULL, COALESCE(NEW.group_id, NEW.course_id), NEW.id >> 8, 1)
        ON CONFLICT (kind, target_id, chunk) DO UPDATE SET pending = pending + 1;
END;
