-- A scope's version (migration 6) split over 16 rows, so that writes to one scope stop waiting for
-- each other until their commits are on disk.
--
-- With one row per scope, every write to a scope updated that row and held its lock until its
-- transaction ended, which with synchronous_commit=on is after its commit record is flushed:
-- writes to one organization committed one after the other, one log flush each, however many
-- connections and replicas sent them (docs/benchmarks.md, "Writes to one scope and to many").
-- Now each transaction adds its 1 to the row of its slot (its transaction id modulo 16), so
-- concurrent writes to a scope lock different rows and share log flushes (group commit).
--
-- The version is the sum of the scope's rows. It still identifies what a reader sees: every
-- committed write adds 1 to it, and the writes visible to a snapshot only grow from one snapshot
-- to the next, so two reads that sum the same have seen the same writes to the scope (the list
-- cache's rule, invites-api's list_cache, is unchanged). Within a statement the rows are still
-- locked in ascending scope order, and one transaction uses one slot.
ALTER TABLE invitation_versions ADD COLUMN slot SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE invitation_versions DROP CONSTRAINT invitation_versions_pkey;
ALTER TABLE invitation_versions ADD PRIMARY KEY (scope_id, slot);
ALTER TABLE invitation_versions ALTER COLUMN slot DROP DEFAULT;
CREATE OR REPLACE FUNCTION bump_invitation_versions() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    my_slot SMALLINT := (txid_current() % 16)::SMALLINT;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO invitation_versions (scope_id, slot, version)
            SELECT DISTINCT COALESCE(project_id, org_id), my_slot, 1 FROM new_rows ORDER BY 1
            ON CONFLICT (scope_id, slot) DO UPDATE SET version = invitation_versions.version + 1;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO invitation_versions (scope_id, slot, version)
            SELECT scope, my_slot, 1 FROM (
                SELECT COALESCE(project_id, org_id) AS scope FROM new_rows
                UNION SELECT COALESCE(project_id, org_id) FROM old_rows
            ) AS scopes ORDER BY 1
            ON CONFLICT (scope_id, slot) DO UPDATE SET version = invitation_versions.version + 1;
    ELSE
        INSERT INTO invitation_versions (scope_id, slot, version)
            SELECT DISTINCT COALESCE(project_id, org_id), my_slot, 1 FROM old_rows ORDER BY 1
            ON CONFLICT (scope_id, slot) DO UPDATE SET version = invitation_versions.version + 1;
    END IF;
    RETURN NULL;
END;
$$;
