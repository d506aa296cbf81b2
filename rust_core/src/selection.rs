//! selection (to be written).
