//! (in progress: extraction)
