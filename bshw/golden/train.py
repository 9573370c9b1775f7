"""``bshw train``: the training loop shared by the float and the exact golden modes.

A run directory holds (all written atomically, so a killed run never leaves a half file):

  config.json    the TrainConfig
  network.json   {"layers": describe_network(...)}
  metrics.json   {"epochs": [per-epoch train loss, test error per inference method, vote curve,
                  activity per layer, weight histograms, activation quantiles, samples/s]}
  checkpoint.pt  learner state + epoch, for ``--resume``
  learning_curves.png, weight_density.png, activation_cdf.png   (bshw.golden.plots)

The run directory is locked for the whole run (bshw.io.run_lock): a second run into the same
``--out`` refuses with one line naming the first one's pid instead of mixing files. A folder that
already holds a run (config.json) is refused unless ``--resume`` (continue it) or ``--force``
(replace it). ``--resume`` takes the run's configuration from its config.json (data path included);
flags given with it may change only :data:`RESUME_MAY_CHANGE` (epochs, device), any other that
differs from the run's is refused in one line. ``--resume`` checks every field of checkpoint.pt (shapes, layers, epoch, finite weights; bshw.golden.exact's
validate_state in the exact mode) before using it.

Runs are deterministic for a seed on CPU, and a resumed run continues exactly where the
interrupted one stopped (the epoch's shuffle comes from (seed, epoch); generator states are
checkpointed).
"""

import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from bshw.errors import BshwError
from bshw.golden.config import TrainConfig
from bshw.io import atomic_torch_save, atomic_write_json, check_writable, run_lock

PLAIN_EVERY_S = 30.0  # progress lines when stderr is not a terminal (a file, a CI log)
VOTE_CURVE = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
HIST_BINS = 101  # weight histograms over [-w_max, w_max] of each layer
QUANTILES = torch.linspace(0, 1, 101)
# Keys that define the network and its weights: a checkpoint must agree on all of them.
IDENTITY = ("net", "hidden", "weights", "input_side", "mode", "dataset", "w_range", "hw")


def evaluate(learner, x, t, votes, batch=1000):
    """Test error of the three inference methods (paper Fig. 3a-c) and the vote curve."""
    curve_rs = [r for r in VOTE_CURVE if r <= votes]
    wrong = {"hp": 0, "binary": 0, "stochastic": 0}
    curve_wrong = dict.fromkeys(curve_rs, 0)
    for i in range(0, len(x), batch):
        xb, tb = x[i:i + batch], t[i:i + batch]
        for m in ("hp", "binary"):
            wrong[m] += int((learner.predict(xb, m) != tb).sum())
        curve = dict.fromkeys(curve_rs)
        wrong["stochastic"] += int((learner.predict(xb, "stochastic", votes, curve=curve) != tb).sum())
        for r in curve_rs:
            curve_wrong[r] += int((curve[r] != tb).sum())
    n = len(x)
    return {k: v / n for k, v in wrong.items()}, {str(r): v / n for r, v in curve_wrong.items()}


def snapshot(learner, x_probe):
    """Weight histograms and activation quantiles for Fig. 2d-g style plots."""
    hists = []
    for w in learner.float_weights():
        lim = float(w.abs().max()) or 1.0
        hists.append({"lim": lim, "counts": torch.histc(w.float(), HIST_BINS, -lim, lim).int().tolist()})
    acts = [torch.quantile(z[:: max(1, len(z) // 200_000)].float(), QUANTILES).tolist()
            for z in learner.hidden_activations(x_probe)] if hasattr(learner, "hidden_activations") else []
    return hists, acts


def _mean_activity(acts):
    """Average each layer's activity figures over the epoch's batches (None stays None)."""
    def mean(vals):
        return None if any(v is None for v in vals) else sum(vals) / len(vals)

    return [{k: mean([a[i][k] for a in acts]) for k in acts[0][i]} for i in range(len(acts[0]))]


def fit(cfg: TrainConfig, out=None, resume=False, progress=True, data=None, final_votes=None, train_eval=0,
        replace=False):
    """Train ``cfg`` and return the metrics dict. ``out``: run directory (None: keep nothing).
    ``final_votes``: repetitions of the last epoch's stochastic vote (default ``cfg.votes``; a long
    vote curve only at the end keeps the per-epoch evaluation cheap). ``train_eval``: also evaluate
    the final state on the first N training samples, as the last epoch's ``train_error`` (0: not).
    ``replace``: remove an earlier run's files from ``out`` first (``bshw train --force``)."""
    from bshw.golden.data import load_dataset
    from bshw.golden.model import make_learner

    torch.manual_seed(cfg.seed)
    data = data or load_dataset(cfg.dataset_name, cfg.data)
    if cfg.net in ("fc", "cnn") and data.train_x.dim() != 3:
        raise BshwError(f"net {cfg.net!r} needs MNIST-like 28x28 images, data set {data.name} has {tuple(data.train_x.shape[1:])}")
    if cfg.net == "vgg" and data.train_x.dim() != 4:
        raise BshwError(f"net 'vgg' needs CIFAR-10 images (3x32x32), data set {data.name} has {tuple(data.train_x.shape[1:])}")
    x, t = data.train_x[: cfg.train_limit], data.train_y[: cfg.train_limit]
    xt, tt = data.test_x[: cfg.test_limit], data.test_y[: cfg.test_limit]
    learner = make_learner(cfg)
    out = Path(out) if out else None
    if out is None:
        return _fit(cfg, None, resume, progress, data, final_votes, learner, x, t, xt, tt, train_eval)
    if resume and not (out / "checkpoint.pt").exists():  # before the lock creates the folder
        raise BshwError(f"--resume: no checkpoint at {out / 'checkpoint.pt'}")
    with run_lock(out):  # a second run into the same folder refuses instead of mixing files
        if replace and not resume:
            for name in RUN_FILES:
                (out / name).unlink(missing_ok=True)
        return _fit(cfg, out, resume, progress, data, final_votes, learner, x, t, xt, tt, train_eval)


def _is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _epoch_seed(seed: int, epoch: int) -> int:
    """The shuffle seed of an epoch, within torch.Generator.manual_seed's 64 bits (seeds below
    2**64 / 100003 keep their old value, so earlier runs reproduce)."""
    return (seed * 100_003 + epoch) % (1 << 64)


def _fit(cfg, out, resume, progress, data, final_votes, learner, x, t, xt, tt, train_eval=0):
    metrics, start = {"epochs": []}, 0
    if out and resume:
        start, metrics = _resume(cfg, out, learner)
        if start >= cfg.epochs:
            raise BshwError(f"--resume: {out} has trained {start} epoch{'s' * (start != 1)} already; "
                            f"give --epochs N with N > {start} to train on")
    if out:
        atomic_write_json(out / "config.json", cfg.to_dict())
        atomic_write_json(out / "network.json", {"layers": learner.layers, "data": str(data)})
    n, B = len(x), cfg.batch
    for epoch in range(start, cfg.epochs):
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(_epoch_seed(cfg.seed, epoch)))
        losses, acts, t0 = [], [], time.perf_counter()
        # a live bar on a terminal; written to a file or a CI log, a plain line every PLAIN_EVERY_S
        # instead of a wall of carriage-return refreshes
        live = progress and _is_tty()
        bar = tqdm(range(0, n, B), desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not live,
                   leave=False, unit="batch")
        t_plain = t0
        for i in bar:
            idx = perm[i:i + B]
            s = learner.train_batch(x[idx], t[idx])
            losses.append(s["loss"])
            acts.append(s["activity"])
            if len(losses) % 50 == 0:
                bar.set_postfix(loss=f"{sum(losses[-50:]) / 50:.3f}")
            if progress and not live and time.perf_counter() - t_plain >= PLAIN_EVERY_S:
                t_plain = time.perf_counter()
                k = min(len(losses), 50)
                print(f"epoch {epoch + 1}/{cfg.epochs}: {min(i + B, n)}/{n} samples, loss "
                      f"{sum(losses[-k:]) / k:.3f}, {t_plain - t0:.0f} s", file=sys.stderr, flush=True)
        train_s = time.perf_counter() - t0
        last = epoch == cfg.epochs - 1
        errors, curve = evaluate(learner, xt, tt, final_votes if last and final_votes else cfg.votes)
        hists, quants = snapshot(learner, xt[:1000])
        metrics["epochs"].append({
            "epoch": epoch + 1, "train_loss": sum(losses) / len(losses), "test_error": errors,
            "vote_curve": curve, "activity": _mean_activity(acts), "samples_per_s": n / train_s,
            "train_samples": n, "wall_s": time.perf_counter() - t0,
            "weight_hist": hists, "activation_quantiles": quants})
        if progress:
            tqdm.write(f"epoch {epoch + 1}: loss {metrics['epochs'][-1]['train_loss']:.4f}  test error "
                       + "  ".join(f"{k} {100 * v:.2f}%" for k, v in errors.items())
                       + f"  ({n / train_s:.0f} samples/s)")
        if out:
            atomic_write_json(out / "metrics.json", metrics)
            atomic_torch_save(out / "checkpoint.pt", {"config": cfg.to_dict(), "epoch": epoch + 1,
                                                      "learner": learner.state_dict(), "metrics": metrics})
    if train_eval and metrics["epochs"]:  # the final state on training samples (bshw sweep's train error)
        n_eval = min(int(train_eval), n)
        errors, _ = evaluate(learner, x[:n_eval], t[:n_eval], cfg.votes)
        metrics["epochs"][-1].update(train_error=errors, train_eval_samples=n_eval)
    if out and metrics["epochs"]:
        from bshw.golden.plots import plot_run

        plot_run(out)
    return metrics


def _resume(cfg, out, learner):
    """Load ``out/checkpoint.pt`` into ``learner``; return ``(epoch, metrics)``.

    Everything in the file is checked before anything is used: a one-line BshwError names the
    checkpoint, the field and what was expected (never a silent broadcast of a wrong shape).
    """
    path = out / "checkpoint.pt"
    if not path.exists():
        raise BshwError(f"--resume: no checkpoint at {path}")
    try:
        # weights_only: a checkpoint holds tensors, numbers, strings, lists and dicts only, so a
        # foreign pickle cannot run code here
        ck = torch.load(path, map_location=cfg.device, weights_only=True)
    except Exception as e:  # a truncated or foreign file
        msg = (str(e).strip().splitlines() or [""])[0][:120]
        raise BshwError(f"checkpoint {path} cannot be read ({type(e).__name__}: {msg})") from None
    epoch, metrics = check_checkpoint(ck, cfg, learner, path)
    try:
        learner.load_state_dict(ck["learner"])
    except BshwError as e:
        raise BshwError(f"checkpoint {path}: {e}") from None
    except Exception as e:  # defensive: whatever the checks above did not foresee
        msg = (str(e).strip().splitlines() or [""])[0][:120]
        raise BshwError(f"checkpoint {path}: learner state cannot be loaded ({type(e).__name__}: {msg})") from None
    return epoch, metrics


def check_checkpoint(ck, cfg, learner, path) -> tuple:
    """Validate a loaded checkpoint against ``cfg`` and ``learner``; return ``(epoch, metrics)``."""
    def bad(field, what):
        raise BshwError(f"checkpoint {path}: {field} {what}")

    if not isinstance(ck, dict):
        bad("contents", f"are a {type(ck).__name__}, expected a dict with config, epoch, learner, metrics")
    for key in ("config", "epoch", "learner", "metrics"):
        if key not in ck:
            bad(key, "is missing (expected keys config, epoch, learner, metrics)")
    saved = ck["config"]
    if not isinstance(saved, dict):
        bad("config", f"is a {type(saved).__name__}, expected a dict")
    mine_all = cfg.to_dict()
    for k in IDENTITY:
        mine = mine_all[k]
        if saved.get(k) != mine:
            raise BshwError(f"checkpoint {path} is from another network: {k} = {saved.get(k)!r}, "
                            f"this run has {mine!r}")
    epoch = ck["epoch"]
    if isinstance(epoch, bool) or not isinstance(epoch, int):
        bad("epoch", f"= {epoch!r:.40} is a {type(epoch).__name__}, expected a whole number >= 0")
    if epoch < 0:
        bad("epoch", f"= {epoch} is negative, expected a whole number >= 0")
    metrics = ck["metrics"]
    if not isinstance(metrics, dict) or not isinstance(metrics.get("epochs"), list):
        bad("metrics", "expected a dict with a list 'epochs'")
    if len(metrics["epochs"]) != epoch:
        bad("metrics.epochs", f"has {len(metrics['epochs'])} entries, expected one per trained epoch ({epoch})")
    if any(not isinstance(e, dict) for e in metrics["epochs"]):
        bad("metrics.epochs", "expected a list of dicts")
    check_state_like(ck["learner"], learner.state_dict(), f"checkpoint {path}: learner")
    if cfg.mode == "exact":
        from bshw.golden.exact import validate_state

        try:
            validate_state(learner, ck["learner"])
        except BshwError as e:
            raise BshwError(f"checkpoint {path}: learner.{e}") from None
    return epoch, metrics


def check_state_like(saved, ref, where: str):
    """``saved`` must have the structure of the learner's own ``state_dict()`` ``ref``: the same keys,
    list lengths (one entry per layer), tensor shapes and kinds (float / integer / byte), finite
    floats, and equal plain values (kind, version, hardware parameters)."""
    def walk(s, r, name):
        if isinstance(r, torch.Tensor):
            if not isinstance(s, torch.Tensor):
                raise BshwError(f"{name} is a {type(s).__name__}, expected a tensor of shape {list(r.shape)}")
            if tuple(s.shape) != tuple(r.shape):
                raise BshwError(f"{name} has shape {list(s.shape)}, expected {list(r.shape)}")
            if s.dtype.is_floating_point != r.dtype.is_floating_point or (r.dtype == torch.uint8) != (s.dtype == torch.uint8):
                raise BshwError(f"{name} has dtype {str(s.dtype).split('.')[-1]}, "
                                f"expected {str(r.dtype).split('.')[-1]}")
            if s.dtype.is_floating_point and not bool(torch.isfinite(s).all()):
                raise BshwError(f"{name} holds NaN or infinite values, expected finite numbers")
        elif isinstance(r, dict):
            if not isinstance(s, dict):
                raise BshwError(f"{name} is a {type(s).__name__}, expected a dict with keys {', '.join(map(str, r))}")
            for k in r:
                if k not in s:
                    raise BshwError(f"{name}.{k} is missing")
            extra = [k for k in s if k not in r]
            if extra:
                raise BshwError(f"{name}.{extra[0]} is unexpected (expected keys {', '.join(map(str, r))})")
            for k in r:
                walk(s[k], r[k], f"{name}.{k}")
        elif isinstance(r, (list, tuple)):
            if not isinstance(s, (list, tuple)):
                raise BshwError(f"{name} is a {type(s).__name__}, expected a list of {len(r)}")
            if len(s) != len(r):
                raise BshwError(f"{name} has {len(s)} entries, expected {len(r)} (one per layer)")
            for i, (a, b) in enumerate(zip(s, r)):
                walk(a, b, f"{name}[{i}]")
        elif r is None:
            if s is not None:
                raise BshwError(f"{name} is {type(s).__name__}, expected none (null)")
        elif s != r or type(s) is not type(r):
            raise BshwError(f"{name} = {s!r:.60}, expected {r!r:.60}")

    walk(saved, ref, where)


# ---- CLI -------------------------------------------------------------------------------------

def add_arguments(p):
    p.add_argument("--config", metavar="FILE", help="TOML file with a [train] table (flags override it)")
    p.add_argument("--net", choices=("fc", "cnn", "vgg"))
    from bshw.cli import add_hidden

    add_hidden(p, "FC hidden sizes, e.g. 500,200 or 500 200")
    p.add_argument("--algo", help="three letters H/S for forwarding, error, derivative (HHH, SSS, SHS, ...)")
    p.add_argument("--tie", choices=("plus", "zero", "random"), help="sign(0) rule in E:S (default zero)")
    p.add_argument("--deriv-k", type=int, metavar="K", help="hardware derivative: K pairs (A AND NOT B) OR-ed (1, 2, 4)")
    p.add_argument("--a", type=float, help="logistic shape a (default 4)")
    p.add_argument("--weights", help="fp32, int8, int4, ternary, intN, memristor")
    p.add_argument("--w-range", type=float, help="integer/memristor weights span +-W (default 1)")
    p.add_argument("--init-gain", type=float, help="initial weights uniform in +-G/sqrt(fan_in) (default 2)")
    p.add_argument("--lr", type=float)
    p.add_argument("--batch", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--dataset", choices=("mnist", "fashion-mnist", "cifar10"))
    p.add_argument("--data", metavar="DIR", help="directory with the data set's files")
    p.add_argument("--input-side", type=int, help="downsample MNIST to SIDE x SIDE (FC only)")
    p.add_argument("--train-limit", type=int, metavar="N", help="use the first N training samples")
    p.add_argument("--test-limit", type=int, metavar="N")
    p.add_argument("--votes", type=int, metavar="R", help="repetitions of the stochastic majority vote (default 10)")
    p.add_argument("--device", help="cpu (default) or cuda")
    p.add_argument("--mode", choices=("float", "exact"), help="float golden model or hardware-exact integer mode")
    p.add_argument("--hw", metavar="JSON", help='--mode exact: hardware parameters as JSON, e.g. \'{"deriv_k": 1}\' '
                                                "(as in bshw rtl and bshw trace)")
    p.add_argument("--out", metavar="DIR", help="run directory (default runs/<net>-<algo>-<weights>-<mode>-s<seed>)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true",
                   help="continue the run in DIR from DIR/checkpoint.pt, with DIR/config.json's settings "
                        "(only --epochs and --device may change)")
    g.add_argument("--force", action="store_true", help="replace the run already in DIR (default: refuse)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch CPU threads (default: torch's choice; 1 is fastest when other jobs share the cores)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


# float-model flags that the exact mode would silently ignore (docs/arithmetic.md §12)
EXACT_IGNORES = {
    "tie": "the exact mode's sign(0) rule is hw.tie (gated, zero or plus), set it with a [train.hw] table",
    "init_gain": "the exact mode draws its initial integer weights by docs/arithmetic.md §10",
}


# what --resume may change in a run's configuration; everything else must agree with its config.json
RESUME_MAY_CHANGE = ("epochs", "device")
# the files of a run directory (its own; --force removes them before the new run writes)
RUN_FILES = ("config.json", "network.json", "metrics.json", "checkpoint.pt", "learning_curves.png",
             "weight_density.png", "activation_cdf.png")


def default_out(cfg: TrainConfig) -> Path:
    """The run directory when ``--out`` is not given: net, algorithm, weights, mode and seed."""
    return Path(f"runs/{cfg.net}-{cfg.algo}-{cfg.weights}-{cfg.mode}-s{cfg.seed}")


def holds_run(out: Path) -> str | None:
    """The name of the first run file in ``out`` (None: no run there)."""
    return next((n for n in ("config.json", "checkpoint.pt", "metrics.json") if (Path(out) / n).exists()), None)


def config_from_args(args) -> TrainConfig:
    flags = {k: v for k, v in vars(args).items()
             if v is not None and k in TrainConfig.__dataclass_fields__}
    if isinstance(flags.get("hidden"), str):  # a tuple from bshw.cli.add_hidden; a str from a caller's Namespace
        from bshw.cli import parse_sizes

        flags["hidden"] = parse_sizes(flags["hidden"])
    if "hw" in flags:
        import json

        try:
            flags["hw"] = json.loads(flags["hw"])
        except json.JSONDecodeError as e:
            raise BshwError(f"--hw is not valid JSON: {e}") from None
    where = args.config or "command line"
    toml = TrainConfig.read_toml(args.config) if args.config else {}
    d = {**toml, **flags}
    if d.get("mode") == "exact":
        for k, why in EXACT_IGNORES.items():
            if k in flags:
                raise BshwError(f"--{k.replace('_', '-')} does not apply to --mode exact: {why}")
        d.setdefault("weights", "int8")  # the hardware's weights (docs/arithmetic.md §1)
    elif "hw" in flags and not getattr(args, "resume", False):
        raise BshwError("--hw does not apply to --mode float: hardware parameters belong to the exact mode "
                        "(add --mode exact)")
    cfg = TrainConfig.from_dict(d, where)
    if getattr(args, "resume", False):
        cfg = _resume_config(cfg, {**toml, **flags})
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise BshwError(f"--device {cfg.device}: no CUDA device on this machine")
    return cfg


def _resume_config(given_cfg: TrainConfig, given: dict) -> TrainConfig:
    """The configuration of the run ``--resume`` continues: its directory's ``config.json`` (data path
    included), with the given values of :data:`RESUME_MAY_CHANGE`; any other given value that differs
    from the run's is refused in one line. Without a config.json (a run written by hand, or an older
    one) the given configuration stands, and the checkpoint is checked against it (check_checkpoint)."""
    import json

    out = Path(given_cfg.out) if given_cfg.out else default_out(given_cfg)
    path = out / "config.json"
    if not path.is_file():
        return given_cfg
    try:
        saved = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise BshwError(f"--resume: {path} cannot be read ({type(e).__name__}: {str(e)[:100]})") from None
    run = TrainConfig.from_dict(saved, where=str(path)).to_dict()
    asked = TrainConfig.from_dict({**run, **{k: v for k, v in given.items() if k != "out"}}, where="--resume").to_dict()
    for k in given:
        if k in ("out", *RESUME_MAY_CHANGE) or asked[k] == run[k]:
            continue
        shown = ",".join(map(str, asked[k])) if k == "hidden" else asked[k]
        raise BshwError(f"--resume: --{k.replace('_', '-')} {shown} conflicts with the run's {k} = {run[k]!r} "
                        f"({path}); only {', '.join('--' + m for m in RESUME_MAY_CHANGE)} may change on a resume")
    return TrainConfig.from_dict({**run, **{k: asked[k] for k in RESUME_MAY_CHANGE if k in given}, "out": str(out)},
                                 where=str(path))


def run(args) -> int:
    cfg = config_from_args(args)
    if args.threads is not None:
        if not 1 <= args.threads <= 1024:
            raise BshwError(f"--threads {args.threads}: give a number from 1 to 1024")
        torch.set_num_threads(args.threads)
    if cfg.epochs < 1:
        raise BshwError(f"epochs = {cfg.epochs}: give at least 1 epoch to train")
    out = Path(cfg.out) if cfg.out else default_out(cfg)
    check_writable(out, folder=True, what="run directory")  # before the data and the model load
    found = holds_run(out)
    if found and not (args.resume or args.force):
        raise BshwError(f"run directory {out} already holds a run ({found}): continue it with --resume, "
                        "replace it with --force, or give another --out")
    m = fit(cfg, out, resume=args.resume, progress=not args.quiet, replace=args.force)
    if m["epochs"]:
        e = m["epochs"][-1]
        print(f"{out}: epoch {e['epoch']}, test error " + ", ".join(
            f"{k} {100 * v:.2f}%" for k, v in e["test_error"].items()))
    return 0
