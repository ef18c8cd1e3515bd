//! Hybrid log for kvd (being built: see the storage engine issue).
