"""Make `train` the package again when one of its files runs as a script.

`python train/NAME.py` (or `accelerate launch` / `torchrun` of it) puts train/ itself first on sys.path,
where `import train` would find train.py instead of this package. Importing this module, which only
resolves in that situation, replaces that entry by the repository root so `train` and `videoglamm`
import as they do everywhere else.
"""

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))
