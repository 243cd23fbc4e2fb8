-- The server caches credentials, roles and tenants in memory. Every change to the tables they are
-- read from bumps this one counter, which each server process polls; a process that sees it move
-- drops its caches. Issuing an access token (an INSERT into access_tokens) changes nothing cached,
-- so only its updates and deletes (revocation, purge) count.
CREATE TABLE auth_epoch (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    epoch  BIGINT NOT NULL
);
INSERT INTO auth_epoch (id, epoch) VALUES (1, 0);
CREATE TRIGGER auth_epoch_principals_insert AFTER INSERT ON principals
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_principals_update AFTER UPDATE ON principals
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_principals_delete AFTER DELETE ON principals
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_orgs_insert AFTER INSERT ON orgs
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_orgs_update AFTER UPDATE ON orgs
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_orgs_delete AFTER DELETE ON orgs
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_projects_insert AFTER INSERT ON projects
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_projects_update AFTER UPDATE ON projects
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_projects_delete AFTER DELETE ON projects
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_users_insert AFTER INSERT ON users
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_users_update AFTER UPDATE ON users
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_users_delete AFTER DELETE ON users
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_org_roles_insert AFTER INSERT ON org_roles
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_org_roles_update AFTER UPDATE ON org_roles
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_org_roles_delete AFTER DELETE ON org_roles
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_project_roles_insert AFTER INSERT ON project_roles
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_project_roles_update AFTER UPDATE ON project_roles
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_project_roles_delete AFTER DELETE ON project_roles
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_api_keys_insert AFTER INSERT ON api_keys
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_api_keys_update AFTER UPDATE ON api_keys
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_api_keys_delete AFTER DELETE ON api_keys
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_api_key_access_list_insert AFTER INSERT ON api_key_access_list
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_api_key_access_list_update AFTER UPDATE ON api_key_access_list
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_api_key_access_list_delete AFTER DELETE ON api_key_access_list
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_service_accounts_insert AFTER INSERT ON service_accounts
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_service_accounts_update AFTER UPDATE ON service_accounts
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_service_accounts_delete AFTER DELETE ON service_accounts
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_access_tokens_update AFTER UPDATE ON access_tokens
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_access_tokens_delete AFTER DELETE ON access_tokens
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_community_groups_insert AFTER INSERT ON community_groups
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_community_groups_update AFTER UPDATE ON community_groups
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_community_groups_delete AFTER DELETE ON community_groups
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_courses_insert AFTER INSERT ON courses
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_courses_update AFTER UPDATE ON courses
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_courses_delete AFTER DELETE ON courses
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_community_group_members_insert AFTER INSERT ON community_group_members
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_community_group_members_update AFTER UPDATE ON community_group_members
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_community_group_members_delete AFTER DELETE ON community_group_members
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_course_members_insert AFTER INSERT ON course_members
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_course_members_update AFTER UPDATE ON course_members
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER auth_epoch_course_members_delete AFTER DELETE ON course_members
BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
