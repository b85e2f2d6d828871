"""skillforge's version and the versions of the packages a result depends on."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

__version__ = "0.1.0"


def package_versions(packages: tuple[str, ...]) -> dict[str, str]:
    """`{"skillforge": ..., package: version, ...}`; "absent" for a package not installed."""
    versions = {"skillforge": __version__}
    for package in packages:
        try:
            versions[package] = package_version(package)
        except PackageNotFoundError:
            versions[package] = "absent"
    return versions
