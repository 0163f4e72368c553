"""Whimbrel: live migration and high availability for KVM (libvirt) and Hyper-V hosts."""

__version__ = "0.1.0"
