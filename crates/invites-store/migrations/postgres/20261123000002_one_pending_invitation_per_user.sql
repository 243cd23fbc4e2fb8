-- At most one pending invitation per user and scope: creating another one updates the first.
-- Two partial indexes because NULL project ids never collide in a unique index.
CREATE UNIQUE INDEX invitations_pending_org_user
    ON invitations (org_id, username) WHERE project_id IS NULL AND status = 'PENDING';
CREATE UNIQUE INDEX invitations_pending_project_user
    ON invitations (project_id, username) WHERE project_id IS NOT NULL AND status = 'PENDING';
