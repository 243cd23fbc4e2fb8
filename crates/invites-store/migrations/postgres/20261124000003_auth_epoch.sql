-- The server caches credentials, roles and tenants in memory. Every change to the tables they are
-- read from bumps this one counter, which each server process polls; a process that sees it move
-- drops its caches. Issuing an access token (an INSERT into access_tokens) changes nothing cached,
-- so only its updates and deletes (revocation, purge) count.
CREATE TABLE auth_epoch (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    epoch  BIGINT NOT NULL
);
INSERT INTO auth_epoch (id, epoch) VALUES (1, 0);
CREATE FUNCTION bump_auth_epoch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE auth_epoch SET epoch = epoch + 1;
    RETURN NULL;
END;
$$;
CREATE TRIGGER auth_epoch_principals AFTER INSERT OR UPDATE OR DELETE ON principals
    FOR EACH STATEMENT EXECUTE FUNCTION bump_auth_epoch();
CREATE TRIGGER auth_epoch_orgs AFTER INSERT OR UPDATE OR DELETE ON orgs
    FOR EACH STATEMENT EXECUTE FUNCTION bump_auth_epoch();
CREATE TRIGGER auth_epoch_projects AFTER INSERT OR UPDATE OR DELETE ON projects
    FOR EACH STATEMENT EXECUTE FUNCTION bump_auth_epoch();
CREATE TRIGGER auth_epoch_users AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION bump_auth_epoch();
CREATE TRIGGER auth_epoch_org_roles AFTER INSERT OR UPDATE OR DELETE ON org_roles
    FOR EACH STATEMENT EXECUTE FUNCTION bump_auth_epoch();
CREATE TRIGGER auth_epoch_project_roles AFTER INSERT OR UPDATE OR DELETE ON project_roles
    FOR EACH STATEMENT EXECUTE FUNCTION bump_auth_epoch();
CREATE TRIGGER auth_epoch_api_keys AFTER INSERT OR UPDATE OR DELETE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION bump_auth_epoch();
CREATE TRIGGER auth_epoch_api_key_access_list AFTER INSERT OR UPDATE OR DELETE ON api_key_access_list
    FOR EACH STATEMENT EXECUTE FUNCTION bump_auth_epoch();
CREATE TRIGGER auth_epoch_service_accounts AFTER INSERT OR UPDATE OR DELETE ON service_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION bump_auth_epoch();
CREATE TRIGGER auth_epoch_access_tokens AFTER UPDATE OR DELETE ON access_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION bump_auth_epoch();
CREATE TRIGGER auth_epoch_community_groups AFTER INSERT OR UPDATE OR DELETE ON community_groups
    FOR EACH STATEMENT EXECUTE FUNCTION bump_auth_epoch();
CREATE TRIGGER auth_epoch_courses AFTER INSERT OR UPDATE OR DELETE ON courses
    FOR EACH STATEMENT EXECUTE FUNCTION bump_auth_epoch();
CREATE TRIGGER auth_epoch_community_group_members AFTER INSERT OR UPDATE OR DELETE ON community_group_members
    FOR EACH STATEMENT EXECUTE FUNCTION bump_auth_epoch();
CREATE TRIGGER auth_epoch_course_members AFTER INSERT OR UPDATE OR DELETE ON course_members
    FOR EACH STATEMENT EXECUTE FUNCTION bump_auth_epoch();
