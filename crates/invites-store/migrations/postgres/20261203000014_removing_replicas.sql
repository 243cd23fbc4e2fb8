-- The replicas removing invitations, and when each last did, per removal queue (`removals`:
-- Atlas and Ops Manager; `bulk_removals`: community bulk removals), so that each replica knows
-- how many share the removals and takes its share of the batches in flight (invites-store's
-- postgres::removing_replicas). A replica writes its row every 100 ms while it removes, nothing
-- while it does not; rows not written for an hour are deleted by any replica. SQLite has no such
-- table: one process serves an SQLite database.
CREATE TABLE removing_replicas (
    replica           TEXT PRIMARY KEY,
    removals_at       TIMESTAMPTZ,
    bulk_removals_at  TIMESTAMPTZ
);
