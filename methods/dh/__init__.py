"""Semantic Deep Hiding (Meng et al., IEEE TIFS 2024): importing this package registers `dh` and `dh-8`, and
`semantic-add`, the control that adds the semantic images without hiding them."""
from . import control, method  # noqa: F401
