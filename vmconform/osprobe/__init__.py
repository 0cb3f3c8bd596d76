"""The OS probe: a real Linux guest that reports, in the UEFI probe's line protocol, what only an OS can see.

A second case family beside the UEFI probe (which stays the primary probe): Debian's kernel and a busybox
initramfs on the same GPT/ESP layouts, booted from the removable-media path. `assets` builds and caches the
parts from Debian packages (the loader that gives the kernel its command line and initrd: a unified kernel
image on aarch64, GRUB on arm), `uki` writes unified kernel images, `run` boots the probe and drives the
flows (hot-plug, runtime variables), `facts` decodes its lines; the verdicts are `vmconform.verdicts.osprobe`
and the tests ``suite/test_os.py``. The guest side is the shell script ``init`` beside these modules.
"""
