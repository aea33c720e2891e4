"""Built-in countermeasures; importing this package registers them."""
from . import augment, preprocess  # noqa: F401
