"""``raynas serve``: one Ray Serve app for the module, asked over real HTTP: predictions equal
the network's own, bad uploads get their own JSON 4xx, and the replica outlives them."""

from __future__ import annotations

import http.client
import io
import json
import socket
import struct
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("ray.serve")

import raynas  # noqa: E402
from raynas.cli import main  # noqa: E402
from raynas.data import DatasetStore  # noqa: E402
from raynas.errors import RaynasError  # noqa: E402
from raynas.model.serve import start_server, stop_server  # noqa: E402

UPLOAD_MB = 0.25  # small, so that the oversized uploads are quick to send


@pytest.fixture(scope="module")
def _serving():
    """The module's server (started by the first test that needs it), stopped after the module;
    Ray stays up for the other tests."""
    started = {}
    yield started
    if started:
        stop_server()


@pytest.fixture
def url(ray_session, trained_run, _serving):
    if "url" not in _serving:
        _serving["url"] = start_server(trained_run, port=free_port(), max_upload_mb=UPLOAD_MB)
    return _serving["url"]


@pytest.fixture(scope="module")
def test_images(suite_home):
    """Test-split images of glyph-digits (uint8, 1 x 32 x 32) as PNG bytes, two of each class."""
    x, y = DatasetStore(suite_home).load("glyph-digits").split("test")
    picked = [i for c in np.unique(y) for i in np.flatnonzero(y == c)[:2]]
    return [png(x[i, 0]) for i in picked]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's header)."""
    data = bytearray(png(np.zeros((1, 1), np.uint8)))
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    data[ihdr:ihdr + 8] = struct.pack(">II", width, height)
    data[ihdr + 13:ihdr + 17] = struct.pack(">I", zlib.crc32(bytes(data[ihdr - 4:ihdr + 13])))
    return bytes(data)


def request(url: str, method: str, path: str, body=None, headers=None, chunked=False) -> tuple[int, dict]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        conn.close()


def post(url: str, body: bytes, path: str = "/predict", **kwargs) -> tuple[int, dict]:
    return request(url, "POST", path, body, **kwargs)


def multipart(field: str, filename: str, data: bytes) -> tuple[bytes, dict]:
    boundary = "raynas-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def expected(trained_run, images: list[bytes]) -> tuple[list[int], np.ndarray]:
    network, preprocess = raynas.load_model(trained_run)
    with torch.no_grad():
        p = torch.softmax(network(torch.stack([preprocess(b) for b in images])), dim=1).numpy()
    return list(p.argmax(1)), p


def test_predictions_are_the_networks_own(url, trained_run, test_images):
    want, p = expected(trained_run, test_images)
    assert len(set(want)) > 1  # a model that tells classes apart, so the comparison means something
    for image, index, probs in zip(test_images, want, p):
        status, answer = post(url, image)
        assert status == 200
        assert answer["index"] == index and answer["class"] == str(index)  # glyph-digits' classes are "0".."9"
        shown = answer["probabilities"]
        assert len(shown) == 10 and list(shown)[0] == answer["class"]  # every class, most likely first
        assert list(shown.values()) == sorted(shown.values(), reverse=True)
        assert [shown[str(c)] for c in range(10)] == pytest.approx(probs, abs=1e-5)


def test_a_multipart_upload_and_top_k(url, trained_run, test_images):
    (want,), _ = expected(trained_run, test_images[:1])
    body, headers = multipart("file", "digit.png", test_images[0])
    status, answer = post(url, body, "/predict?top_k=3", headers=headers)
    assert status == 200 and answer["index"] == want and len(answer["probabilities"]) == 3
    status, answer = post(url, test_images[0], "/predict?top_k=99")
    assert status == 200 and len(answer["probabilities"]) == 10


def test_healthz_describes_the_model(url):
    status, answer = request(url, "GET", "/healthz")
    assert status == 200 and answer["status"] == "ok"
    model = answer["model"]
    assert model["dataset"] == "glyph-digits" and model["classes"] == [str(c) for c in range(10)]
    assert model["architecture"] == "discrete" and model["input_shape"] == [1, 16, 16]
    assert answer["limits"]["max_upload_bytes"] == int(UPLOAD_MB * 2**20)


def test_bad_requests_get_json_errors_and_the_replica_lives_on(url, trained_run, test_images):
    limit = int(UPLOAD_MB * 2**20)
    wrong_field, wrong_headers = multipart("image", "digit.png", test_images[0])
    cases = [
        (post(url, b"just some text, not an image"), 415),
        (post(url, b""), 400),
        (post(url, test_images[0][:60]), 400),  # a truncated PNG: its header reads, its pixels do not
        (post(url, wrong_field, headers=wrong_headers), 400),
        (post(url, test_images[0], "/predict?top_k=0"), 400),
        (post(url, b"\0" * (limit + 1)), 413),  # refused by its Content-Length
        (post(url, iter([b"\0" * 65536] * (limit // 65536 + 1)), chunked=True), 413),  # no length: counted
        (post(url, png_claiming(20000, 20000)), 413),  # beyond PIL's own bomb bound
        (post(url, png_claiming(5000, 5000)), 413),  # 25 megapixels: beyond the server's bound
        (request(url, "GET", "/predict"), 405),
        (request(url, "GET", "/nowhere"), 404),
    ]
    for (status, answer), want in cases:
        assert status == want, answer
        assert answer["error"] and answer["fix"]
    (index,), _ = expected(trained_run, test_images[:1])
    status, answer = post(url, test_images[0])
    assert status == 200 and answer["index"] == index


def test_concurrent_requests_share_forward_passes_and_bad_ones_fail_alone(url, trained_run, test_images):
    want, _ = expected(trained_run, test_images)
    bodies = [(i, test_images[i % len(test_images)]) for i in range(48)]
    bodies += [(None, b"not an image")] * 8 + [(None, png_claiming(20000, 20000))] * 4
    before = request(url, "GET", "/healthz")[1]["served"]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda ib: post(url, ib[1]), bodies))
    after = request(url, "GET", "/healthz")[1]["served"]
    for (i, _), (status, answer) in zip(bodies, answers):
        if i is None:
            assert status in (413, 415), answer
        else:
            assert status == 200 and answer["index"] == want[i % len(test_images)]
    predictions, batches = (after[k] - before[k] for k in ("predictions", "batches"))
    assert predictions == 48 and batches < predictions  # some requests shared a forward pass


def test_start_server_refuses_bad_settings_before_serving(trained_run, tmp_path):
    for kwargs, words in (({"port": 0}, "out of range"), ({"replicas": 0}, "at least 1"),
                          ({"max_upload_mb": 0}, "positive"), ({"gpus_per_replica": -1}, "negative")):
        with pytest.raises(RaynasError, match=words):
            start_server(trained_run, **kwargs)
    with pytest.raises(RaynasError, match="not found"):
        start_server(tmp_path / "missing", port=free_port())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(RaynasError, match="cannot serve on") as exc:
            start_server(trained_run, port=taken.getsockname()[1])
        assert "another --port" in exc.value.fix


def test_the_command_fails_clearly_on_bad_input(trained_run, tmp_path, capsys):
    (tmp_path / "searched").mkdir()
    (tmp_path / "searched" / "genotype.json").write_text("{}")
    for argv, words in ((["serve", str(tmp_path / "searched")], "no trained model"),
                        (["serve", str(trained_run), "--port", "70000"], "out of range"),
                        (["serve", str(trained_run), "--replicas", "0"], "at least 1")):
        assert main(argv) == 1
        assert words in capsys.readouterr().err
    assert main(["serve", str(trained_run), "--max-upload-mb", "-1", "--json"]) == 1
    answer = json.loads(capsys.readouterr().out)
    assert "max-upload-mb" in answer["error"] and answer["fix"]


def test_without_ray_serve_the_command_says_how_to_install_it(trained_run, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "raynas.model.serve", None)  # as if its imports failed
    assert main(["serve", str(trained_run)]) == 1
    assert "pip install 'raynas[serve]'" in capsys.readouterr().err


@pytest.mark.slow  # ~10-20 s; the default run keeps the same path's cheaper tests
def test_a_replica_rebuilds_a_multi_head_zoo_supernet_from_what_the_deployment_ships(ray_session, suite_home,
                                                                                      tmp_path, test_images):
    """The weights travel with the deployment (not the path): a zoo supernet's chosen head must survive."""
    from raynas.model.load import load_card_and_network
    from raynas.model.serve import ModelServer
    from raynas.space.config import SpaceConfig
    from raynas.space.multihead import create_multihead_supernet
    from raynas.storage import Storage
    from raynas.zoo.manifest import ZooManifest
    from raynas.zoo.store import Zoo, state_to_numpy

    store, storage = DatasetStore(suite_home), str(tmp_path / "shared")
    sources = ("glyph-digits", "glyph-upper")
    space = SpaceConfig(in_channels=1, num_classes=10, image_size=16, channels=4, cells=3)
    network = create_multihead_supernet(space, [store.info(s).num_classes for s in sources], seed=0)
    manifest = ZooManifest(name="mix", kind="multi", space=space.to_json(), algo="darts", epochs=1, val_acc=0.5,
                           sources=[{"name": s, "content_hash": store.info(s).content_hash,
                                     "classes": store.info(s).num_classes} for s in sources])
    Zoo(Storage(storage).child("zoo")).publish(manifest, state_to_numpy(network.state_dict()))

    model, card = load_card_and_network("zoo:mix", dataset="glyph-upper", home=suite_home, storage=storage)
    shipped = {k: v.detach().cpu() for k, v in model.network.state_dict().items()}
    server = ModelServer.func_or_class(card.to_json(), shipped, max_upload_bytes=1 << 20)
    x = server.decode(test_images[0], "a test image")
    (p,) = server.forward([x])
    with torch.no_grad():
        want = torch.softmax(model(x[None]), dim=1)[0].numpy()
    assert p.shape == (26,) and np.allclose(p, want, atol=1e-6)
    assert server.health()["model"]["dataset"] == "glyph-upper"
