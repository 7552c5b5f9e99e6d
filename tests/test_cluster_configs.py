"""The cluster configurations in cluster/ (docs/cluster.md): the `ray up` YAML goes through Ray's own
config preparation and schema validation, offline and without cloud credentials; the KubeRay
manifests and the runtime environment are checked for the fields raynas relies on and for
agreeing with each other, with Ray and with pyproject.toml. Deliberately broken copies show that
each check can fail. Nothing is started; the whole file takes about three seconds."""

from __future__ import annotations

import copy
import re
import shlex
import socket
from pathlib import Path

import pytest
import ray
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
RAY_MAJOR_MINOR = ray.__version__.split(".")[:2]
IMAGE = re.compile(r"^rayproject/ray:(?P<version>\d+\.\d+\.\d+)-py(?P<python>\d+)(?P<gpu>-gpu)?$")
KUBE_API = {"RayCluster": "ray.io/v1", "RayJob": "ray.io/v1", "PersistentVolumeClaim": "v1"}
RUNTIME_ENV_FIELDS = {"working_dir", "py_modules", "pip", "uv", "conda", "env_vars", "excludes", "py_executable",
                      "image_uri", "container", "worker_process_setup_hook", "config"}
OBJECT_STORE_SHARE = 0.3  # Ray's default object store size, as a share of the node's memory
# Field names of the KubeRay ray.io/v1 API (operator v1.x), so that a misspelt field is caught here
# rather than silently dropped by the API server.
KUBERAY_FIELDS = {
    "RayJobSpec": {"activeDeadlineSeconds", "backoffLimit", "rayClusterSpec", "submitterPodTemplate", "metadata",
                   "clusterSelector", "submitterConfig", "managedBy", "deletionStrategy", "entrypoint",
                   "runtimeEnvYAML", "jobId", "submissionMode", "entrypointResources", "entrypointNumCpus",
                   "entrypointNumGpus", "ttlSecondsAfterFinished", "shutdownAfterJobFinishes",
                   "suspend", "schedule"},
    "RayClusterSpec": {"headGroupSpec", "workerGroupSpecs", "rayVersion", "enableInTreeAutoscaling",
                       "autoscalerOptions", "headServiceAnnotations", "suspend", "gcsFaultToleranceOptions",
                       "managedBy"},
    "HeadGroupSpec": {"serviceType", "headService", "enableIngress", "rayStartParams", "template"},
    "WorkerGroupSpec": {"groupName", "replicas", "minReplicas", "maxReplicas", "numOfHosts", "rayStartParams",
                        "template", "scaleStrategy", "idleTimeoutSeconds", "suspend"},
    "AutoscalerOptions": {"resources", "image", "imagePullPolicy", "env", "envFrom", "volumeMounts",
                          "securityContext", "idleTimeoutSeconds", "upscalingMode", "version"},
}


# --- loading ---------------------------------------------------------------------------------------

def load_cluster_files() -> dict[str, list]:
    """Every YAML document under cluster/, by path relative to the repository root."""
    files = sorted(p for p in CLUSTER.rglob("*") if p.suffix in {".yaml", ".yml"})
    return {p.relative_to(ROOT).as_posix(): [d for d in yaml.safe_load_all(p.read_text()) if d is not None]
            for p in files}


def kind_of(doc) -> str:
    if isinstance(doc, dict) and "provider" in doc and "available_node_types" in doc:
        return "launcher"
    if isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc:
        return "kubernetes"
    if isinstance(doc, dict) and doc and set(doc) <= RUNTIME_ENV_FIELDS:
        return "runtime_env"
    return "unknown"


@pytest.fixture(scope="module")
def files():
    return load_cluster_files()


def docs_of(files, kind):
    return [d for docs in files.values() for d in docs if kind_of(d) == kind]


# --- the `ray up` YAML -----------------------------------------------------------------------------

def ray_validation_problems(config: dict) -> list[str]:
    """What Ray's own `prepare_config` + `validate_config` (the checks `ray up` makes) refuse."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    try:
        validate_config(prepare_config(copy.deepcopy(config)))
    except Exception as exc:  # jsonschema.ValidationError, ValueError, AssertionError, ...
        return [f"ray validation: {type(exc).__name__}: {str(exc).splitlines()[0]}"]
    return []


def launcher_problems(config: dict) -> list[str]:
    """raynas's needs of a cluster-launcher config, beyond what Ray's schema says."""
    problems = []
    types = config.get("available_node_types", {})
    head_name = config.get("head_node_type")
    head = types.get(head_name, {})
    if head.get("resources", {}).get("CPU") != 0 or head.get("resources", {}).get("GPU"):
        problems.append("the head node type must have resources {CPU: 0} so that no trial runs on it")
    gpu_types = {n: t for n, t in types.items() if n != head_name and t.get("resources", {}).get("GPU", 0) >= 1}
    if not gpu_types:
        problems.append("no worker node type with resources {GPU: >= 1}")
    for name, t in gpu_types.items():
        if t.get("min_workers", 0) < 1:
            problems.append(f"{name}: min_workers must be at least 1 so that a race can start at once")
        if t.get("max_workers", 0) <= t.get("min_workers", 0):
            problems.append(f"{name}: max_workers must exceed min_workers for the GPU workers to autoscale")

    docker = config.get("docker", {})
    images = {"head": docker.get("head_image", docker.get("image")),
              "worker": docker.get("worker_image", docker.get("image"))}
    images.update({f"worker {n}": t["docker"]["worker_image"]
                   for n, t in types.items() if "worker_image" in t.get("docker", {})})
    parsed = {role: IMAGE.match(image or "") for role, image in images.items()}
    for role, m in parsed.items():
        if m is None:
            problems.append(f"{role} image {images[role]!r} is not rayproject/ray:X.Y.Z-pyNNN[-gpu]")
        elif m["version"].split(".")[:2] != RAY_MAJOR_MINOR:
            problems.append(f"{role} image has Ray version {m['version']}, the installed Ray is {ray.__version__}")
        elif role != "head" and not m["gpu"]:
            problems.append(f"{role} image {images[role]!r} is not a -gpu image")
    versions = {m["version"] for m in parsed.values() if m}
    if len(versions) > 1:
        problems.append(f"head and worker images disagree on the Ray version: {sorted(versions)}")

    for role in ("head", "worker"):
        options = docker.get("run_options", []) + docker.get(f"{role}_run_options", [])
        if not any(o.startswith("--shm-size") for o in options):
            problems.append(f"no --shm-size in the {role}'s docker run options: Docker's 64 MB /dev/shm "
                            "is too small for Ray's object store")

    binds = [m.groups() for o in docker.get("run_options", [])
             if (m := re.fullmatch(r"(?:-v|--volume)[ =]([^:\s]+):([^:\s]+)(?::\w+)?", o.strip()))]
    shared = [host for host, inside in binds if host == inside]
    if not shared:
        problems.append("no shared storage bound into the containers at the path it has on the host")
    for path in shared:
        mounted = any(re.search(rf"\bmount\b.*\s{re.escape(path)}/?(\s|$)", " ".join(cmd.split()))
                      for cmd in config.get("initialization_commands", []))
        if not mounted:
            problems.append(f"no initialization command mounts the shared storage at {path}")

    project_mounts = [remote for remote, local in config.get("file_mounts", {}).items()
                      if (ROOT / local).resolve() == ROOT]
    installs = [c for c in config.get("setup_commands", []) if "pip install" in c]
    if not any(remote.rstrip("/") in c for c in installs for remote in project_mounts):
        problems.append("no setup command pip-installs raynas from a file mount of the project")
    if project_mounts and ".gitignore" not in config.get("rsync_filter", []):
        problems.append("rsync_filter must list .gitignore, else .venv and build outputs are uploaded")
    for cmd in config.get("setup_commands", []) + config.get("head_setup_commands", []):
        for pinned in re.findall(r"\bray(?:\[[^\]]*\])?==([\d.]+)", cmd):
            if pinned not in versions:
                problems.append(f"setup command pins ray=={pinned}, the image has {sorted(versions)}")
    return problems


@pytest.fixture
def offline(monkeypatch):
    """No network and no AWS credentials: what passes here needs neither."""
    def refuse(*args, **kwargs):
        raise OSError("network access during a config check")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")


# --- the KubeRay manifests -------------------------------------------------------------------------

_QUANTITY_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
                   "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "m": 1e-3, "": 1}


def quantity(value) -> float:
    """A Kubernetes resource quantity ('16Gi', '500m', 1) as a number."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T|m)?", str(value).strip())
    if m is None:
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    return float(m[1]) * _QUANTITY_UNITS[m[2] or ""]


def ray_cluster_specs(docs):
    """(label, spec) of every Ray cluster the manifests describe: RayClusters and RayJobs' clusters."""
    for d in docs:
        name = d.get("metadata", {}).get("name")
        if d.get("kind") == "RayCluster":
            yield f"RayCluster {name}", d.get("spec", {})
        elif d.get("kind") == "RayJob":
            yield f"RayJob {name} rayClusterSpec", d.get("spec", {}).get("rayClusterSpec", {})


def pod_problems(label: str, group: dict, pvcs: dict) -> tuple[list[str], dict]:
    """Problems of one group's pod; also its PVC mounts {claim: path} in the Ray container."""
    problems = []
    pod = group.get("template", {}).get("spec", {})
    containers = pod.get("containers") or [{}]
    ray_container = containers[0]  # KubeRay runs Ray in the first container
    volumes = {v.get("name"): v for v in pod.get("volumes", [])}
    mounts = {m.get("mountPath"): m.get("name") for m in ray_container.get("volumeMounts", [])}

    claims = {}
    for path, name in mounts.items():
        claim = volumes.get(name, {}).get("persistentVolumeClaim", {}).get("claimName")
        if claim:
            claims[claim] = path
            if claim not in pvcs:
                problems.append(f"{label}: claim {claim!r} has no PersistentVolumeClaim manifest in cluster/")

    shm = volumes.get(mounts.get("/dev/shm"), {}).get("emptyDir")
    if shm is None or shm.get("medium") != "Memory":
        problems.append(f"{label}: /dev/shm must be mounted from an emptyDir with medium Memory")
    elif "sizeLimit" not in shm:
        problems.append(f"{label}: the /dev/shm emptyDir needs a sizeLimit")
    else:
        memory = ray_container.get("resources", {}).get("limits", {}).get("memory")
        if memory is None:
            problems.append(f"{label}: the Ray container needs a memory limit (Ray sizes its object store from it)")
        elif quantity(shm["sizeLimit"]) < OBJECT_STORE_SHARE * quantity(memory):
            problems.append(f"{label}: /dev/shm sizeLimit {shm['sizeLimit']} is below the object store "
                            f"({OBJECT_STORE_SHARE:.0%} of the memory limit {memory})")
    return problems, claims


def cluster_spec_problems(label: str, spec: dict, pvcs: dict) -> tuple[list[str], set]:
    """Problems of one Ray cluster spec; also the paths where the shared claim is mounted everywhere."""
    problems = []
    parts = [("RayClusterSpec", spec), ("HeadGroupSpec", spec.get("headGroupSpec", {})),
             ("AutoscalerOptions", spec.get("autoscalerOptions", {}))]
    parts += [("WorkerGroupSpec", g) for g in spec.get("workerGroupSpecs", [])]
    for api_type, part in parts:
        if unknown := sorted(set(part) - KUBERAY_FIELDS[api_type]):
            problems.append(f"{label}: unknown {api_type} fields {unknown}")
    version = str(spec.get("rayVersion", ""))
    if not isinstance(spec.get("rayVersion"), str) or version.split(".")[:2] != RAY_MAJOR_MINOR:
        problems.append(f"{label}: rayVersion {spec.get('rayVersion')!r} must be a string with the installed "
                        f"Ray's version {ray.__version__} (at least its major.minor)")
    head = spec.get("headGroupSpec", {})
    groups = spec.get("workerGroupSpecs", [])
    all_groups = [("head", head)] + [(f"group {g.get('groupName')}", g) for g in groups]

    if head.get("rayStartParams", {}).get("num-cpus") != "0":
        problems.append(f'{label}: the head\'s rayStartParams need num-cpus: "0" (the string) '
                        "so that no trial runs on it")
    for name, group in all_groups:
        for key, value in group.get("rayStartParams", {}).items():
            if not isinstance(value, str):
                problems.append(f"{label} {name}: rayStartParams {key}={value!r} must be a string")

    images = {}
    for name, group in all_groups:
        containers = group.get("template", {}).get("spec", {}).get("containers") or [{}]
        image = containers[0].get("image", "")
        m = IMAGE.match(image)
        if m is None:
            problems.append(f"{label} {name}: image {image!r} is not rayproject/ray:X.Y.Z-pyNNN[-gpu]")
            continue
        images[name] = m
        if m["version"] != version:
            problems.append(f"{label} {name}: image {image} does not have rayVersion {version}")
    if len({(m["version"], m["python"]) for m in images.values()}) > 1:
        problems.append(f"{label}: head and worker images disagree on the Ray or Python version")

    gpu_groups = []
    for g in groups:
        containers = g.get("template", {}).get("spec", {}).get("containers") or [{}]
        limits = containers[0].get("resources", {}).get("limits", {})
        if quantity(limits.get("nvidia.com/gpu", 0)) >= 1:
            gpu_groups.append(g)
    if not gpu_groups:
        problems.append(f"{label}: no worker group with an nvidia.com/gpu limit")
    for g in gpu_groups:
        name = g.get("groupName")
        tolerations = g.get("template", {}).get("spec", {}).get("tolerations", [])
        if not any(t.get("key") == "nvidia.com/gpu" for t in tolerations):
            problems.append(f"{label} group {name}: no toleration for the nvidia.com/gpu taint of GPU nodes")
        if name in images and not images[name]["gpu"]:
            problems.append(f"{label} group {name}: a GPU group needs a -gpu image")
        lo, n, hi = g.get("minReplicas", 0), g.get("replicas", 0), g.get("maxReplicas", 0)
        if not (1 <= lo <= n <= hi and hi > lo):
            problems.append(f"{label} group {name}: needs 1 <= minReplicas <= replicas <= maxReplicas, "
                            f"maxReplicas > minReplicas (got {lo}, {n}, {hi})")

    claims_per_group = []
    for name, group in all_groups:
        found, claims = pod_problems(f"{label} {name}", group, pvcs)
        problems += found
        claims_per_group.append(set(claims.items()))
    shared = set.intersection(*claims_per_group)
    if not shared:
        problems.append(f"{label}: no PersistentVolumeClaim is mounted at the same path on the head and every worker")
    for claim, _ in shared:
        if "ReadWriteMany" not in pvcs.get(claim, {}).get("spec", {}).get("accessModes", []):
            problems.append(f"{label}: claim {claim!r} must be ReadWriteMany to be mounted on several nodes")
    return problems, {path for _, path in shared}


def rayjob_problems(job: dict, shared_paths: set) -> list[str]:
    problems = []
    spec = job.get("spec", {})
    label = f"RayJob {job.get('metadata', {}).get('name')}"
    if unknown := sorted(set(spec) - KUBERAY_FIELDS["RayJobSpec"]):
        problems.append(f"{label}: unknown RayJobSpec fields {unknown}")
    words = shlex.split(spec.get("entrypoint", ""))
    if len(words) < 2 or words[0] not in {"python", "python3"} or not re.fullmatch(r"jobs/[\w-]+\.py", words[1]):
        problems.append(f"{label}: the entrypoint must run a jobs/ script: python jobs/NAME.py ...")

    def under_shared(path: str) -> bool:
        return any(path == p or path.startswith(p.rstrip("/") + "/") for p in shared_paths)

    options = dict(zip(words, words[1:]))
    if "--home" not in options or not under_shared(options["--home"]):
        problems.append(f"{label}: the entrypoint needs --home on the shared volume {sorted(shared_paths)}")
    storage = options.get("--storage")
    if storage is not None and "://" not in storage and not under_shared(storage):
        problems.append(f"{label}: --storage {storage} is neither on the shared volume nor a URI")

    try:
        env = yaml.safe_load(spec.get("runtimeEnvYAML", "")) or {}
    except yaml.YAMLError as exc:
        return problems + [f"{label}: runtimeEnvYAML is not YAML: {exc}"]
    if not isinstance(env, dict) or not set(env) <= RUNTIME_ENV_FIELDS:
        problems.append(f"{label}: runtimeEnvYAML must be a mapping of runtime_env fields")
        return problems
    working_dir = env.get("working_dir", "")
    if not re.match(r"^(https?|s3|gs)://.+\.zip$", working_dir):
        problems.append(f"{label}: working_dir must be a remote .zip URI: nothing is uploaded from a "
                        f"laptop with kubectl apply (got {working_dir!r})")
    if spec.get("shutdownAfterJobFinishes") is not True:
        problems.append(f"{label}: shutdownAfterJobFinishes must be true, else its GPU nodes stay up")
    return problems


def kuberay_problems(docs: list) -> list[str]:
    problems = []
    for d in docs:
        kind = d.get("kind")
        if kind not in KUBE_API:
            problems.append(f"unexpected kind {kind!r} in cluster/")
            continue
        if d.get("apiVersion") != KUBE_API[kind]:
            problems.append(f"{kind} needs apiVersion {KUBE_API[kind]}, not {d.get('apiVersion')!r}")
        if not d.get("metadata", {}).get("name"):
            problems.append(f"{kind} has no metadata.name")
    pvcs = {d["metadata"]["name"]: d for d in docs
            if d.get("kind") == "PersistentVolumeClaim" and d.get("metadata", {}).get("name")}
    for name, pvc in pvcs.items():
        if "ReadWriteMany" not in pvc.get("spec", {}).get("accessModes", []):
            problems.append(f"PersistentVolumeClaim {name} must be ReadWriteMany")

    shared_by_job = {}
    specs = list(ray_cluster_specs(docs))
    if not specs:
        problems.append("no RayCluster or RayJob in cluster/")
    for label, spec in specs:
        found, shared = cluster_spec_problems(label, spec, pvcs)
        problems += found
        shared_by_job[label] = shared
    for job in (d for d in docs if d.get("kind") == "RayJob"):
        problems += rayjob_problems(job, shared_by_job[f"RayJob {job['metadata']['name']} rayClusterSpec"])
    return problems


# --- tests -----------------------------------------------------------------------------------------

def test_every_yaml_in_cluster_is_one_of_the_checked_kinds(files):
    assert files, "no YAML files in cluster/"
    for path, docs in files.items():
        assert docs, f"{path} is empty"
        for doc in docs:
            assert kind_of(doc) != "unknown", f"{path}: a document this test does not know how to check"
    kinds = [kind_of(d) for docs in files.values() for d in docs]
    assert "launcher" in kinds and "kubernetes" in kinds


def test_launcher_configs_pass_rays_own_validation_offline(files, offline):
    for config in docs_of(files, "launcher"):
        assert ray_validation_problems(config) == []


def test_launcher_configs_fit_raynas(files):
    for config in docs_of(files, "launcher"):
        assert launcher_problems(config) == []


def test_kuberay_manifests_fit_raynas(files):
    assert kuberay_problems(docs_of(files, "kubernetes")) == []


def test_rayjob_runs_the_cluster_of_the_raycluster_manifest(files):
    docs = docs_of(files, "kubernetes")
    clusters = [d["spec"] for d in docs if d["kind"] == "RayCluster"]
    jobs = [d["spec"]["rayClusterSpec"] for d in docs if d["kind"] == "RayJob"]
    assert clusters and jobs
    for job_cluster in jobs:
        assert job_cluster in clusters, "the RayJob's rayClusterSpec drifted from the RayCluster's spec"


def _requirement_key(req: str) -> str:
    return re.sub(r"\s+", "", req).lower().replace("_", "-")


def test_runtime_envs_install_the_dependencies_of_pyproject(files):
    tomllib = pytest.importorskip("tomllib")
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    not_ray = sorted(_requirement_key(r) for r in declared if not re.match(r"ray\b", r.strip().lower()))

    envs = docs_of(files, "runtime_env") + [yaml.safe_load(d["spec"]["runtimeEnvYAML"])
                                           for d in docs_of(files, "kubernetes") if d["kind"] == "RayJob"]
    assert len(envs) >= 2
    for env in envs:
        assert sorted(_requirement_key(r) for r in env.get("pip", [])) == not_ray, \
            "the runtime_env pip list must be pyproject.toml's dependencies without Ray (the image's Ray stays)"
    without_code = [{k: v for k, v in env.items() if k != "working_dir"} for env in envs]
    assert all(e == without_code[0] for e in without_code), "the runtime environments drifted apart"


def test_rayjob_entrypoints_name_scripts_that_exist(files):
    scripts = {shlex.split(d["spec"]["entrypoint"])[1] for d in docs_of(files, "kubernetes") if d["kind"] == "RayJob"}
    missing = sorted(s for s in scripts if not (ROOT / s).is_file())
    assert scripts and not missing, f"RayJob entrypoints name scripts that do not exist: {missing}"


def _head_type(config):
    return config["available_node_types"][config["head_node_type"]]


def _gpu_type(config):
    head = config["head_node_type"]
    return next(t for n, t in config["available_node_types"].items() if n != head and t["resources"].get("GPU"))


LAUNCHER_BREAKAGES = {
    "typo in a node type field": (lambda c: _gpu_type(c).update(min_worker=1), "ray validation"),
    "more minimum workers than max_workers": (lambda c: c.update(max_workers=0), "ray validation"),
    "resources given as strings": (lambda c: _head_type(c).update(resources={"CPU": "0"}), "ray validation"),
    "trials allowed on the head": (lambda c: _head_type(c).update(resources={}), "CPU: 0"),
    "no GPU workers from the start": (lambda c: _gpu_type(c).update(min_workers=0), "min_workers"),
    "an old Ray image": (lambda c: c["docker"].update(image="rayproject/ray:2.9.0-py311-gpu"), "Ray version"),
    "no shm size for workers": (lambda c: c["docker"].update(worker_run_options=[]), "--shm-size"),
    "no shared storage in the container": (lambda c: c["docker"].update(
        run_options=[o for o in c["docker"]["run_options"] if "/mnt/" not in o]), "shared storage"),
    "shared storage never mounted": (lambda c: c.update(initialization_commands=[]), "mounts the shared storage"),
    "project not mounted": (lambda c: c.update(file_mounts={}), "pip-installs raynas"),
    "pip replaces the image's Ray": (lambda c: c.update(
        setup_commands=[s.replace("==2.", "==3.") for s in c["setup_commands"]]), "pins ray"),
}


@pytest.mark.parametrize("breakage", LAUNCHER_BREAKAGES)
def test_broken_launcher_configs_are_caught(files, offline, breakage):
    mutate, expected = LAUNCHER_BREAKAGES[breakage]
    for config in docs_of(files, "launcher"):
        broken = copy.deepcopy(config)
        mutate(broken)
        problems = ray_validation_problems(broken) + launcher_problems(broken)
        assert any(expected in p for p in problems), problems


def _by_kind(docs, kind):
    return next(d for d in docs if d["kind"] == kind)


def _job_cluster(docs):
    return _by_kind(docs, "RayJob")["spec"]["rayClusterSpec"]


def _worker_pod(docs):
    return _job_cluster(docs)["workerGroupSpecs"][0]["template"]["spec"]


def _volume(pod, name):
    return next(v for v in pod["volumes"] if v["name"] == name)


def _set_mount(pod, volume, path):
    next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume)["mountPath"] = path


KUBERAY_BREAKAGES = {
    "misspelt worker group field": (lambda d: _job_cluster(d)["workerGroupSpecs"][0].update(maxReplica=4),
                                    "unknown WorkerGroupSpec fields"),
    "misspelt RayJob field": (lambda d: _by_kind(d, "RayJob")["spec"].update(shutdownAfterJobFinish=True),
                              "unknown RayJobSpec fields"),
    "wrong apiVersion": (lambda d: _by_kind(d, "RayJob").update(apiVersion="ray.io/v1alpha1"), "apiVersion"),
    "head num-cpus as a number": (lambda d: _job_cluster(d)["headGroupSpec"]["rayStartParams"].update({"num-cpus": 0}),
                                  "num-cpus"),
    "a rayStartParams value not a string": (
        lambda d: _job_cluster(d)["workerGroupSpecs"][0]["rayStartParams"].update({"num-gpus": 1}), "must be a string"),
    "an old rayVersion": (lambda d: _job_cluster(d).update(rayVersion="2.9.0"), "rayVersion"),
    "worker image of another Ray": (
        lambda d: _worker_pod(d)["containers"][0].update(image="rayproject/ray:2.59.0-py311-gpu"), "image"),
    "no GPU limit": (lambda d: _worker_pod(d)["containers"][0]["resources"]["limits"].pop("nvidia.com/gpu"),
                     "nvidia.com/gpu limit"),
    "no GPU toleration": (lambda d: _worker_pod(d).update(tolerations=[]), "toleration"),
    "shared claim at another path on workers": (lambda d: _set_mount(_worker_pod(d), "shared", "/mnt/other"),
                                                "same path"),
    "claim without a manifest": (lambda d: _volume(_worker_pod(d), "shared")["persistentVolumeClaim"].update(
        claimName="raynas-typo"), "no PersistentVolumeClaim manifest"),
    "claim only ReadWriteOnce": (lambda d: _by_kind(d, "PersistentVolumeClaim")["spec"].update(
        accessModes=["ReadWriteOnce"]), "ReadWriteMany"),
    "/dev/shm on disk": (lambda d: _volume(_worker_pod(d), "dshm")["emptyDir"].pop("medium"), "medium Memory"),
    "/dev/shm smaller than the object store": (
        lambda d: _volume(_worker_pod(d), "dshm")["emptyDir"].update(sizeLimit="1Gi"), "sizeLimit"),
    "entrypoint outside jobs/": (lambda d: _by_kind(d, "RayJob")["spec"].update(
        entrypoint="python search.py glyph-digits --home /mnt/raynas/home"), "jobs/ script"),
    "home on a node's own disk": (lambda d: _by_kind(d, "RayJob")["spec"].update(
        entrypoint="python jobs/search.py glyph-digits --home /tmp/raynas"), "--home"),
    "local working_dir in a RayJob": (lambda d: _by_kind(d, "RayJob")["spec"].update(
        runtimeEnvYAML="working_dir: .\n"), "remote .zip"),
}


@pytest.mark.parametrize("breakage", KUBERAY_BREAKAGES)
def test_broken_kuberay_manifests_are_caught(files, breakage):
    mutate, expected = KUBERAY_BREAKAGES[breakage]
    broken = copy.deepcopy(docs_of(files, "kubernetes"))
    mutate(broken)
    problems = kuberay_problems(broken)
    assert any(expected in p for p in problems), problems


def test_quantities():
    assert quantity("16Gi") == 16 * 2**30
    assert quantity("500m") == 0.5
    assert quantity(1) == 1
    with pytest.raises(ValueError):
        quantity("16 GB")
