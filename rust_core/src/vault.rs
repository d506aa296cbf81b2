//! vault (to be written).
