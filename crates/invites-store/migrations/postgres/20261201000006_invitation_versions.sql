-- A version per invitation scope (a project's id for project invitations, the organization's id
-- for organization invitations) that moves with every change to the invitations in it, written
-- by the same transaction. The server keeps the lists it has answered, serialised, and serves one
-- again only while its scope's version is the one it was read at (see invites-api's list_cache).
-- Triggers rather than application code, so every writer moves it: replicas, fixture loads, SQL.
-- Organizations and projects are never renamed by the service; a change that renames them must
-- move the versions of their scopes too (names appear in the lists).
-- Once per statement (the SQLite twin: once per row), scopes in ascending order, so that two
-- statements lock version rows in the same order.
CREATE TABLE invitation_versions (
    scope_id  TEXT PRIMARY KEY,
    version   BIGINT NOT NULL
);
CREATE FUNCTION bump_invitation_versions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO invitation_versions (scope_id, version)
            SELECT DISTINCT COALESCE(project_id, org_id), 1 FROM new_rows ORDER BY 1
            ON CONFLICT (scope_id) DO UPDATE SET version = invitation_versions.version + 1;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO invitation_versions (scope_id, version)
            SELECT scope, 1 FROM (
                SELECT COALESCE(project_id, org_id) AS scope FROM new_rows
                UNION SELECT COALESCE(project_id, org_id) FROM old_rows
            ) AS scopes ORDER BY 1
            ON CONFLICT (scope_id) DO UPDATE SET version = invitation_versions.version + 1;
    ELSE
        INSERT INTO invitation_versions (scope_id, version)
            SELECT DISTINCT COALESCE(project_id, org_id), 1 FROM old_rows ORDER BY 1
            ON CONFLICT (scope_id) DO UPDATE SET version = invitation_versions.version + 1;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER invitation_versions_insert AFTER INSERT ON invitations
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION bump_invitation_versions();
CREATE TRIGGER invitation_versions_update AFTER UPDATE ON invitations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION bump_invitation_versions();
CREATE TRIGGER invitation_versions_delete AFTER DELETE ON invitations
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION bump_invitation_versions();
