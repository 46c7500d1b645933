import importlib.util
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_build_lists_every_module_and_test_file():
    spec = importlib.util.spec_from_file_location("gen_build", ROOT / "scripts" / "gen_build.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    build = (ROOT / "BUILD").read_text()
    assert build == gen.render(), "BUILD is stale: run `python scripts/gen_build.py`"
    srcs = set(re.findall(r'srcs = \["([^"]+)"\]', build))
    on_disk = {str(p.relative_to(ROOT)) for p in (ROOT / "msd_tf").rglob("*.py")}
    on_disk |= {str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py")}
    assert srcs == on_disk
