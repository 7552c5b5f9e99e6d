"""The cluster configurations in cluster/ (docs/cluster.md): the `ray up` YAML goes through Ray's own
config preparation and schema validation, offline and without cloud credentials; the KubeRay
manifests and the runtime environment are checked for the fields raynas relies on, for agreeing
with each other, with Ray and with pyproject.toml, and for fitting the node types they name.
Deliberately broken copies show that each check can fail. Nothing is started; the whole file takes
about three seconds. tests/test_image.py checks the images they run."""

from __future__ import annotations

import copy
import re
import shlex
import socket
from pathlib import Path
from typing import NamedTuple

import pytest
import ray
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
RAY_MAJOR_MINOR = ray.__version__.split(".")[:2]
# The raynas images (Dockerfile, Dockerfile.cpu): REGISTRY/raynas:RAYNAS-rayRAY-pyNNN-cpu|gpu
IMAGE = re.compile(r"^(?P<repo>[a-z0-9][a-z0-9._:/-]*/raynas):(?P<raynas>\d+\.\d+\.\d+)"
                   r"-ray(?P<version>\d+\.\d+\.\d+)-py(?P<python>\d+)-(?P<variant>cpu|gpu)$")
IMAGE_FORM = "REGISTRY/raynas:X.Y.Z-rayX.Y.Z-pyNNN-cpu|gpu (the images of Dockerfile and Dockerfile.cpu)"
KUBE_API = {"RayCluster": "ray.io/v1", "RayJob": "ray.io/v1", "PersistentVolumeClaim": "v1"}
RUNTIME_ENV_FIELDS = {"working_dir", "py_modules", "pip", "uv", "conda", "env_vars", "excludes", "py_executable",
                      "image_uri", "container", "worker_process_setup_hook", "config"}
INSTALLING_FIELDS = {"pip", "uv", "conda"}  # runtime_env fields that install packages when a job starts
SETUP_TIMEOUT_DEFAULT_S = 600  # Ray's default runtime_env setup_timeout_seconds
OBJECT_STORE_SHARE = 0.3  # Ray's default object store size, as a share of the node's memory
GiB = 2**30
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
                       "managedBy", "authOptions"},
    "HeadGroupSpec": {"serviceType", "headService", "enableIngress", "rayStartParams", "template"},
    "WorkerGroupSpec": {"groupName", "replicas", "minReplicas", "maxReplicas", "numOfHosts", "rayStartParams",
                        "template", "scaleStrategy", "idleTimeoutSeconds", "suspend"},
    "AutoscalerOptions": {"resources", "image", "imagePullPolicy", "env", "envFrom", "volumeMounts",
                          "securityContext", "idleTimeoutSeconds", "upscalingMode", "version"},
    "AuthOptions": {"mode", "secretName", "enableK8sTokenAuth"},
}


class NodeType(NamedTuple):
    vcpus: int
    memory_gib: float
    gpus: int = 0
    gpu: str = ""


# The node types the cluster files may name, as their providers list them. A file naming another
# type fails until it is added here.
NODE_TYPES = {
    "m5.xlarge": NodeType(4, 16),
    "m5.2xlarge": NodeType(8, 32),
    "m5.4xlarge": NodeType(16, 64),
    "g5.xlarge": NodeType(4, 16, 1, "A10G"),
    "g5.2xlarge": NodeType(8, 32, 1, "A10G"),
    "g5.4xlarge": NodeType(16, 64, 1, "A10G"),
    "g6.2xlarge": NodeType(8, 32, 1, "L4"),
    "g2-standard-8": NodeType(8, 32, 1, "L4"),  # GKE
}
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"  # set on every node by its cloud provider
# What DaemonSets ask on every node (CNI, kube-proxy, CSI node plugins, the NVIDIA device plugin, a
# log or metrics agent); `kubectl describe node` shows a real cluster's.
DAEMONSET_CPU, DAEMONSET_MEMORY = 0.5, 1 * GiB
AUTOSCALER_SIDECAR = ("500m", "512Mi")  # KubeRay's default requests for the autoscaler in the head pod


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


def image_key(m: re.Match) -> tuple:
    """What every image of a cluster must share: all but the -cpu/-gpu variant."""
    return m["repo"], m["raynas"], m["version"], m["python"]


def _docker_size(value: str) -> float:
    """A `docker run` size ('12g', '512m') in bytes."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([bkmg]?)", value.strip().lower())
    if m is None:
        raise ValueError(f"not a docker size: {value!r}")
    return float(m[1]) * {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30}[m[2]]


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
        if t.get("min_workers", 0) != 0:
            problems.append(f"{name}: min_workers must be 0: races scale the GPU workers up from zero, "
                            "and an idle GPU node costs money")
        if t.get("max_workers", 0) < 1:
            problems.append(f"{name}: max_workers must be at least 1")

    docker = config.get("docker", {})
    images = {"head": docker.get("head_image", docker.get("image"))}
    for name, t in types.items():
        if name != head_name:
            images[f"worker {name}"] = t.get("docker", {}).get("worker_image",
                                                               docker.get("worker_image", docker.get("image")))
    parsed = {role: IMAGE.match(image or "") for role, image in images.items()}
    for role, m in parsed.items():
        if m is None:
            problems.append(f"{role} image {images[role]!r} is not a raynas image: {IMAGE_FORM}")
        elif m["version"].split(".")[:2] != RAY_MAJOR_MINOR:
            problems.append(f"{role} image has Ray version {m['version']}, the installed Ray is {ray.__version__}")
        elif role.removeprefix("worker ") in gpu_types and m["variant"] != "gpu":
            problems.append(f"{role} image {images[role]!r} is not a -gpu image")
    keys = {image_key(m) for m in parsed.values() if m}
    if len(keys) > 1:
        problems.append("head and worker images must have the same tag apart from -cpu/-gpu: "
                        f"{sorted(images.values())}")
    versions = {m["version"] for m in parsed.values() if m}

    run_options = [" ".join(o.split()) for o in docker.get("run_options", [])]
    if not any(re.fullmatch(r"(?:-e|--env)[ =]RAY_AUTH_MODE=token", o) for o in run_options):
        problems.append("no `--env RAY_AUTH_MODE=token` in the docker run options: without token auth, "
                        "anyone who reaches the dashboard port can run code on the cluster")
    if not any(str(remote).rstrip("/").endswith(".ray/auth_token") for remote in config.get("file_mounts", {})):
        problems.append("token auth: no file_mounts entry copies ~/.ray/auth_token to the nodes")

    for name, t in types.items():
        role = "head" if name == head_name else "worker"
        instance = t.get("node_config", {}).get("InstanceType")
        node = NODE_TYPES.get(instance)
        if node is None:
            problems.append(f"{name}: InstanceType {instance!r} is not in this test's table of node types")
        else:
            # strings here are Ray's validation's to refuse
            resources = {k: v for k, v in t.get("resources", {}).items() if isinstance(v, (int, float))}
            if resources.get("CPU", 0) > node.vcpus:
                problems.append(f"{name}: resources CPU {resources['CPU']} is more than the {node.vcpus} vCPUs "
                                f"of {instance}")
            if resources.get("GPU", 0) > node.gpus:
                problems.append(f"{name}: resources GPU {resources['GPU']} is more than the {node.gpus} GPUs "
                                f"of {instance}")
        options = docker.get("run_options", []) + docker.get(f"{role}_run_options", [])
        sizes = [o.split("=", 1)[1] for o in options if o.startswith("--shm-size=")]
        if not sizes:
            problems.append(f"no --shm-size in the {role}'s docker run options: Docker's 64 MB /dev/shm "
                            "is too small for Ray's object store")
        elif node is not None:
            shm = _docker_size(sizes[-1])
            if shm < OBJECT_STORE_SHARE * node.memory_gib * GiB:
                problems.append(f"{name}: --shm-size={sizes[-1]} is below the object store "
                                f"({OBJECT_STORE_SHARE:.0%} of the {node.memory_gib:g} GiB of {instance})")
            elif shm > node.memory_gib * GiB / 2:
                problems.append(f"{name}: --shm-size={sizes[-1]} is more than half the memory of {instance}")

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
    if project_mounts and ".gitignore" not in config.get("rsync_filter", []):
        problems.append("rsync_filter must list .gitignore, else .venv and build outputs are uploaded")
    commands = [c for key in ("setup_commands", "head_setup_commands", "worker_setup_commands")
                for c in config.get(key, [])]
    for cmd in commands:
        if re.search(r"\bpip3? install\b.*\btorch(vision)?\b", cmd):
            problems.append(f"a setup command pip-installs torch on every node start, which the image has: {cmd!r}")
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


def reserved_by_node(node: NodeType) -> tuple[float, float]:
    """CPUs and GiB of memory a managed Kubernetes node keeps from pods: the kubelet's and system's
    reservations (GKE's tiers; EKS reserves the same CPU and less memory) and the eviction threshold."""
    cpu_shares = [0.06, 0.01, 0.005, 0.005] + [0.0025] * max(0, node.vcpus - 4)
    cpu = sum(cpu_shares[:node.vcpus])
    memory, left = 0.1, node.memory_gib
    for size, share in [(4, 0.25), (4, 0.20), (8, 0.10), (112, 0.06), (float("inf"), 0.02)]:
        memory += min(left, size) * share
        left -= min(left, size)
    return cpu, memory


def room_on_node(node: NodeType) -> tuple[float, float]:
    """CPUs and bytes of memory left for a pod of ours on an otherwise empty node of this type."""
    cpu, memory_gib = reserved_by_node(node)
    return node.vcpus - cpu - DAEMONSET_CPU, (node.memory_gib - memory_gib) * GiB - DAEMONSET_MEMORY


def pod_requests(pod: dict, sidecars=()) -> tuple[float, float, float]:
    """CPU, memory (bytes) and GPUs the scheduler reserves for a pod: its containers' requests (a
    limit alone is also the request) added up, or its largest init container's if that is larger."""
    def ask(container, key):
        resources = container.get("resources", {})
        return quantity(resources.get("requests", {}).get(key, resources.get("limits", {}).get(key, 0)))

    containers = list(pod.get("containers", [])) + list(sidecars)
    inits = pod.get("initContainers", [])
    cpu, memory = (max(sum(ask(c, k) for c in containers), max((ask(c, k) for c in inits), default=0))
                   for k in ("cpu", "memory"))
    return cpu, memory, sum(ask(c, "nvidia.com/gpu") for c in containers)


def node_fit_problems(label: str, pod: dict, sidecars=()) -> list[str]:
    """The pod names its node type with a nodeSelector, and fits one of those nodes."""
    instance = pod.get("nodeSelector", {}).get(INSTANCE_TYPE_LABEL)
    if instance is None:
        return [f"{label}: no nodeSelector on {INSTANCE_TYPE_LABEL}: nothing says which node type its "
                "requests are sized for"]
    node = NODE_TYPES.get(instance)
    if node is None:
        return [f"{label}: node type {instance!r} is not in this test's table of node types"]
    problems = []
    cpu, memory, gpus = pod_requests(pod, sidecars)
    room_cpu, room_memory = room_on_node(node)
    if cpu > room_cpu or memory > room_memory:
        problems.append(f"{label}: asks {cpu:g} CPU and {memory / GiB:.1f} GiB, which does not fit on {instance} nodes "
                        f"({room_cpu:.2f} CPU and {room_memory / GiB:.1f} GiB left after the system, the kubelet "
                        "and DaemonSets)")
    if gpus > node.gpus:
        problems.append(f"{label}: asks {gpus:g} GPU, {instance} nodes have {node.gpus}")
    return problems


def cluster_spec_problems(label: str, spec: dict, pvcs: dict) -> tuple[list[str], set]:
    """Problems of one Ray cluster spec; also the paths where the shared claim is mounted everywhere."""
    problems = []
    autoscaler = spec.get("autoscalerOptions", {})
    parts = [("RayClusterSpec", spec), ("HeadGroupSpec", spec.get("headGroupSpec", {})),
             ("AutoscalerOptions", autoscaler), ("AuthOptions", spec.get("authOptions", {}))]
    parts += [("WorkerGroupSpec", g) for g in spec.get("workerGroupSpecs", [])]
    for api_type, part in parts:
        if unknown := sorted(set(part) - KUBERAY_FIELDS[api_type]):
            problems.append(f"{label}: unknown {api_type} fields {unknown}")
    version = str(spec.get("rayVersion", ""))
    if not isinstance(spec.get("rayVersion"), str) or version.split(".")[:2] != RAY_MAJOR_MINOR:
        problems.append(f"{label}: rayVersion {spec.get('rayVersion')!r} must be a string with the installed "
                        f"Ray's version {ray.__version__} (at least its major.minor)")
    if spec.get("enableInTreeAutoscaling") is not True:
        problems.append(f"{label}: enableInTreeAutoscaling must be true: the GPU group scales up from zero")
    if autoscaler.get("version") != "v2":
        problems.append(f"{label}: autoscalerOptions needs version: v2")
    if spec.get("authOptions", {}).get("mode") != "token":
        problems.append(f"{label}: authOptions needs mode: token, else anyone who reaches the dashboard "
                        "port can run code on the cluster")
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

    images = {}  # group name -> the parsed image of its Ray container
    keys = set()
    for name, group in all_groups:
        pod = group.get("template", {}).get("spec", {})
        for container in pod.get("initContainers", []) + (pod.get("containers") or [{}]):
            image = container.get("image", "")
            m = IMAGE.match(image)
            if m is None:
                problems.append(f"{label} {name}: image {image!r} is not a raynas image: {IMAGE_FORM}")
                continue
            keys.add(image_key(m))
            if m["version"] != version:
                problems.append(f"{label} {name}: image {image} does not have rayVersion {version}")
            if container is (pod.get("containers") or [{}])[0]:
                images[name] = m
    if len(keys) > 1:
        problems.append(f"{label}: the images must have the same tag apart from -cpu/-gpu")

    gpu_groups = []
    for g in groups:
        containers = g.get("template", {}).get("spec", {}).get("containers") or [{}]
        limits = containers[0].get("resources", {}).get("limits", {})
        if quantity(limits.get("nvidia.com/gpu", 0)) >= 1:
            gpu_groups.append(g)
    if not gpu_groups:
        problems.append(f"{label}: no worker group with an nvidia.com/gpu limit")
    for g in gpu_groups:
        name = f"group {g.get('groupName')}"
        tolerations = g.get("template", {}).get("spec", {}).get("tolerations", [])
        if not any(t.get("key") == "nvidia.com/gpu" for t in tolerations):
            problems.append(f"{label} {name}: no toleration for the nvidia.com/gpu taint of GPU nodes")
        if name in images and images[name]["variant"] != "gpu":
            problems.append(f"{label} {name}: a GPU group needs a -gpu image")
        lo, n, hi = g.get("minReplicas", 0), g.get("replicas", 0), g.get("maxReplicas", 0)
        if lo != 0:
            problems.append(f"{label} {name}: minReplicas must be 0: races scale the GPU group up from zero, "
                            "and an idle GPU node costs money")
        if not (0 <= n <= hi and hi >= 1):
            problems.append(f"{label} {name}: needs 0 <= replicas <= maxReplicas and maxReplicas >= 1 "
                            f"(got {n}, {hi})")

    sidecar = {"resources": autoscaler.get("resources") or {"requests": dict(zip(("cpu", "memory"),
                                                                              AUTOSCALER_SIDECAR))}}
    for name, group in all_groups:
        pod = group.get("template", {}).get("spec", {})
        on_head = name == "head" and spec.get("enableInTreeAutoscaling") is True
        problems += node_fit_problems(f"{label} {name}", pod, [sidecar] if on_head else [])

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
    shared_paths = {path for _, path in shared}
    problems += shared_folder_problems(label, head, shared_paths)
    return problems, shared_paths


def shared_folder_problems(label: str, head: dict, shared_paths: set) -> list[str]:
    """An init container of the head makes home/ and storage/ on the shared volume and gives them to the
    images' `ray` user (uid 1000, gid 100) before Ray starts."""
    for container in head.get("template", {}).get("spec", {}).get("initContainers", []):
        script = " ".join(container.get("command", []) + container.get("args", []))
        mounted = {m.get("mountPath") for m in container.get("volumeMounts", [])}
        for path in shared_paths & mounted:
            folders = [f"{path.rstrip('/')}/{d}" for d in ("home", "storage")]
            if re.search(r"\bmkdir -p\b", script) and "chown 1000:100" in script and all(f in script for f in folders):
                return []
    return [f"{label}: no init container on the head makes home/ and storage/ on the shared volume "
            "(mkdir -p, chown 1000:100)"]


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
    if installing := sorted(INSTALLING_FIELDS & set(env)):
        problems.append(f"{label}: runtimeEnvYAML installs packages at job start ({installing}), which the "
                        "raynas images already have")
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


def test_runtime_env_installs_the_dependencies_of_pyproject(files):
    """The runtime environment for stock rayproject/ray images installs what the raynas images have."""
    tomllib = pytest.importorskip("tomllib")
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    not_ray = sorted(_requirement_key(r) for r in declared if not re.match(r"ray\b", r.strip().lower()))

    envs = docs_of(files, "runtime_env")
    assert envs
    for env in envs:
        assert sorted(_requirement_key(r) for r in env.get("pip", [])) == not_ray, \
            "the runtime_env pip list must be pyproject.toml's dependencies without Ray (the image's Ray stays)"


def _all_runtime_envs(files):
    return docs_of(files, "runtime_env") + [yaml.safe_load(d["spec"]["runtimeEnvYAML"])
                                           for d in docs_of(files, "kubernetes") if d["kind"] == "RayJob"]


def runtime_env_problems(env: dict) -> list[str]:
    """A runtime environment that installs packages gives Ray time enough to do it."""
    if not INSTALLING_FIELDS & set(env):
        return []
    timeout = (env.get("config") or {}).get("setup_timeout_seconds", SETUP_TIMEOUT_DEFAULT_S)
    if timeout <= SETUP_TIMEOUT_DEFAULT_S:
        return [f"a runtime_env that installs packages (torch: several GB) needs config.setup_timeout_seconds "
                f"above Ray's default {SETUP_TIMEOUT_DEFAULT_S} s (got {timeout})"]
    return []


def test_runtime_envs_that_install_packages_have_time_to(files):
    envs = _all_runtime_envs(files)
    assert any(INSTALLING_FIELDS & set(e) for e in envs), "no runtime_env installs packages: nothing checked"
    for env in envs:
        assert runtime_env_problems(env) == []
    assert runtime_env_problems({"pip": ["torch"]}), "the default timeout must be refused"
    assert runtime_env_problems({"pip": ["torch"], "config": {"setup_timeout_seconds": 600}})


def test_runtime_envs_agree_on_the_environment_variables(files):
    envs = _all_runtime_envs(files)
    assert len(envs) >= 2
    assert all(e.get("env_vars") == envs[0].get("env_vars") for e in envs), "the runtime environments drifted apart"


def test_rayjob_entrypoints_name_scripts_that_exist(files):
    scripts = {shlex.split(d["spec"]["entrypoint"])[1] for d in docs_of(files, "kubernetes") if d["kind"] == "RayJob"}
    missing = sorted(s for s in scripts if not (ROOT / s).is_file())
    assert scripts and not missing, f"RayJob entrypoints name scripts that do not exist: {missing}"


def _head_type(config):
    return config["available_node_types"][config["head_node_type"]]


def _gpu_type(config):
    head = config["head_node_type"]
    return next(t for n, t in config["available_node_types"].items() if n != head and t["resources"].get("GPU"))


def _without_option(config, text):
    config["docker"]["run_options"] = [o for o in config["docker"]["run_options"] if text not in o]


LAUNCHER_BREAKAGES = {
    "typo in a node type field": (lambda c: _gpu_type(c).update(min_worker=1), "ray validation"),
    "more minimum workers than max_workers": (lambda c: _gpu_type(c).update(min_workers=5), "ray validation"),
    "resources given as strings": (lambda c: _head_type(c).update(resources={"CPU": "0"}), "ray validation"),
    "trials allowed on the head": (lambda c: _head_type(c).update(resources={}), "CPU: 0"),
    "GPU workers kept while idle": (lambda c: _gpu_type(c).update(min_workers=1), "min_workers"),
    "an old Ray image": (lambda c: c["docker"].update(
        worker_image="ghcr.io/your-org/raynas:0.1.0-ray2.9.0-py311-gpu"), "Ray version"),
    "a stock Ray image": (lambda c: c["docker"].update(head_image="rayproject/ray:2.60.0-py311"),
                          "not a raynas image"),
    "head and workers of different builds": (lambda c: c["docker"].update(
        head_image=c["docker"]["head_image"].replace(":0.1.0-", ":0.0.9-")), "same tag"),
    "the CPU image on GPU workers": (lambda c: c["docker"].update(
        worker_image=c["docker"]["worker_image"].replace("-gpu", "-cpu")), "-gpu image"),
    "more GPUs than the node has": (lambda c: _gpu_type(c)["resources"].update(GPU=2), "GPU 2 is more"),
    "more CPUs than the node has": (lambda c: _gpu_type(c)["resources"].update(CPU=16), "vCPUs"),
    "a node type nobody checked": (lambda c: _gpu_type(c)["node_config"].update(InstanceType="p9.mega"),
                                   "table of node types"),
    "no shm size for workers": (lambda c: c["docker"].update(worker_run_options=[]), "--shm-size"),
    "shm smaller than the object store": (lambda c: c["docker"].update(worker_run_options=["--shm-size=2g"]),
                                          "below the object store"),
    "no token auth": (lambda c: _without_option(c, "RAY_AUTH_MODE"), "RAY_AUTH_MODE=token"),
    "token not on the nodes": (lambda c: c.update(file_mounts={}), "auth_token"),
    "no shared storage in the container": (lambda c: _without_option(c, "/mnt/"), "shared storage"),
    "shared storage never mounted": (lambda c: c.update(initialization_commands=[]), "mounts the shared storage"),
    "torch installed at every start": (lambda c: c.update(setup_commands=["pip install torch torchvision"]),
                                       "pip-installs torch"),
    "pip replaces the image's Ray": (lambda c: c.update(setup_commands=['pip install "ray[default]==3.0.0"']),
                                     "pins ray"),
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


def _head_pod(docs):
    return _job_cluster(docs)["headGroupSpec"]["template"]["spec"]


def _set_requests(pod, **requests):
    resources = pod["containers"][0]["resources"]
    resources["requests"].update(requests)
    resources["limits"].update(requests)


KUBERAY_BREAKAGES = {
    "misspelt worker group field": (lambda d: _job_cluster(d)["workerGroupSpecs"][0].update(maxReplica=4),
                                    "unknown WorkerGroupSpec fields"),
    "misspelt RayJob field": (lambda d: _by_kind(d, "RayJob")["spec"].update(shutdownAfterJobFinish=True),
                              "unknown RayJobSpec fields"),
    "misspelt authOptions field": (lambda d: _job_cluster(d)["authOptions"].update(mod="token"),
                                   "unknown AuthOptions fields"),
    "wrong apiVersion": (lambda d: _by_kind(d, "RayJob").update(apiVersion="ray.io/v1alpha1"), "apiVersion"),
    "head num-cpus as a number": (lambda d: _job_cluster(d)["headGroupSpec"]["rayStartParams"].update({"num-cpus": 0}),
                                  "num-cpus"),
    "a rayStartParams value not a string": (
        lambda d: _job_cluster(d)["workerGroupSpecs"][0]["rayStartParams"].update({"num-gpus": 1}), "must be a string"),
    "an old rayVersion": (lambda d: _job_cluster(d).update(rayVersion="2.9.0"), "rayVersion"),
    "worker image of another Ray": (lambda d: _worker_pod(d)["containers"][0].update(
        image="ghcr.io/your-org/raynas:0.1.0-ray2.59.0-py311-gpu"), "does not have rayVersion"),
    "a stock Ray image on the workers": (lambda d: _worker_pod(d)["containers"][0].update(
        image="rayproject/ray:2.60.0-py311-gpu"), "not a raynas image"),
    "head and workers of different builds": (lambda d: _worker_pod(d)["containers"][0].update(
        image="ghcr.io/other/raynas:0.1.0-ray2.60.0-py311-gpu"), "same tag"),
    "the CPU image on GPU workers": (lambda d: _worker_pod(d)["containers"][0].update(
        image="ghcr.io/your-org/raynas:0.1.0-ray2.60.0-py311-cpu"), "-gpu image"),
    "no GPU limit": (lambda d: _worker_pod(d)["containers"][0]["resources"]["limits"].pop("nvidia.com/gpu"),
                     "nvidia.com/gpu limit"),
    "no GPU toleration": (lambda d: _worker_pod(d).update(tolerations=[]), "toleration"),
    "GPU pods kept while idle": (lambda d: _job_cluster(d)["workerGroupSpecs"][0].update(minReplicas=1),
                                 "minReplicas must be 0"),
    "the old GPU pod size, too big for 8 vCPUs": (lambda d: _set_requests(_worker_pod(d), cpu="8", memory="48Gi"),
                                                  "does not fit on g5.2xlarge nodes"),
    "GPU pod memory without headroom": (lambda d: _set_requests(_worker_pod(d), memory="31Gi"), "does not fit"),
    "head without room for the autoscaler": (lambda d: _set_requests(_head_pod(d), cpu="7"), "does not fit"),
    "GPU pods on CPU nodes": (lambda d: _worker_pod(d)["nodeSelector"].update(
        {INSTANCE_TYPE_LABEL: "m5.2xlarge"}), "m5.2xlarge nodes have 0"),
    "GPU pods anywhere": (lambda d: _worker_pod(d).pop("nodeSelector"), "nodeSelector"),
    "a node type nobody checked": (lambda d: _worker_pod(d)["nodeSelector"].update(
        {INSTANCE_TYPE_LABEL: "p9.mega"}), "table of node types"),
    "autoscaler v1": (lambda d: _job_cluster(d)["autoscalerOptions"].pop("version"), "version: v2"),
    "no autoscaler": (lambda d: _job_cluster(d).update(enableInTreeAutoscaling=False), "enableInTreeAutoscaling"),
    "no token auth": (lambda d: _job_cluster(d).pop("authOptions"), "authOptions"),
    "shared folders never made": (lambda d: _head_pod(d).update(initContainers=[]), "init container"),
    "shared folders left to root": (lambda d: _head_pod(d)["initContainers"][0].update(
        command=["sh", "-c", "mkdir -p /mnt/raynas/home /mnt/raynas/storage"]), "chown 1000:100"),
    "init container of another image": (lambda d: _head_pod(d)["initContainers"][0].update(image="busybox:1.36"),
                                        "not a raynas image"),
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
    "packages installed at job start": (lambda d: _by_kind(d, "RayJob")["spec"].update(
        runtimeEnvYAML="working_dir: https://example.com/raynas.zip\npip: [torch]\n"), "installs packages"),
}


@pytest.mark.parametrize("breakage", KUBERAY_BREAKAGES)
def test_broken_kuberay_manifests_are_caught(files, breakage):
    mutate, expected = KUBERAY_BREAKAGES[breakage]
    broken = copy.deepcopy(docs_of(files, "kubernetes"))
    mutate(broken)
    problems = kuberay_problems(broken)
    assert any(expected in p for p in problems), problems


def test_node_room_matches_known_allocatable_figures():
    # GKE's documented reservations for a 32 GB node: 3.56 GiB and 0.09 CPU, plus the 100 MiB eviction
    # threshold; a g5.2xlarge pod of 7 CPU and 26 GiB fits, one of 8 CPU or 30 GiB does not
    cpu, memory = reserved_by_node(NODE_TYPES["g5.2xlarge"])
    assert cpu == pytest.approx(0.09) and memory == pytest.approx(3.66)
    room_cpu, room_memory = room_on_node(NODE_TYPES["g5.2xlarge"])
    assert 7 <= room_cpu < 8 and 26 * GiB <= room_memory < 30 * GiB


def test_pod_requests_count_sidecars_and_init_containers():
    pod = {"containers": [{"resources": {"requests": {"cpu": "4", "memory": "16Gi"}}},
                          {"resources": {"limits": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"}}}],
           "initContainers": [{"resources": {"requests": {"cpu": "8", "memory": "1Gi"}}}]}
    sidecar = {"resources": {"requests": {"cpu": "500m", "memory": "512Mi"}}}
    assert pod_requests(pod, [sidecar]) == (8, 17.5 * GiB, 1)


def test_quantities():
    assert quantity("16Gi") == 16 * 2**30
    assert quantity("500m") == 0.5
    assert quantity(1) == 1
    with pytest.raises(ValueError):
        quantity("16 GB")
