-- One row per stream that went live. Written when it starts, completed when it ends.
CREATE TABLE sessions (
    stream_key   TEXT PRIMARY KEY NOT NULL,
    title        TEXT NOT NULL,
    streamer     TEXT NOT NULL,
    started_at   INTEGER NOT NULL,          -- ms since the Unix epoch
    ended_at     INTEGER,                   -- NULL while live
    end_reason   TEXT,                      -- ended | streamer_gone | server_shutdown | interrupted
    mode         TEXT NOT NULL DEFAULT 'images',
    peak_viewers INTEGER NOT NULL DEFAULT 0,
    avg_viewers  REAL NOT NULL DEFAULT 0,
    frames_in    INTEGER NOT NULL DEFAULT 0,
    bytes_in     INTEGER NOT NULL DEFAULT 0,
    frames_out   INTEGER NOT NULL DEFAULT 0,
    bytes_out    INTEGER NOT NULL DEFAULT 0,
    dropped      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sessions_started ON sessions (started_at DESC);

-- Chat belongs to the streamer's channel (their username), across that channel's streams.
CREATE TABLE chat_messages (
    id         TEXT PRIMARY KEY NOT NULL,
    channel    TEXT NOT NULL,
    stream_key TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    username   TEXT NOT NULL,
    message    TEXT NOT NULL,
    at         INTEGER NOT NULL
);
CREATE INDEX chat_by_channel ON chat_messages (channel, at, id);
CREATE INDEX chat_by_stream ON chat_messages (stream_key);

-- Reaction totals per session and kind.
CREATE TABLE reactions (
    stream_key TEXT NOT NULL,
    kind       TEXT NOT NULL,
    count      INTEGER NOT NULL,
    PRIMARY KEY (stream_key, kind)
);
