//! Multi-threaded, all-or-nothing Lua scripting for kvd (not built yet: see the Lua issue).
