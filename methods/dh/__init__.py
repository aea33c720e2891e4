"""Semantic Deep Hiding (Meng et al., IEEE TIFS 2024): importing this package registers `dh`, `dh-8` and
`dh-robust`."""
from . import method  # noqa: F401
