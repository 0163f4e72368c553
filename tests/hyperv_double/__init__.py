"""The Hyper-V transport double: hosts, clusters and a directory that answer the
driver's scripts in memory.  Tests and benchmarks only: no host URI reaches it."""
