"""BUILD carries the real dependency graph: each target's deps are the msd_tf modules its
source imports, found here a second way (the compiled bytecode's IMPORT_NAME
instructions, not the syntax tree scripts/gen_build.py reads), and the graph has no
cycles (docs/ARCHITECTURE.md: nothing imports upward)."""

import dis
import importlib.util
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _gen():
    spec = importlib.util.spec_from_file_location("gen_build", ROOT / "scripts" / "gen_build.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    return gen


def _targets(build: str) -> dict[str, tuple[str, set[str]]]:
    """BUILD target name -> (its one source file, its deps)."""
    out = {}
    for m in re.finditer(r'name = "([^"]+)",\n    srcs = \["([^"]+)"\],\n(?:    main = [^\n]+\n)?'
                         r'(?:    data = [^\n]+\n)?    deps = \[([^\]]*)\]', build):
        out[m.group(1)] = (m.group(2), set(re.findall(r'":([^"]+)"', m.group(3))))
    return out


def _bytecode_imports(path: pathlib.Path) -> set[str]:
    """msd_tf modules imported anywhere in `path`, from its bytecode."""
    def module(name):
        p = ROOT.joinpath(*name.split("."))
        if p.with_suffix(".py").exists():
            return name.replace(".", "_")
        if (p / "__init__.py").exists():
            return name.replace(".", "_") + "___init__"
        return None

    found, stack = set(), [compile(path.read_text(), str(path), "exec")]
    while stack:
        code = stack.pop()
        stack += [c for c in code.co_consts if hasattr(c, "co_code")]
        fromlist = None
        for ins in dis.get_instructions(code):
            if ins.opname == "LOAD_CONST":
                fromlist = ins.argval
            elif ins.opname == "IMPORT_NAME" and ins.argval.startswith("msd_tf"):
                subs = [module(f"{ins.argval}.{n}") for n in (fromlist or ())]
                found |= {s for s in subs if s}
                if not fromlist or not all(subs):
                    found.add(module(ins.argval))
    found.discard(None)
    return found


def test_build_is_generated_and_lists_every_file():
    build = (ROOT / "BUILD").read_text()
    assert build == _gen().render(), "BUILD is stale: run `python scripts/gen_build.py`"
    srcs = {src for src, _ in _targets(build).values()}
    on_disk = {str(p.relative_to(ROOT)) for p in (ROOT / "msd_tf").rglob("*.py")}
    on_disk |= {str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py")}
    assert srcs == on_disk


def test_deps_are_the_imports():
    for name, (src, deps) in _targets((ROOT / "BUILD").read_text()).items():
        own = src.removesuffix(".py").replace("/", "_")
        assert deps == _bytecode_imports(ROOT / src) - {own}, name


def test_dependency_graph_has_no_cycle():
    graph = {n: deps for n, (_, deps) in _targets((ROOT / "BUILD").read_text()).items()}
    done, path = set(), []

    def visit(n):
        assert n not in path, f"import cycle: {' -> '.join(path[path.index(n):] + [n])}"
        if n in done:
            return
        path.append(n)
        for d in graph.get(n, ()):
            visit(d)
        path.pop()
        done.add(n)

    for n in graph:
        visit(n)


def test_the_wheel_lists_every_package():
    """pyproject.toml names its packages one by one: a new subpackage left out of the list
    would be missing from the installed wheel (msd_tf.balls once was)."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts)
               for p in (ROOT / "msd_tf").rglob("__init__.py")}
    assert on_disk <= listed, sorted(on_disk - listed)
