"""Where a store lives and how it is written safely: location, writer lock, leftovers, codecs,
shard writing, completion markers, and the integrity guard every reader passes through."""
