"""Stage ``train``: train one network of FineNet — ``predeblur`` (stage one, alone, then frozen),
``enhance`` / ``interp`` (independent, each on the frozen front end) or ``combine`` (branches
frozen) — for one ablation variant, or one baseline named in ``params.baselines`` (from scratch, on
its own ``loss``; adversarial ones also train their ``critic``), with Adam (β 0.9/0.999) and a
cosine schedule.

Resumable: the full training state is checkpointed every ``train.checkpoint_every`` steps to
``checkpoints/<net>/<variant>/last.pt``; a killed run restarts from it. Each step's batch is a
function of (seed, step) only, so a resumed run ends with the same weights as an uninterrupted one
(on CPU). Runs under ``torchrun`` with DDP (gloo on CPU, NCCL on GPUs), the batch split over ranks;
on CUDA it uses bf16 autocast.

Validation: every ``train.validation.every`` steps (and at the last; for late fusion counted from the
end of its keep model's solo phase, ``train.judge_steps``) the network's centre-frame
output is scored (PSNR) on the val set (clips disjoint from train and test): on its blurred centre
frames for the deblurring networks, which train on those, on every centre for the combiner, which
also learns to keep a sharp frame. ``model.pt`` is the checkpoint best on validation (the paper's
protocol: never chosen on the test set). Writes ``models/<net>[/<variant>]/model.pt``, the loss
curve ``reports/train/<net>_<variant>.csv``, the validation curve ``…_val.csv`` and the summary
``reports/train/<net>_<variant>.json``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import time
from contextlib import nullcontext
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from ..atomic import atomic_path
from ..checkpoint import content_digest, load_model, load_state, save_model, save_state
from ..data.store import SETS_DIR, set_file
from ..data.windows import WindowDataset
from ..device import pick_device
from ..errors import FineNetError
from ..layout import CHECKPOINTS, NETS, TRAIN_REPORTS, model_path, run_name
from ..scoring.metrics import psnr
from ..models import build
from ..models.config import learning_rate, net_config
from ..models.finenet import combiner_inputs
from ..models.shared import shared_features


def warm_start(params: dict, net: str) -> Path | None:
    """The trained model a network starts from: EDVR's pre-deblur is pre-trained first, as
    FineNet's front end is (EDVR's own recipe); with FineNet's front-end settings it is the same
    architecture, so it starts from ``models/predeblur`` (then trains on, with the rest of EDVR)."""
    if net == "edvr" and params["baselines"][net].get("pretrained_predeblur", False):
        return model_path("predeblur")
    return None


def frozen_inputs(net: str) -> list[Path]:
    """The trained networks a network is trained on top of (frozen)."""
    if net == "predeblur" or net not in NETS:
        return []
    if net in ("enhance", "interp"):
        return [model_path("predeblur")]
    return [model_path("predeblur"), model_path("enhance", "full"), model_path("interp", "full")]


class StepBatches(torch.utils.data.Sampler):
    """Yields, for steps ``start..total-1``, this rank's share of the step's batch as
    ``(index, augmentation seed)`` pairs drawn from ``(seed, step)`` alone."""

    def __init__(self, size: int, batch: int, seed: int, start: int, total: int, rank: int, world: int):
        self.size, self.batch, self.seed, self.start, self.total = size, batch, seed, start, total
        self.rank, self.world = rank, world

    def __len__(self) -> int:
        return self.total - self.start

    def __iter__(self):
        lo, hi = self.rank * self.batch // self.world, (self.rank + 1) * self.batch // self.world
        for step in range(self.start, self.total):
            rng = np.random.default_rng([self.seed, step])
            idx = rng.integers(0, self.size, size=self.batch)
            aug = rng.integers(0, 2 ** 31, size=self.batch)
            yield [(int(i), int(a)) for i, a in zip(idx[lo:hi], aug[lo:hi])]


class Trainee(torch.nn.Module):
    """The network being trained, with the frozen ones it sits on. Every trainable network owns its
    loss: ``model.loss(batch, *inputs, **options)``, where ``inputs`` are what the frozen networks
    under it give (``inputs``) and ``options`` the training options its ``loss`` declares, of
    ``blurred_only`` (the pre-deblur stage: ``train.sharp_centres``), ``keep_weight`` and
    ``sharp_weight`` (late fusion's keep model: ``train.keep_weight``, ``train.keep_cost``)."""

    def __init__(self, net: str, model: torch.nn.Module, frozen: list[torch.nn.Module],
                 blurred_only: bool = False, keep_weight: float = 0.0, sharp_weight: float = 1.0):
        super().__init__()
        self.net, self.model = net, model
        offered = {"blurred_only": blurred_only, "keep_weight": keep_weight, "sharp_weight": sharp_weight}
        takes = inspect.signature(model.loss).parameters
        self.options = {k: v for k, v in offered.items() if k in takes}
        self.phase = "main"      # "judge": late fusion's keep classifier alone (train.judge_steps)
        self.frozen = torch.nn.ModuleList(frozen).requires_grad_(False).eval()

    def train(self, mode: bool = True):
        super().train(mode)
        self.frozen.eval()
        return self

    @torch.no_grad()
    def inputs(self, frames: torch.Tensor, heat: torch.Tensor) -> list:
        """What the frozen networks give the trained one: nothing (the pre-deblur stage, a
        baseline); the front end's ``Shared`` features (a branch); both branches' outputs and the
        features (a combiner)."""
        if not self.frozen:
            return []
        if len(self.frozen) == 1:
            return [shared_features(self.frozen[0], frames)]
        return list(combiner_inputs(*self.frozen, frames, heat))

    def forward(self, batch: dict, critic: bool = False) -> torch.Tensor:
        if self.phase == "judge":     # late fusion's keep model alone
            return self.model.judge_loss(batch, self.options["sharp_weight"])
        if critic:                    # an adversarial baseline's critic
            return self.model.critic_loss(batch)
        return self.model.loss(batch, *self.inputs(batch["frames"], batch["heatmaps"]), **self.options)

    @torch.no_grad()
    def predict(self, frames: torch.Tensor, heat: torch.Tensor) -> torch.Tensor:
        """The network's output for the centre frame of each window, as the evaluate stage runs it."""
        if self.net not in NETS:
            return self.model(frames, heat)
        if self.net == "predeblur":
            return self.model(frames[:, frames.shape[1] // 2])
        inputs = self.inputs(frames, heat)
        if self.net in ("enhance", "interp"):
            return self.model(inputs[0], heat).image
        return self.model(*inputs).image


class Validation:
    """PSNR of a network's centre-frame output on the val set (``train.validation``)."""

    def __init__(self, params: dict, blurred_only: bool, device):
        vp, n = params["train"]["validation"], params["loader"]["num_frames"]
        self.every, self.device = vp["every"], device
        if not set_file("val").is_file():
            raise FineNetError(set_file("val"), "no validation set: the plan has no val clips "
                                                "(data.embedded.val, data.voxceleb.val_videos)")
        ds = WindowDataset(set_file("val"), n, pad=True)
        with h5py.File(ds.path, "r") as f:
            blurred = {c: f[c]["kernel"][:, 0] > 1 for c in ds.lengths}
        keep = [i for i, (c, t) in enumerate(ds.index)
                if t % vp["frame_stride"] == 0 and (blurred[c][t] or not blurred_only)]
        if not keep:
            raise FineNetError(ds.path, f"no val frames to score ({'blurred ' if blurred_only else ''}"
                                        f"centres every {vp['frame_stride']} frames)")
        self.frames = "blurred centres" if blurred_only else "all centres"
        self.loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, keep),
                                                  batch_size=params["evaluate"]["batch_size"])

    def due(self, step: int, total: int) -> bool:
        return step % self.every == 0 or step == total

    def __call__(self, trainee: Trainee) -> float:
        mode = trainee.training
        trainee.eval()
        scores = [psnr(trainee.predict(b["frames"].to(self.device), b["heatmaps"].to(self.device))
                       .float().cpu(), b["target"]) for b in self.loader]
        trainee.train(mode)
        return round(float(torch.cat(scores).mean()), 4)


def fingerprint(params: dict, net: str, variant: str | None, arch: str, config: dict) -> str:
    """Identifies what a checkpoint was trained for: a resumed run must match it exactly."""
    manifest = SETS_DIR / "manifest.csv"
    code = sorted(Path(__file__).parents[1].glob("**/*.py"))  # the package: a code change invalidates it
    deps = [hashlib.sha256(p.read_bytes()).digest() for p in [manifest, *code] if p.is_file()]
    # the frozen upstream models by their content (weights + metadata), not their file bytes: a
    # re-saved but weight-identical upstream model does not force a restart
    start = warm_start(params, net)
    deps += [content_digest(p) for p in [*frozen_inputs(net), *([start] if start else [])] if p.is_file()]
    blob = json.dumps([net, variant, arch, config, params["train"], params["loader"],
                       learning_rate(params, net)], sort_keys=True).encode()   # a baseline's own lr too
    return hashlib.sha256(blob + b"".join(deps)).hexdigest()[:16]


def step_on(opt, loss_fn, parameters, tp: dict, autocast) -> torch.Tensor:
    """One optimiser step on ``loss_fn()``, gradients clipped to ``train.grad_clip``."""
    with autocast:
        loss = loss_fn()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(list(parameters), tp["grad_clip"])
    opt.step()
    return loss


def cosine(step: int, total: int, floor: float) -> float:
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))


def set_threads(n: int) -> None:
    """``train.threads`` intra-op threads (and as many inter-op ones, where torch still allows it:
    only before its first parallel work in this process)."""
    torch.set_num_threads(int(n))
    try:
        torch.set_num_interop_threads(int(n))
    except RuntimeError:              # already set, or inter-op work already started: keep it
        pass


def run(params: dict, net: str, variant: str | None = None) -> dict:
    variant = variant or "full" if net in NETS[1:] else None
    tp, lp = params["train"], params["loader"]
    set_threads(tp["threads"])        # first: weights are bit-identical only at one thread count
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() and tp["device"] != "cpu" else "gloo")
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    if tp["batch_size"] % world:
        raise FineNetError("train.batch_size", f"{tp['batch_size']} is not divisible by {world} processes")
    device = pick_device(tp["device"])
    torch.manual_seed(tp["seed"])
    arch, config = net_config(params, net, variant)
    model = build(arch, **config).to(device)
    start_from = warm_start(params, net)
    if start_from is not None:       # EDVR: its pre-deblur from the pre-trained one
        model.frontend.load_state_dict(load_model(start_from, device).state_dict())
    frozen = [load_model(p, device) for p in frozen_inputs(net)]
    sharp_centres = (net if net in NETS else "baseline") in tp["sharp_centres"]
    ds = WindowDataset(set_file("train"), lp["num_frames"], lp["patch_size"], lp["flip"],
                       blurred_centres=not sharp_centres, whole=arch == "combine_late")  # its keep model
                                                                     # judges the whole crops
    # the keep loss: a sharp centre weighs train.keep_cost x (blurred / sharp centres of the training
    # set), so at cost 1 both classes weigh the same, and at 2 a frame wrongly deblurred costs twice
    # a blurred one wrongly kept
    sharp_weight = tp["keep_cost"] * ((len(ds) - ds.sharp_centres) / ds.sharp_centres if ds.sharp_centres else 1.0)
    trainee = Trainee(net, model, frozen, blurred_only=not sharp_centres,
                      keep_weight=tp["keep_weight"], sharp_weight=sharp_weight).to(device)
    iterations = tp["iterations"][net if net in NETS else "baseline"]
    # late fusion: its keep classifier first learns alone, on every frame of many windows (cheap: no
    # branch runs), then the whole combiner trains for its iterations
    judge_steps = tp["judge_steps"] if arch == "combine_late" else 0
    iterations += judge_steps
    critic = getattr(model, "critic", None)
    main_params = [p for n, p in model.named_parameters() if not (critic is not None and n.startswith("critic."))]
    lr = learning_rate(params, net)
    opts = [torch.optim.Adam(main_params, lr=lr, betas=tuple(tp["betas"]))]
    if critic is not None:
        opts.append(torch.optim.Adam(critic.parameters(), lr=lr, betas=tuple(tp["betas"])))
    scheds = [torch.optim.lr_scheduler.LambdaLR(o, lambda s: cosine(s, iterations, tp["min_lr_ratio"]))
              for o in opts]

    name = run_name(net, variant)
    ckpt_path = CHECKPOINTS / name / "last.pt"
    fp = fingerprint(params, net, variant, arch, config)
    validate = Validation(params, blurred_only=not sharp_centres, device=device)
    step, history, seconds, curve, best = 0, [], 0.0, [], None
    state = load_state(ckpt_path)
    if state is not None and state.get("fingerprint") == fp:
        model.load_state_dict(state["model"])
        for o, sc, o_state, sc_state in zip(opts, scheds, state["optimizers"], state["schedulers"]):
            o.load_state_dict(o_state)
            sc.load_state_dict(sc_state)
        step, history, seconds = state["step"], state["history"], state["seconds"]
        curve, best = state["val_curve"], state["best"]

    ddp = (torch.nn.parallel.DistributedDataParallel(trainee, find_unused_parameters=critic is not None or judge_steps > 0)
           if distributed else trainee)
    loader = torch.utils.data.DataLoader(
        ds, batch_sampler=StepBatches(len(ds), tp["batch_size"], tp["seed"], step, iterations, rank, world),
        num_workers=tp["workers"], persistent_workers=False)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    trainee.train()
    start = time.perf_counter() - seconds
    bar = tqdm(total=iterations, initial=step, desc=f"train {name}", unit="step", disable=rank != 0)
    for batch in loader:
        trainee.phase = "judge" if step < judge_steps else "main"
        batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        torch.manual_seed(tp["seed"] * 1_000_003 + step)   # dropout, GAN noise: from (seed, step)
        if critic is not None:             # one critic step before each generator step
            step_on(opts[1], lambda: ddp(batch, critic=True), critic.parameters(), tp, autocast)
        loss = step_on(opts[0], lambda: ddp(batch), main_params, tp, autocast)
        for sc in scheds:
            sc.step()
        step += 1
        value = loss.detach().float()
        if distributed:
            dist.all_reduce(value)
            value /= world
        history.append([step, float(value), float(scheds[0].get_last_lr()[0])])
        bar.update(1)
        bar.set_postfix(loss=f"{float(value):.4f}")
        # every rank: same weights, same val set, same score. Not while the keep model trains alone:
        # the rest of the combiner is still at its initialisation, so there is nothing to select
        if step > judge_steps and validate.due(step - judge_steps, iterations - judge_steps):
            curve.append([step, validate(trainee)])
            if best is None or curve[-1][1] > best["psnr"]:
                best = {"step": step, "psnr": curve[-1][1],
                        "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
            bar.set_postfix(loss=f"{float(value):.4f}", val=f"{curve[-1][1]:.2f}dB")
        if rank == 0 and (step % tp["checkpoint_every"] == 0 or step == iterations):
            save_state(ckpt_path, fingerprint=fp, step=step, history=history,
                       seconds=time.perf_counter() - start, model=model.state_dict(),
                       optimizers=[o.state_dict() for o in opts], schedulers=[sc.state_dict() for sc in scheds],
                       val_curve=curve, best=best)
    bar.close()
    result = {}
    if rank == 0:
        model.load_state_dict(best["state"])        # the checkpoint best on validation
        result = finish(net, variant, arch, config, model, history, time.perf_counter() - start, fp,
                        curve, best, validate.frames, lr)
    if distributed:
        dist.barrier()
    return result


def finish(net, variant, arch, config, model, history, seconds, fp, curve, best, val_frames, lr) -> dict:
    name = run_name(net, variant)
    tag = name.replace("/", "_")
    save_model(model_path(net, variant), arch, config, model, fingerprint=fp)
    losses = np.array([h[1] for h in history])
    tail = losses[-max(1, len(losses) // 10):]
    result = {"network": net, "variant": variant, "arch": arch, "iterations": len(history),
              "parameters": int(sum(p.numel() for p in model.parameters())),
              "lr": lr, "first_loss": round(float(losses[:max(1, len(losses) // 10)].mean()), 5),
              "final_loss": round(float(tail.mean()), 5), "seconds": round(seconds, 1),
              "threads": torch.get_num_threads(),
              "val_frames": val_frames, "val_psnr_best": best["psnr"], "best_step": best["step"],
              "val_psnr_final": curve[-1][1]}
    with atomic_path(TRAIN_REPORTS / f"{tag}.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    with atomic_path(TRAIN_REPORTS / f"{tag}.csv") as tmp:
        tmp.write_text("step,loss,lr\n" + "".join(f"{s},{l:.6f},{r:.3e}\n" for s, l, r in history))
    with atomic_path(TRAIN_REPORTS / f"{tag}_val.csv") as tmp:
        tmp.write_text("step,val_psnr\n" + "".join(f"{s},{v:.4f}\n" for s, v in curve))
    return result



if __name__ == "__main__":
    import sys

    from ..cli import main

    sys.exit(main(["train", *sys.argv[1:]]))
