"""Latency and load of ``medseg serve`` over HTTP on loopback, against the engine in-process.

Usage::

    python benchmarks/bench_serve.py [--engine universal|classical|PATH] [--seconds 60]
                                     [--sessions 20] [--threads N]

``--threads`` caps torch and BLAS threads of the server and of the in-process peer alike.

A real ``medseg serve`` process (the CLI, uvicorn, one worker) is started on a free port, on a
temporary folder of synthetic cases. Rows:

* **2D 256x256**: a positive click at the object's centre, then correction clicks by the
  CVPR rule (largest error component's distance maximum), each one HTTP request; p50/p95 of
  the round trip, the engine time the server reports, and their difference (transport:
  JSON, validation, run-length encoding, logging, HTTP). Goal: round trip <= 60 ms, transport
  <= 10 ms.
* **3D 128^3**: a sphere of radius 40 in a 128^3 volume (region of interest about 120^3); a
  box on the median slice, then correction clicks. Goal: <= 600 ms per interaction.
* The peer is the same engine driven in this process through :class:`MultiSession` with the
  same prompts, in a worker thread as the server runs its endpoints: masks must agree voxel
  for voxel (the HTTP mask is rebuilt from the compact updates alone). The same prompts are
  also timed on the main thread: on a loaded machine torch's intra-op threads can stall there
  for seconds, which a worker thread does not show, so only the worker-thread figure is the
  peer.
* **Load**: ``--sessions`` clients at once (threads, one session each on its own 2D case),
  sending correction clicks for ``--seconds``: throughput, p50/p95 round trip, errors (goal 0)
  and the server's peak resident memory (``VmHWM``).

``universal`` (the default) is the promptable model shipped inside the package, the engine
``medseg serve`` uses without ``--engine``.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from benchtools import cpu_model
from medseg.interactive.engine import load_engine
from medseg.interactive.multi import MultiSession
from medseg.interactive.simulate import error_click
from medseg.io import Image, read_image, write_image


def ball(shape: tuple[int, ...], centre: tuple[float, ...], radius: float) -> np.ndarray:
    grid = np.indices(shape, dtype=np.float32)
    return sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= radius**2


def make_case(shape: tuple[int, ...], radius: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A bright ball (texture, noise) on a darker smooth background; image and reference."""
    rng = np.random.default_rng(seed)
    centre = tuple(s / 2 + rng.uniform(-3, 3) for s in shape)
    ref = ball(shape, centre, radius)
    image = 60 + 50 * ref + rng.normal(0, 12, shape)
    return image.astype(np.float32), ref


def write_cases(root: Path, sessions: int) -> dict[str, np.ndarray]:
    """Cases ``d2_00..`` (256x256) and ``d3`` (128^3) in ``root``; returns references."""
    refs = {}
    for i in range(max(sessions, 1)):
        image, ref = make_case((256, 256), 50, i)
        write_image(Image.from_array(image[None], spacing=(0.8, 0.8)), root / f"d2_{i:02d}.nii.gz")
        refs[f"d2_{i:02d}"] = ref
    image, ref = make_case((128, 128, 128), 40, 99)
    write_image(Image.from_array(image[None], spacing=(1.0, 1.0, 1.0)), root / "d3.nii.gz")
    refs["d3"] = ref
    return refs


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(data: Path, out: Path, engine: str, sessions: int, threads: int | None):
    port = free_port()
    command = [
        sys.executable, "-c", "from medseg.cli.main import app; app()",
        "serve", str(data), "--engine", engine, "--port", str(port), "-o", str(out),
        "--max-sessions", str(sessions + 4), "--next", "first",
    ]  # fmt: skip
    if threads:
        command += ["--threads", str(threads)]
    process = subprocess.Popen(
        command,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/api/info", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(process.stdout.read().decode() if process.stdout else "server did not start")


def paste(labels: np.ndarray, update: dict) -> None:
    if update["box"]:
        box = tuple(slice(a, b) for a, b in update["box"])
        runs = np.asarray(update["rle"]).reshape(-1, 2)
        labels[box] = np.repeat(runs[:, 0], runs[:, 1]).reshape(labels[box].shape)


def first_prompt(ref: np.ndarray) -> dict:
    coords = np.argwhere(ref)
    if ref.ndim == 2:
        centre = coords.mean(0).round().astype(int).tolist()
        return {"kind": "click", "label": 1, "point": centre, "positive": True}
    z = int(np.median(coords[:, 0]))
    plane = np.argwhere(ref[z])
    return {
        "kind": "box",
        "label": 1,
        "lo": plane.min(0).tolist(),
        "hi": plane.max(0).tolist(),
        "axis": 0,
        "index": z,
    }


def run_case(client: httpx.Client, case_id: str, ref: np.ndarray, clicks: int, seed: int):
    """One simulated user on one case over HTTP: round trips (s), engine times (s), prompts,
    final labels."""
    rng = np.random.default_rng(seed)
    sid = client.post("/api/sessions", json={"case_id": case_id}).json()["session_id"]
    labels = np.zeros(ref.shape, dtype=np.uint8)
    prompts = [first_prompt(ref)]
    trips, engine = [], []
    for step in range(clicks + 1):
        start = time.perf_counter()
        response = client.post(f"/api/sessions/{sid}/prompts", json=prompts[-1])
        trips.append(time.perf_counter() - start)
        response.raise_for_status()
        update = response.json()
        engine.append(update["engine_ms"] / 1000)
        paste(labels, update)
        if step == clicks:
            break
        click = error_click(labels == 1, ref, rng)
        if click is None:
            break
        prompts.append(
            {"kind": "click", "label": 1, "point": list(click.point), "positive": click.positive}
        )
    client.delete(f"/api/sessions/{sid}")
    return trips, engine, prompts, labels


def in_process(image: Image, prompts: list[dict], engine) -> tuple[np.ndarray, list[float]]:
    """The peer: the same prompts through MultiSession in this process; labels, seconds each."""
    multi = MultiSession(image, engine)
    seconds = []
    for prompt in prompts:
        start = time.perf_counter()
        if prompt["kind"] == "click":
            multi.add_click(1, prompt["point"], positive=prompt["positive"])
        else:
            multi.add_box(1, prompt["lo"], prompt["hi"], axis=prompt["axis"], index=prompt["index"])
        multi.predict(1)
        seconds.append(time.perf_counter() - start)
    return multi.labels, seconds


def in_worker_thread(image: Image, prompts: list[dict], engine) -> tuple[np.ndarray, list[float]]:
    """:func:`in_process` in a worker thread, where the server runs its (sync) endpoints."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(in_process, image, prompts, engine).result()


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q))


def latency_rows(client, refs, data, engine, clicks: int, repeats: int) -> None:
    for name, case_id, goal in (("2D 256x256", "d2_00", 60), ("3D 128^3", "d3", 600)):
        run_case(client, case_id, refs[case_id], 1, seed=0)  # warm-up
        trips, engines = [], []
        for r in range(repeats):
            t, e, prompts, labels = run_case(client, case_id, refs[case_id], clicks, seed=r)
            trips += t
            engines += e
        image = read_image(data / f"{case_id}.nii.gz")
        in_worker_thread(image, prompts, engine)  # warm-up
        peer, peer_seconds = in_worker_thread(image, prompts, engine)
        _, main_seconds = in_process(image, prompts, engine)
        agree = bool(np.array_equal(peer, labels))
        transport = [t - e for t, e in zip(trips, engines, strict=True)]
        print(
            f"{name:<11} | HTTP p50 {pct(trips, 50):7.1f} ms p95 {pct(trips, 95):7.1f} ms "
            f"(goal {goal}) | engine p50 {pct(engines, 50):7.1f} ms | transport p50 "
            f"{pct(transport, 50):5.1f} ms p95 {pct(transport, 95):5.1f} ms (goal 10) | "
            f"in-process p50 {pct(peer_seconds, 50):7.1f} ms (main thread "
            f"{pct(main_seconds, 50):7.1f} ms) | {len(trips)} interactions | masks agree: {agree}"
        )


def load_test(base: str, refs: dict, sessions: int, seconds: float) -> dict:
    stop = time.monotonic() + seconds
    trips: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def user(index: int) -> None:
        case_id = f"d2_{index:02d}"
        ref = refs[case_id]
        rng = np.random.default_rng(index)
        with httpx.Client(base_url=base, timeout=120) as client:
            while time.monotonic() < stop:
                try:
                    sid = client.post("/api/sessions", json={"case_id": case_id})
                    sid.raise_for_status()
                    sid = sid.json()["session_id"]
                    labels = np.zeros(ref.shape, dtype=np.uint8)
                    prompt = first_prompt(ref)
                    for _ in range(6):
                        if time.monotonic() >= stop:
                            break
                        start = time.perf_counter()
                        response = client.post(f"/api/sessions/{sid}/prompts", json=prompt)
                        elapsed = time.perf_counter() - start
                        response.raise_for_status()
                        paste(labels, response.json())
                        with lock:
                            trips.append(elapsed)
                        click = error_click(labels == 1, ref, rng)
                        if click is None:
                            break
                        prompt = {
                            "kind": "click",
                            "label": 1,
                            "point": list(click.point),
                            "positive": click.positive,
                        }
                    client.delete(f"/api/sessions/{sid}")
                except httpx.HTTPError as err:
                    with lock:
                        errors.append(f"{type(err).__name__}: {err}")

    threads = [threading.Thread(target=user, args=(i,)) for i in range(sessions)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - began
    return {"trips": trips, "errors": errors, "wall": wall}


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="universal")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--clicks", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:  # the in-process peer gets the same threads as the server
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(args.threads)
        threadpool_limits(limits=args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        root = Path(tmp)
        data = root / "cases"
        data.mkdir()
        refs = write_cases(data, args.sessions)
        spec = args.engine
        engine = load_engine(spec)
        process, base = start_server(data, root / "out", spec, args.sessions, args.threads)
        try:
            print(f"CPU: {cpu_model()} ({os.cpu_count()} cores); load {os.getloadavg()}")
            print(f"engine: {engine.name}; server {base} (medseg serve, uvicorn, loopback)")
            with httpx.Client(base_url=base, timeout=120) as client:
                latency_rows(client, refs, data, engine, args.clicks, args.repeats)
            result = load_test(base, refs, args.sessions, args.seconds)
            trips = result["trips"]
            print(
                f"load: {args.sessions} sessions x {args.seconds:.0f} s | "
                f"{len(trips) / result['wall']:.1f} interactions/s | "
                f"p50 {pct(trips, 50):.0f} ms p95 {pct(trips, 95):.0f} ms | "
                f"errors {len(result['errors'])} | server peak RSS "
                f"{peak_rss_mb(process.pid):.0f} MB"
            )
            for error in result["errors"][:5]:
                print("  error:", error)
            print(f"load after: {os.getloadavg()}")
        finally:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
