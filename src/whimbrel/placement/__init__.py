"""Host ratings and the cluster reserve (N-k)."""
