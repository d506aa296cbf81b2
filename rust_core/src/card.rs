//! card (to be written).
