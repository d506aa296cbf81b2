"""Failover: which outcomes cascade to the next PSP, decided by a pluggable policy."""
