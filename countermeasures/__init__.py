"""Built-in countermeasures, one module per family; importing this package registers them in protocol order."""
from . import augment, preprocess, training, purify  # noqa: F401
from . import coin, colour  # noqa: F401  (beyond the protocol: the `extra` suite, after the paper's columns)
