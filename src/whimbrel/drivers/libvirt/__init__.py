"""The KVM/QEMU driver, through libvirt-python over TLS."""

import libvirt

# libvirt prints every error to stderr by default; Whimbrel raises them instead.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
