-- When each replica last recorded Digest nonce counts, beside its removals, so that the
-- nonce-count queue's batches in flight are the deployment's too, shared like the removal
-- queues' (invites-store's postgres::removing_replicas): two replicas each with the queue's two
-- batches made single-record INSERTs, each paying a statement's fixed cost. Written and read as
-- the other two columns are. SQLite has no such table: one process serves an SQLite database.
ALTER TABLE removing_replicas ADD COLUMN nonce_counts_at TIMESTAMPTZ;
