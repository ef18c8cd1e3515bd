//! The kvd server (not built yet: see the server issue).
