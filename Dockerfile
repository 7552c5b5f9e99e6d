# The raynas image for GPU nodes; Dockerfile.cpu is its twin for CPU nodes (the head). Every
# cluster file in cluster/ runs these two, so that no node pip-installs torch when a job starts.
# Build and push from the repository root (docs/cluster.md):
#   docker build -t ghcr.io/your-org/raynas:0.1.0-ray2.60.0-py311-gpu .
#   docker push ghcr.io/your-org/raynas:0.1.0-ray2.60.0-py311-gpu
# The versions below are those of constraints/local.txt, so that a cluster runs what the tests ran;
# tests/test_image.py keeps them equal.
ARG RAY_VERSION=2.60.0
FROM rayproject/ray:${RAY_VERSION}-py311-gpu

ARG RAY_VERSION
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1
# The CUDA 13.0 build, the same one PyPI serves for this torch on Linux. Its wheels carry their own
# CUDA libraries, so the image's CUDA does not matter; the node's NVIDIA driver must support
# CUDA 13.0 (driver 580 or newer).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu130

# torch in a layer of its own: the largest one, and the one that changes least often.
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX}" \
        "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"

WORKDIR /home/ray/raynas
COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users raynas ./raynas
# The extras a cluster uses: `raynas serve` (Ray Serve) and `raynas export --format onnx`. Ray, torch
# and torchvision are named with their versions so that pip keeps the ones already installed.
RUN pip install --no-cache-dir "/home/ray/raynas[serve,onnx]" \
        "ray[default,tune,data,serve]==${RAY_VERSION}" \
        "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}" \
    && python -c "import ray, raynas, torch; assert ray.__version__ == '${RAY_VERSION}', ray.__version__"

WORKDIR /home/ray
