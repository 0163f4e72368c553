"""The local lab: several libvirt hypervisor hosts on one Linux machine."""
