-- A version per invitation scope (a project's id for project invitations, the organization's id
-- for organization invitations) that moves with every change to the invitations in it, written
-- by the same transaction. The server keeps the lists it has answered, serialised, and serves one
-- again only while its scope's version is the one it was read at (see invites-api's list_cache).
-- Triggers rather than application code, so every writer moves it: replicas, fixture loads, SQL.
-- Organizations and projects are never renamed by the service; a change that renames them must
-- move the versions of their scopes too (names appear in the lists).
CREATE TABLE invitation_versions (
    scope_id  TEXT PRIMARY KEY,
    version   BIGINT NOT NULL
);
CREATE TRIGGER invitation_versions_insert AFTER INSERT ON invitations
BEGIN
    INSERT INTO invitation_versions (scope_id, version)
        VALUES (COALESCE(NEW.project_id, NEW.org_id), 1)
        ON CONFLICT (scope_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER invitation_versions_update AFTER UPDATE ON invitations
BEGIN
    INSERT INTO invitation_versions (scope_id, version)
        VALUES (COALESCE(NEW.project_id, NEW.org_id), 1)
        ON CONFLICT (scope_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER invitation_versions_update_moved AFTER UPDATE ON invitations
    WHEN COALESCE(OLD.project_id, OLD.org_id) IS NOT COALESCE(NEW.project_id, NEW.org_id)
BEGIN
    INSERT INTO invitation_versions (scope_id, version)
        VALUES (COALESCE(OLD.project_id, OLD.org_id), 1)
        ON CONFLICT (scope_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER invitation_versions_delete AFTER DELETE ON invitations
BEGIN
    INSERT INTO invitation_versions (scope_id, version)
        VALUES (COALESCE(OLD.project_id, OLD.org_id), 1)
        ON CONFLICT (scope_id) DO UPDATE SET version = version + 1;
END;
