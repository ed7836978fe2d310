"""The YAML loader of config.yaml and backend.yaml: PyYAML's safe loader with YAML 1.2 booleans.

PyYAML follows YAML 1.1, where ``yes``, ``no``, ``on``, ``off`` (any case) are booleans too, so
``bypassAuth: yes`` would silently turn authentication off and ``name: no`` would become ``False``.
Here only ``true`` and ``false`` (as ``true``/``True``/``TRUE``, ``false``/``False``/``FALSE``, what YAML
1.2 and the Go node's yaml.v3 accept) are booleans; every other such word stays text, so a boolean key
given ``yes`` is refused with "write true or false" and a text key keeps the word it was given.
"""

from __future__ import annotations

import re
from typing import Any, Final

import yaml

__all__ = ["StrictBoolLoader", "parse_scalar"]

_BOOL_TAG: Final = "tag:yaml.org,2002:bool"
_YAML12_BOOL: Final = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


class StrictBoolLoader(yaml.SafeLoader):
    """SafeLoader whose implicit booleans are YAML 1.2's (see the module docstring)."""


StrictBoolLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
StrictBoolLoader.add_implicit_resolver(_BOOL_TAG, _YAML12_BOOL, list("tTfF"))


def parse_scalar(text: str) -> Any:
    """One scalar read as in a file (``9000`` a number, ``true`` a boolean, ``yes`` text)."""
    return yaml.load(text, Loader=StrictBoolLoader)  # a SafeLoader subclass: no arbitrary objects
