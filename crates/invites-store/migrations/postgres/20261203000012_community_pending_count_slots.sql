-- The page counts of migration 8 split over 16 slots, as migration 11 split the invitation
-- versions, so that writes to one group or course stop waiting for each other's commits.
--
-- Every write to a target's pending invitations moved the target's one totals row (and the row of
-- the newest chunk, where new invitations land) and held its lock until its commit was on disk:
-- bulk removals from one group (benchmark scenario (d)) committed one after the other, one log
-- flush each. Now each transaction adds its changes to the rows of its slot (its transaction id
-- modulo 16). A target's total is the sum of its slots' rows; a chunk's count the sum of the
-- chunk's rows, read in (chunk, slot) order and summed as they stream (invites-store's
-- postgres::community), so a page still reads the chunks only as far as it needs. A slot's row can
-- go below zero (an invitation counted in one slot, removed in another); only the sums count.
ALTER TABLE community_pending_totals ADD COLUMN slot SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE community_pending_totals DROP CONSTRAINT community_pending_totals_pkey;
ALTER TABLE community_pending_totals ADD PRIMARY KEY (kind, target_id, slot);
ALTER TABLE community_pending_totals ALTER COLUMN slot DROP DEFAULT;
ALTER TABLE community_pending_chunks ADD COLUMN slot SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE community_pending_chunks DROP CONSTRAINT community_pending_chunks_pkey;
ALTER TABLE community_pending_chunks ADD PRIMARY KEY (kind, target_id, chunk, slot);
ALTER TABLE community_pending_chunks ALTER COLUMN slot DROP DEFAULT;
CREATE OR REPLACE FUNCTION count_community_pending() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    deltas community_pending_delta[];
    my_slot SMALLINT := (txid_current() % 16)::SMALLINT;
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
    INSERT INTO community_pending_totals (kind, target_id, slot, pending)
        SELECT kind, target_id, my_slot, SUM(delta) FROM unnest(deltas)
        GROUP BY kind, target_id HAVING SUM(delta) <> 0 ORDER BY kind, target_id
        ON CONFLICT (kind, target_id, slot)
        DO UPDATE SET pending = community_pending_totals.pending + EXCLUDED.pending;
    INSERT INTO community_pending_chunks (kind, target_id, chunk, slot, pending)
        SELECT kind, target_id, chunk, my_slot, SUM(delta) FROM unnest(deltas)
        GROUP BY kind, target_id, chunk HAVING SUM(delta) <> 0 ORDER BY kind, target_id, chunk
        ON CONFLICT (kind, target_id, chunk, slot)
        DO UPDATE SET pending = community_pending_chunks.pending + EXCLUDED.pending;
    RETURN NULL;
END;
$$;
