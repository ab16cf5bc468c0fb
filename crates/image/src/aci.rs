//! (in progress: formats)
