"""Function Node: the software GPU providers run to join the Function Network."""

from typing import Final

__version__: Final = "0.1.0"

__all__ = ["__version__"]
