//! Concurrent hash index for kvd (being built: see the storage engine issue).
