"""Built-in countermeasures, one module per family; importing this package registers them in protocol order."""
from . import augment, preprocess, training, purify  # noqa: F401
