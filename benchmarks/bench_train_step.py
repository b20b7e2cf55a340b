"""Profile of one training iteration: medseg's planned 3D step vs a plain MONAI DynUNet step.

Plain script: ``python benchmarks/bench_train_step.py [--dataset DIR] [--steps 8]``.

1. Writes a small brain example (6 cases, seed 3, 2 mm) unless ``--dataset`` is given, plans it
   for this CPU (``PlanBudget.for_device("cpu")``) and preprocesses the 3D configuration.
2. medseg: the trainer's own objects (network, deep-supervision loss, SGD, batch stream with
   augmentation, validation, log, checkpoint) are timed phase by phase: load + augment, forward,
   loss (deep supervision included), backward, optimiser (clipping included), and, amortised per
   training iteration at the plan's frequency, validation, logging and checkpointing.
3. Peer: MONAI ``DynUNet`` of the same filters, kernels and strides without deep supervision,
   ``DiceCELoss``, SGD, on un-augmented crops of the same cases: forward, loss, backward,
   optimiser.

Both run in float32 and, on a CPU with AVX-512 BF16/AMX, with bf16 autocast + channels_last_3d.
Printed: per-phase median ms, the step ratio medseg/peer (compute phases; the goal is <= 1.1),
the full iteration ratio, the CPU model and ``uptime`` load (the machine may be shared). Both
sides' losses are checked to be finite and of the same order, so the two steps do the same work.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchtools import cpu_model, load


def prepare(dataset_dir: Path | None, work: Path):
    from medseg.data import load_dataset
    from medseg.data.example import make_brain_example
    from medseg.plan import PlanBudget, make_plan
    from medseg.preprocess import preprocess_dataset

    if dataset_dir is None:
        dataset_dir = work / "Dataset009_StepBench"
    if not (dataset_dir / "dataset.json").is_file():
        make_brain_example(dataset_dir, cases=6, seed=3, spacing_mm=2.0)
    dataset = load_dataset(dataset_dir)
    plan = make_plan(dataset, budget=PlanBudget.for_device("cpu"))
    cache = preprocess_dataset(dataset, plan, "3d", work / "cache", workers=1)
    return plan, cache, sorted(c.case_id for c in dataset.labelled)


class Phases:
    """Collects per-phase wall times (ms) over several steps."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}
        self._t = 0.0

    def start(self) -> None:
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.times.setdefault(name, []).append((now - self._t) * 1e3)
        self._t = now

    def add(self, name: str, ms: float) -> None:
        self.times.setdefault(name, []).append(ms)

    def median(self, name: str) -> float:
        return statistics.median(self.times[name]) if name in self.times else 0.0


class MedsegStep:
    """The trainer's own objects, one iteration split into timed phases."""

    def __init__(self, plan, cache, ids, dtype) -> None:
        from medseg.train.augment import build_augmentation
        from medseg.train.loader import BatchStream
        from medseg.train.networks import build_network
        from medseg.train.sampling import PatchSampler
        from medseg.train.trainer import _checked_loss, _memory_format

        config = plan.configuration("3d")
        self.plan, self.tc, self.dtype = plan, config.training, dtype
        self.fmt = _memory_format(3) if dtype is not None else None
        torch.manual_seed(0)
        net = build_network(config.network, len(plan.channel_names), plan.num_classes, 3)
        self.net = net if self.fmt is None else net.to(memory_format=self.fmt)
        self.opt = torch.optim.SGD(
            self.net.parameters(),
            lr=self.tc.learning_rate,
            momentum=self.tc.momentum,
            nesterov=True,
        )
        self.loss_fn = _checked_loss(plan, config)
        labels = [v for v in plan.labels.values() if v != 0]
        sampler = PatchSampler(
            cache,
            ids,
            config.patch_size,
            config.batch_size,
            self.tc.oversample_foreground,
            foreground_labels=labels,
            oversample_labels=self.tc.oversample_labels,
        )
        augment = build_augmentation(3, mirror_axes=self.tc.mirror_axes)
        self.stream = BatchStream(sampler, augment, seed=0)
        val_stream = BatchStream(sampler, None, seed=1)
        self.val_batches = [val_stream.batch(k) for k in range(self.tc.val_iterations)]
        self.loss = float("nan")

    def step(self, k: int, phases: Phases) -> None:
        from medseg.train.networks import output_list
        from medseg.train.trainer import _autocast, _to

        dev = torch.device("cpu")
        phases.start()
        image, label = self.stream.batch(k)
        phases.lap("load+augment")
        image = _to(image, dev, self.fmt)
        self.opt.zero_grad(set_to_none=True)
        with _autocast(dev, self.dtype):
            outputs = output_list(self.net(image), 3)
        phases.lap("forward")
        loss = self.loss_fn(outputs, label)
        phases.lap("loss (deep supervision)")
        loss.backward()
        phases.lap("backward")
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.tc.grad_clip)
        self.opt.step()
        self.loss = float(loss.item())
        phases.lap("optimizer")

    def overheads(self, phases: Phases, work: Path, cache, ids, step_ms: float) -> None:
        """Validation, logging and checkpointing, divided by the iterations they serve.

        Time-budgeted plans: ``case_validations`` sliding-window validations of up to
        ``max_val_cases`` whole cases per run of ``time_budget_s / step`` iterations, a log row and
        a checkpoint every ``iterations_per_epoch``. For comparison, the epoch-counted loop's
        patch validation (``val_iterations`` batches every epoch) is timed too.
        """
        from medseg.train.checkpoint import save_checkpoint
        from medseg.train.logs import write_log_csv
        from medseg.train.validation import patch_validation, validate_cases

        per_epoch = self.tc.iterations_per_epoch
        dev = torch.device("cpu")
        tic = time.perf_counter()
        patch_validation(
            self.net, self.loss_fn, self.val_batches, self.plan, dev, self.dtype, self.fmt
        )
        phases.add("old: patch val. every epoch", (time.perf_counter() - tic) * 1e3 / per_epoch)
        if self.tc.time_budget_s is not None:
            iterations = self.tc.time_budget_s / (step_ms / 1e3)
            val_ids = ids[: self.tc.max_val_cases]
            tic = time.perf_counter()
            validate_cases(self.net, cache, val_ids, self.plan, "3d", device=dev, dtype=self.dtype)
            per_run = (time.perf_counter() - tic) * 1e3 * self.tc.case_validations
            phases.add("validation (amortised)", per_run / iterations)
        self.net.train()
        rows = [{"epoch": e, "train_loss": 1.0, "val_loss": 1.0, "mean_dice": 0.5} for e in (1, 2)]
        tic = time.perf_counter()
        write_log_csv(rows, work / "log.csv")
        phases.add("logging (amortised)", (time.perf_counter() - tic) * 1e3 / per_epoch)
        tic = time.perf_counter()
        save_checkpoint(work / "fold", self.net, self.opt, {"epoch": 1})
        phases.add("checkpoint (amortised)", (time.perf_counter() - tic) * 1e3 / per_epoch)


class MonaiStep:
    """A plain MONAI DynUNet step of the same shape: no deep supervision, no augmentation."""

    def __init__(self, plan, cache, ids, dtype) -> None:
        from monai.losses import DiceCELoss
        from monai.networks.nets import DynUNet

        config = plan.configuration("3d")
        cfg = config.network
        self.dtype = dtype
        self.fmt = torch.channels_last_3d if dtype is not None else None
        torch.manual_seed(0)
        net = DynUNet(
            spatial_dims=3,
            in_channels=len(plan.channel_names),
            out_channels=plan.num_classes,
            kernel_size=[list(k) for k in cfg.kernel_sizes],
            strides=[list(s) for s in cfg.strides],
            upsample_kernel_size=[list(s) for s in cfg.strides[1:]],
            filters=list(cfg.filters),
            norm_name=("INSTANCE", {"affine": True}),
            act_name=("leakyrelu", {"inplace": True, "negative_slope": 0.01}),
        )
        self.net = net if self.fmt is None else net.to(memory_format=self.fmt)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=0.01, momentum=0.99, nesterov=True)
        self.loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
        self.rng = np.random.default_rng(0)
        self.arrays = [cache.load(i, mmap=False)[:2] for i in ids]
        self.patch, self.batch = config.patch_size, config.batch_size
        self.loss = float("nan")

    def step(self, k: int, phases: Phases) -> None:
        phases.start()
        images, labels = [], []
        for _ in range(self.batch):
            image, label = self.arrays[int(self.rng.integers(len(self.arrays)))]
            shape = image.shape[1:]
            pairs = zip(shape, self.patch, strict=True)
            start = [int(self.rng.integers(max(1, s - p + 1))) for s, p in pairs]
            box = (slice(None), *(slice(s, s + p) for s, p in zip(start, self.patch, strict=True)))
            images.append(_pad(image[box], self.patch))
            labels.append(_pad(label[box], self.patch))
        image = torch.from_numpy(np.stack(images).astype(np.float32))
        label = torch.from_numpy(np.stack(labels).astype(np.int64))
        phases.lap("load+augment")
        if self.fmt is not None:
            image = image.contiguous(memory_format=self.fmt)
        self.opt.zero_grad(set_to_none=True)
        context = torch.autocast("cpu", dtype=self.dtype) if self.dtype is not None else _null()
        with context:
            logits = self.net(image)
        phases.lap("forward")
        loss = self.loss_fn(logits.float(), label)
        phases.lap("loss (deep supervision)")
        loss.backward()
        phases.lap("backward")
        self.opt.step()
        self.loss = float(loss.item())
        phases.lap("optimizer")


def _pad(array: np.ndarray, patch) -> np.ndarray:
    pad = [(0, 0)] + [(0, p - s) for s, p in zip(array.shape[1:], patch, strict=True)]
    return np.pad(array, pad)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


COMPUTE = ("forward", "loss (deep supervision)", "backward", "optimizer")
OVERHEAD = ("validation (amortised)", "logging (amortised)", "checkpoint (amortised)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, help="a 3D dataset (default: brain example)")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per variant")
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    args = parser.parse_args()
    from medseg.train.trainer import _cpu_has_bf16

    work = args.work or Path(tempfile.mkdtemp(prefix="bench_train_step_"))
    work.mkdir(parents=True, exist_ok=True)
    plan, cache, ids = prepare(args.dataset, work)
    config = plan.configuration("3d")
    print(f"CPU: {cpu_model()}; torch threads {torch.get_num_threads()}; load {load()}")
    print(
        f"plan 3d: patch {list(config.patch_size)}, batch {config.batch_size}, features "
        f"{'-'.join(map(str, config.network.filters))}, {len(ids)} cases"
    )
    dtypes = [("fp32", None)] + ([("bf16", torch.bfloat16)] if _cpu_has_bf16() else [])
    for name, dtype in dtypes:
        medseg_step = MedsegStep(plan, cache, ids, dtype)
        monai_step = MonaiStep(plan, cache, ids, dtype)
        ours, peer = Phases(), Phases()
        medseg_step.step(0, Phases())  # warm-up, not counted
        monai_step.step(0, Phases())
        for k in range(1, args.steps + 1):  # interleaved: both see the same machine load
            medseg_step.step(k, ours)
            monai_step.step(k, peer)
        step_ms = sum(ours.median(p) for p in COMPUTE)
        for _ in range(2):
            medseg_step.overheads(ours, work, cache, ids, step_ms)
        our_loss, peer_loss = medseg_step.loss, monai_step.loss
        assert np.isfinite(our_loss), our_loss
        assert np.isfinite(peer_loss), peer_loss
        assert 0.1 < our_loss / peer_loss < 10, (our_loss, peer_loss)
        print(f"\n{name}: median ms per phase over {args.steps} steps (load {load()})")
        print(f"{'phase':<28} | {'medseg':>9} | {'MONAI':>9}")
        for phase in ("load+augment", *COMPUTE, *OVERHEAD, "old: patch val. every epoch"):
            print(f"{phase:<28} | {ours.median(phase):9.1f} | {peer.median(phase):9.1f}")
        ours_step = sum(ours.median(p) for p in COMPUTE)
        peer_step = sum(peer.median(p) for p in COMPUTE)
        ours_all = ours_step + sum(ours.median(p) for p in OVERHEAD)
        print(
            f"{'step (compute)':<28} | {ours_step:9.1f} | {peer_step:9.1f}   "
            f"medseg/MONAI {ours_step / peer_step:.2f}x (goal <= 1.1)"
        )
        print(
            f"{'step + amortised overheads':<28} | {ours_all:9.1f} | {peer_step:9.1f}   "
            f"medseg/MONAI {ours_all / peer_step:.2f}x"
        )
        print(f"last losses: medseg {our_loss:.3f}, MONAI {peer_loss:.3f}")


if __name__ == "__main__":
    main()
