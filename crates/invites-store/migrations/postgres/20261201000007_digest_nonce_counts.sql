-- Digest nonce counts accepted by any replica, so that a request replayed to another replica than
-- the one that accepted it is refused too (each replica also remembers its own in memory). A row
-- is needed only while its nonce is valid: replicas delete expired rows as they go. SQLite has no
-- such table: one process serves an SQLite database, and its memory is the whole record.
CREATE TABLE digest_nonce_counts (
    nonce       TEXT NOT NULL,
    nc          BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (nonce, nc)
);
CREATE INDEX digest_nonce_counts_expiry ON digest_nonce_counts (expires_at);
