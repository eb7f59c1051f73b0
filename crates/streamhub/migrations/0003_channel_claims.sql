-- Channel names a streamer claimed (issue 14): registering one as STREAMER needs its channel
-- token, of which only the SHA-256 (hex) is kept. `name` is the lower-cased username.
-- An operator releases a claim with: DELETE FROM channel_claims WHERE name = 'carol';
CREATE TABLE channel_claims (
    name TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL,
    claimed_at INTEGER NOT NULL
);
