"""Built-in countermeasures; importing this package registers them."""
from . import augment, preprocess, purify  # noqa: F401
