"""The lab guest: a Debian cloud kernel and a busybox initramfs running ``workload.c``."""
