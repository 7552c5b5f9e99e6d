"""Online inference: a trained model behind HTTP, as a Ray Serve deployment (``raynas serve``).

* ``POST /predict``: one image, as the raw request body or as the multipart form field
  ``file``. Answers ``{"class": NAME, "index": I, "probabilities": {NAME: P, ...}}``, where
  ``probabilities`` holds the ``top_k`` most likely classes, most likely first (``?top_k=N``;
  default 10, so every class of a dataset with at most 10).
* ``GET /healthz``: the model (architecture, dataset, classes, input), the replica's limits
  and how many predictions and forward passes it has served.

Each request is read (with a size limit) and decoded on its own, so a bad upload gets its own
4xx answer as JSON ``{"error": ..., "fix": ...}``; only decoded images are batched
(``@serve.batch``), so concurrent requests share one forward pass and never one failure.
This module imports Ray Serve: import it only when serving (``pip install 'raynas[serve]'``).
"""

from __future__ import annotations

import asyncio
import email.parser
import io
import json
import logging
import socket
import time
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

from raynas.errors import RaynasError
from raynas.model.artifact import ModelCard, network_from_state

APP_NAME = "raynas"
DEFAULT_PORT = 8000
DEFAULT_HOST = "127.0.0.1"
DEFAULT_MAX_UPLOAD_MB = 10.0
MAX_PIXELS = 4096 * 4096  # 16 megapixels per upload; a larger header is refused before decoding
MAX_BATCH_SIZE = 32
BATCH_WAIT_S = 0.005  # how long a request may wait for others to share its forward pass
DEFAULT_TOP_K = 10
UPLOAD_FIELD = "file"
READY_TIMEOUT_S = 60

logger = logging.getLogger("ray.serve")


class HttpProblem(Exception):
    """A request the server refuses: its status code and the JSON answer's error and fix."""

    def __init__(self, status: int, problem: str, fix: str | None = None):
        super().__init__(problem)
        self.status, self.problem, self.fix = status, problem, fix


def error_response(status: int, problem: str, fix: str | None) -> JSONResponse:
    return JSONResponse({"error": problem, "fix": fix}, status_code=status)


@serve.deployment(name="model", max_ongoing_requests=2 * MAX_BATCH_SIZE)  # enough to fill a batch
class ModelServer:
    """One replica: the network is built once, requests are checked and decoded one by one,
    forward passes are batched. The weights arrive with the deployment, so replicas on other
    nodes do not need the run directory."""

    def __init__(self, card: dict[str, Any], state: dict[str, torch.Tensor], max_upload_bytes: int,
                 max_pixels: int = MAX_PIXELS):
        import ray

        from raynas.threads import configure_threads

        configure_threads()  # the CPUs Ray gave this replica, not every core of its node
        self.device = torch.device("cuda" if ray.get_gpu_ids() else "cpu")
        self.card = ModelCard.from_json(card)
        self.network = network_from_state(self.card, state, "the served model", self.device)
        self.preprocess = self.card.preprocessing()
        self.max_upload_bytes = max_upload_bytes
        self.max_pixels = max_pixels
        self.predictions = 0
        self.batches = 0

    async def __call__(self, request: Request) -> JSONResponse:
        """Route a request; whatever goes wrong answers this request only, never ends the replica."""
        path, method = request.url.path.rstrip("/") or "/", request.method
        try:
            if path == "/predict":
                if method != "POST":
                    raise HttpProblem(405, f"{method} /predict: predictions take POST",
                                      "POST the image as the request body or as the form field 'file'")
                return JSONResponse(await self.predict(request))
            if path == "/healthz":
                if method not in ("GET", "HEAD"):
                    raise HttpProblem(405, f"{method} /healthz: health takes GET", "GET /healthz")
                return JSONResponse(self.health())
            raise HttpProblem(404, f"no such endpoint: {method} {request.url.path}",
                              "POST an image to /predict, or GET /healthz")
        except HttpProblem as exc:
            return error_response(exc.status, exc.problem, exc.fix)
        except RaynasError as exc:  # the image itself: unreadable or damaged
            return error_response(400, exc.problem, exc.fix)
        except Exception as exc:  # noqa: BLE001 - a bug must fail its request, not the replica
            logger.exception("raynas serve: request failed")
            return error_response(500, f"unexpected {type(exc).__name__}: {exc}",
                                  "this is a bug in raynas; the replica's log has the traceback, please report it")

    def health(self) -> dict[str, Any]:
        card = self.card
        return {"status": "ok",
                "model": {"architecture": card.architecture, "dataset": card.dataset.get("name"),
                          "classes": list(card.class_names), "num_classes": card.num_classes,
                          "input_shape": list(self.preprocess.input_shape), "metrics": card.metrics,
                          "source": card.source},
                "device": str(self.device),
                "limits": {"max_upload_bytes": self.max_upload_bytes, "max_pixels": self.max_pixels,
                           "max_batch_size": MAX_BATCH_SIZE},
                "served": {"predictions": self.predictions, "batches": self.batches}}

    async def predict(self, request: Request) -> dict[str, Any]:
        top_k = parse_top_k(request.query_params.get("top_k"), self.card.num_classes)
        body = await read_body(request, self.max_upload_bytes)
        image, name = upload_bytes(body, request.headers.get("content-type", ""))
        x = await asyncio.to_thread(self.decode, image, name)  # off the event loop: others keep arriving
        probabilities = await self.probabilities(x)
        order = np.argsort(-probabilities, kind="stable")[:top_k]
        names = self.card.class_names
        return {"class": names[order[0]], "index": int(order[0]),
                "probabilities": {names[i]: round(float(probabilities[i]), 6) for i in order}}

    def decode(self, data: bytes, name: str) -> torch.Tensor:
        """The network input of one upload; a refused image raises :class:`HttpProblem` or RaynasError."""
        check_image_header(data, name, self.max_pixels)
        stored = self.preprocess.stored_uint8(data, name, self.max_pixels)
        return self.preprocess.batch(stored[None])[0]

    @serve.batch(max_batch_size=MAX_BATCH_SIZE, batch_wait_timeout_s=BATCH_WAIT_S)
    async def probabilities(self, inputs: list[torch.Tensor]) -> list[np.ndarray]:
        return await asyncio.to_thread(self.forward, inputs)

    def forward(self, inputs: list[torch.Tensor]) -> list[np.ndarray]:
        with torch.inference_mode():
            logits = self.network(torch.stack(inputs).to(self.device))
            p = torch.softmax(logits.float(), dim=1).cpu().numpy()
        self.batches += 1
        self.predictions += len(inputs)
        return list(p)


def parse_top_k(text: str | None, num_classes: int) -> int:
    if text is None:
        return min(DEFAULT_TOP_K, num_classes)
    try:
        k = int(text)
    except ValueError:
        k = 0
    if k < 1:
        raise HttpProblem(400, f"top_k must be a whole number of at least 1, got {text[:40]!r}",
                          f"e.g. ?top_k=3 (this model has {num_classes} classes)")
    return min(k, num_classes)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it is known to exceed ``limit`` bytes: by its
    Content-Length before reading, else while reading (a chunked upload has none)."""
    too_large = f"more than the {limit / 2**20:g} MB this server takes"
    fix = ("send a smaller image (resize it; the model sees it small anyway), or restart the server with a "
           "higher --max-upload-mb")
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise HttpProblem(400, f"Content-Length is not a number: {declared[:40]!r}",
                              "send a valid HTTP request") from None
        if size > limit:
            raise HttpProblem(413, f"the upload is {size:,} bytes, {too_large}", fix)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HttpProblem(413, f"the upload is over {limit:,} bytes, {too_large}", fix)
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body:
        raise HttpProblem(400, "the request has no body (no image)",
                          "send the image file as the body (curl --data-binary @IMAGE) or as the form field "
                          f"'{UPLOAD_FIELD}' (curl -F {UPLOAD_FIELD}=@IMAGE)")
    return body


def upload_bytes(body: bytes, content_type: str) -> tuple[bytes, str]:
    """The image in a request body and a name for it in errors: the body itself, or the form
    field ``file`` of a multipart upload (read by the standard library's MIME parser)."""
    if not content_type.lower().startswith("multipart/"):
        return body, "the upload"
    form = email.parser.BytesParser().parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + body)
    if not form.get_boundary() or not form.is_multipart():
        raise HttpProblem(400, "a multipart upload without a boundary or parts",
                          f"let your HTTP client build the form (curl -F {UPLOAD_FIELD}=@IMAGE)")
    fields = []
    for part in form.get_payload():
        name = part.get_param("name", header="content-disposition")
        fields.append(str(name))
        if name == UPLOAD_FIELD:
            return part.get_payload(decode=True) or b"", f"the upload '{part.get_filename() or UPLOAD_FIELD}'"
    found = ", ".join(repr(f) for f in fields[:10]) or "none"
    raise HttpProblem(400, f"the form has no field '{UPLOAD_FIELD}' (fields: {found})",
                      f"send the image as the form field '{UPLOAD_FIELD}' (curl -F {UPLOAD_FIELD}=@IMAGE)")


def check_image_header(data: bytes, name: str, max_pixels: int) -> None:
    """Refuse non-images (415), damaged headers (400) and too many pixels (413) from the header
    alone, before a pixel is decoded: a small file may claim gigapixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
    except Image.DecompressionBombError:
        raise HttpProblem(413, f"{name} claims more than {Image.MAX_IMAGE_PIXELS or 0:,} pixels "
                          "(a decompression bomb?)", "send an ordinary image") from None
    except UnidentifiedImageError:
        raise HttpProblem(415, f"{name} is not an image format this server reads ({len(data):,} bytes)",
                          "send a PNG, JPEG, BMP, GIF, TIFF or WebP file") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise HttpProblem(400, f"cannot read {name}: {exc}", "send an undamaged image file") from None
    if width * height > max_pixels:
        raise HttpProblem(413, f"{name} is {width}x{height} pixels, more than the {max_pixels / 2**20:g} megapixels "
                          "this server decodes", "shrink it first (the model sees it small anyway)")


def start_server(source: str | Path, *, port: int = DEFAULT_PORT, host: str = DEFAULT_HOST, replicas: int = 1,
                 gpus_per_replica: float = 0, cpus_per_replica: float = 1, dataset: str | None = None,
                 home: str | Path | None = None, storage: str | None = None, address: str | None = None,
                 max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, max_pixels: int = MAX_PIXELS,
                 name: str = APP_NAME) -> str:
    """Serve the model of ``source`` (a run directory, a model directory or ``zoo:NAME`` with
    ``dataset``) and return its URL once it answers; Serve keeps running after the return,
    until :func:`stop_server`. Ray is started or joined as elsewhere in raynas (``address``).
    Everything a user can get wrong is checked before Serve starts, as a RaynasError."""
    from raynas.model.load import load_card_and_network
    from raynas.ray_session import cluster_address, ensure_ray

    check_options(port, replicas, gpus_per_replica, cpus_per_replica, max_upload_mb, max_pixels)
    network, card = load_card_and_network(source, dataset=dataset, home=home, storage=storage)
    state = {k: v.detach().cpu() for k, v in network.network.state_dict().items()}
    local = cluster_address(address) is None
    if local:
        check_port_free(host, port)
    ensure_ray(address)
    if local:
        check_resources(replicas, cpus_per_replica, gpus_per_replica)
    serve.start(http_options={"host": host, "port": port})
    if name in serve.status().applications:
        raise RaynasError(f"a Serve app named '{name}' already runs on this Ray cluster",
                          "stop it first (Ctrl-C the `raynas serve` that started it), or serve elsewhere")
    deployment = ModelServer.options(num_replicas=replicas,
                                     ray_actor_options={"num_cpus": cpus_per_replica, "num_gpus": gpus_per_replica})
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{port}"
    try:
        serve.run(deployment.bind(card.to_json(), state, int(max_upload_mb * 2**20), max_pixels),
                  name=name, route_prefix="/")
        if local:
            wait_until_healthy(url)
    except BaseException as exc:  # a half-started app (or an interrupted start) is taken down again
        stop_server(name)
        if isinstance(exc, RuntimeError):  # a replica failed to start (Serve retries first)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise RaynasError(f"the model server did not start: {first}",
                              "see the replica's log under the Ray session's logs/serve folder") from None
        raise
    return url


def stop_server(name: str = APP_NAME) -> None:
    """Delete the app, and shut Serve down when no other app uses it. Ray itself keeps running."""
    import ray
    from ray.serve.exceptions import RayServeException

    if not ray.is_initialized():
        return
    try:
        serve.delete(name)
        if not serve.status().applications:
            serve.shutdown()
    except RayServeException:
        pass  # Serve is not running


def check_options(port: int, replicas: int, gpus: float, cpus: float, max_upload_mb: float, max_pixels: int) -> None:
    if not 1 <= port <= 65535:
        raise RaynasError(f"port {port} is out of range", "choose a port from 1 to 65535, e.g. --port 8000")
    if replicas < 1:
        raise RaynasError(f"--replicas must be at least 1, got {replicas}", "serve with --replicas 1 or more")
    if gpus < 0 or cpus < 0:
        raise RaynasError(f"a replica cannot use negative resources (CPUs {cpus}, GPUs {gpus})",
                          "give --gpus-per-replica 0 or more")
    if not max_upload_mb > 0:
        raise RaynasError(f"--max-upload-mb must be positive, got {max_upload_mb}", "e.g. --max-upload-mb 10")
    if max_pixels < 1:
        raise RaynasError(f"max_pixels must be positive, got {max_pixels}")


def check_port_free(host: str, port: int) -> None:
    """Fail before Serve starts when the port is taken: Serve's proxy would fail on its own, later, in a log."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # connections closing in TIME_WAIT do not count
            probe.bind((host, port))
    except socket.gaierror as exc:
        raise RaynasError(f"cannot serve on host '{host}': {exc}",
                          "give an address of this machine, e.g. --host 127.0.0.1 (this machine only) or 0.0.0.0 (all)"
                          ) from None
    except OSError as exc:
        raise RaynasError(f"cannot serve on {host}:{port}: {exc.strerror or exc}",
                          "choose another --port, or stop what uses it (an earlier `raynas serve`?)") from None


def check_resources(replicas: int, cpus: float, gpus: float) -> None:
    """A local Ray lacking what the replicas need would leave Serve waiting forever."""
    import ray

    have = ray.cluster_resources()
    for what, each in (("CPU", cpus), ("GPU", gpus)):
        if each and replicas * each > have.get(what, 0):
            raise RaynasError(f"{replicas} replica(s) need {replicas * each:g} {what}s, "
                              f"this Ray has {have.get(what, 0):g}",
                              "serve fewer --replicas" + (" or fewer --gpus-per-replica" if what == "GPU" else ""))


def wait_until_healthy(url: str, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Serve reports the app running a moment before its HTTP proxy answers."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=5) as answer:
                json.load(answer)
                return
        except (OSError, ValueError) as exc:
            if time.monotonic() > deadline:
                raise RaynasError(f"the model server at {url} does not answer: {exc}",
                                  "see the Serve logs under the Ray session's logs/serve folder") from None
            time.sleep(0.2)
