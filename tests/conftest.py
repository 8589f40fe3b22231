import sys
from pathlib import Path

# test helpers (tiny model writers) import as plain modules
sys.path.insert(0, str(Path(__file__).parent))
