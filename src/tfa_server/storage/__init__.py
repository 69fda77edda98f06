"""SQLite storage: one connection on one worker thread, so the event loop never waits on disk."""
