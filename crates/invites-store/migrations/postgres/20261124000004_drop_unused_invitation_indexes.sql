-- invitations_org and invitations_project serve no query: listing and lookups by username use the
-- partial unique indexes of pending invitations (migration 20261123000002) and lookups by id
-- the primary key. Every removal and creation paid for them in two more index pages written.
-- No operation deletes organizations or projects; one that does will want an index on
-- invitations (org_id) and (project_id) for the cascade.
DROP INDEX invitations_org;
DROP INDEX invitations_project;
