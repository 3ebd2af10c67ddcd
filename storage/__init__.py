"""Redis Streams bus, live state and (later) the SQL archive."""
