-- The admin token a server generated for itself on its first start on a non-loopback address
-- (or that `streamhub admin-token --rotate` set): one row at most. Kept as written, not hashed,
-- so that `streamhub admin-token` can show it again; whoever can read this file can read the
-- sessions and chat it guards anyway.
CREATE TABLE admin_token (
    id         INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    token      TEXT NOT NULL,
    created_at INTEGER NOT NULL            -- ms since the Unix epoch
);
