"""The core is pure: importing it must not load I/O or network machinery."""

import json
import subprocess
import sys

FORBIDDEN = ("asyncio", "httpx", "websockets", "pyarrow", "duckdb", "polars", "socket")


def test_importing_core_loads_no_io_modules():
    code = (
        "import sys, json; import buff_dataplane.core;"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_the_check_itself_would_see_a_loaded_module():
    code = (
        "import sys, json; import buff_dataplane.core, pyarrow;"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'pyarrow')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == ["pyarrow"]
