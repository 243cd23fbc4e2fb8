-- The rate limit's and the failed-authentication lockout's counts of every replica, per minute
-- window (its start in milliseconds since the epoch), so that a limit holds for the deployment
-- rather than per replica. Each replica counts in memory and adds what it counted here in one
-- statement every 100 ms, then reads the rows changed since its last read (by `seq`, taken from
-- `limit_counts_seq` at each change). Rows of past windows are deleted as replicas go. SQLite has
-- no such table: one process serves an SQLite database, and its counts are the deployment's.
CREATE SEQUENCE limit_counts_seq;
CREATE TABLE limit_counts (
    kind          TEXT NOT NULL,
    subject       TEXT NOT NULL,
    window_start  BIGINT NOT NULL,
    count         BIGINT NOT NULL,
    seq           BIGINT NOT NULL,
    PRIMARY KEY (kind, subject, window_start)
);
CREATE INDEX limit_counts_changes ON limit_counts (window_start, seq);
