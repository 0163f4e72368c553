"""Plain typed values shared by drivers, store, jobs and front ends."""
