"""skops.io imported through ``resources.models.skops_import``: the same trusted types as a plain
import, without torch."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.utils.platform import REPO_ROOT

# every list of type names skops' import computes (its default trusted types)
DUMP = """
import json, sys
{importer}
from skops.io import _trusted_types as t
names = {{k: sorted(map(str, v)) for k, v in vars(t).items() if k.isupper() and isinstance(v, list)}}
print(json.dumps({{"names": names, "torch": "torch" in sys.modules}}))
"""


def _dump(importer: str) -> dict:
    done = subprocess.run([sys.executable, "-c", DUMP.format(importer=importer)], cwd=REPO_ROOT, capture_output=True, text=True,
                          check=True, timeout=120)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_trusted_types_are_skops_own_and_torch_is_not_imported():
    plain = _dump("import skops.io")
    ours = _dump("from resources.models.skops_import import skops_io; skops_io()")
    assert plain["torch"], "the plain import no longer loads torch: the walk around it may go"
    assert not ours["torch"]
    assert len(plain["names"]["SKLEARN_ESTIMATOR_TYPE_NAMES"]) > 150
    assert ours["names"] == plain["names"]
