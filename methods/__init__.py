"""Built-in unlearnable-example methods; importing this package registers them (in table order)."""
from . import clean  # noqa: F401  (isort: skip: the import order is the leaderboard's row order)
from . import dh  # noqa: F401
from . import em  # noqa: F401
from . import rem  # noqa: F401
from . import sem  # noqa: F401
from . import tap  # noqa: F401
from . import hypo  # noqa: F401
from . import ops  # noqa: F401
from . import lsp  # noqa: F401
from . import ar  # noqa: F401
from . import cuda  # noqa: F401
from . import semantic_add  # noqa: F401  (DH's control, left out of `all`)
