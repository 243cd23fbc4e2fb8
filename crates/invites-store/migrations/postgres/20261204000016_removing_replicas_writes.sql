-- When each replica last ran a batch of invitation creates and of invitation updates, beside its
-- removals and nonce counts, so that the write queues' batches in flight are the deployment's too,
-- shared like the others (invites-store's postgres::removing_replicas and
-- postgres::write_batches): two replicas each with a queue's two batches made batches of half
-- the size, and PostgreSQL spent 23% more CPU per create (docs/benchmarks.md, benchmark (g)).
-- Written and read as the other columns are. SQLite has no such table: one process serves an
-- SQLite database.
ALTER TABLE removing_replicas ADD COLUMN creates_at TIMESTAMPTZ;
ALTER TABLE removing_replicas ADD COLUMN updates_at TIMESTAMPTZ;
