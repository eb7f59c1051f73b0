-- A live session's totals are checkpointed every few seconds (store::writer). When the server
-- last did so: a session a crash left open ends there, with the checkpointed totals, instead
-- of at its start with zeros. NULL until the first checkpoint.
ALTER TABLE sessions ADD COLUMN checkpoint_at INTEGER;
