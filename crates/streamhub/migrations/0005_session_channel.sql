-- Each session's channel: the streamer's name in lower case (Unicode, as the server compares
-- channel names), so "what did this channel stream last" is an index lookup, and "Über"
-- finds "über". Rows from before this migration get SQLite's lower(), which folds ASCII only.
ALTER TABLE sessions ADD COLUMN channel TEXT NOT NULL DEFAULT '';
UPDATE sessions SET channel = lower(streamer);
CREATE INDEX sessions_by_channel ON sessions (channel, started_at DESC);
