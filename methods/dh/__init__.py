"""Semantic Deep Hiding (Meng et al., IEEE TIFS 2024): importing this package registers `dh` and `dh-8`."""
from . import method  # noqa: F401
