"""Assets vmconform builds for itself from Debian packages: hypervisor hosts, firmwares, initramfs images.

`debian` fetches packages of any suite and architecture through a private apt configuration,
`initrd` assembles deterministic initramfs images from them, `xen` builds the nested Xen host and
its domU firmwares. Everything is cached under `cache.cache_dir()`, keyed on package versions and
the hash of the project's own patches and scripts. ``python -m vmconform.assets build xen`` builds.
"""
