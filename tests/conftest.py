import sys
from pathlib import Path

# tests/reference.py holds the slow float64 references; make it importable as `reference`.
sys.path.insert(0, str(Path(__file__).parent))
