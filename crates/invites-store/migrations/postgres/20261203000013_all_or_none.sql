-- all_or_none(changed, listed): true when a statement changed as many rows as it was given;
-- otherwise it raises SQLSTATE IV001, which aborts the statement and so undoes what it changed.
--
-- A community bulk removal removes every listed user's pending invitation or none. Its statement
-- locked the listed invitations (SELECT ... FOR UPDATE) and then deleted them only if they were
-- as many as listed: two passes over the same rows and index entries, each lock a log record,
-- most of the statement's time in benchmark (d). Now the DELETE removes what it finds and the
-- statement ends by calling this with how many it removed; when they are fewer, the statement
-- is undone and the store reads which users had no pending invitation, on that path only
-- (invites-store's postgres::community).
CREATE FUNCTION all_or_none(changed BIGINT, listed BIGINT) RETURNS BOOLEAN
LANGUAGE plpgsql AS $$
BEGIN
    IF changed <> listed THEN
        RAISE EXCEPTION 'changed % of the % rows listed', changed, listed
            USING ERRCODE = 'IV001';
    END IF;
    RETURN TRUE;
END;
$$;
