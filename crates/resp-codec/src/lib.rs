//! resp-codec (being built).
