import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))  # test helper modules (fixtures.py)
# Tests run tiny models: one thread is several times faster than two on a busy 2-core machine.
torch.set_num_threads(1)
