"""What the ``vmconform`` subcommands share: the error that becomes one line on stderr (``vmconform: error: ...``,
exit status 2) and the guest architectures to choose from.
"""

from __future__ import annotations

from vmconform.enums import Arch

__all__ = ["ARCH_NAMES", "CliError"]

ARCH_NAMES = tuple(a.value for a in Arch)


class CliError(Exception):
    pass
