"""`python -m tests.scoring.service.store_bundle DIR`: save a bundle's files into the BentoML
store named by `BENTOML_HOME` and print its tag.

A separate process so the store location comes from the environment, as in the services,
rather than from patching BentoML inside the test process.
"""

from __future__ import annotations

import sys
from pathlib import Path

from retention_bundle.bundle import read_bundle
from retention_bundle.model_store import save_bundle

if __name__ == "__main__":
    model = save_bundle(read_bundle(Path(sys.argv[1])))
    print(model.tag)
