//! Append-only file with group commit for kvd (not built yet: see the AOF issue).
