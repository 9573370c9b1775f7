"""``bshw train``: the training loop shared by the float and the exact golden modes.

A run directory holds (all written atomically, so a killed run never leaves a half file):

  config.json    the TrainConfig
  network.json   {"layers": describe_network(...)}
  metrics.json   {"epochs": [per-epoch train loss, test error per inference method, vote curve,
                  activity per layer, weight histograms, activation quantiles, samples/s]}
  checkpoint.pt  learner state + epoch, for ``--resume``
  learning_curves.png, weight_density.png, activation_cdf.png   (golden.plots)

Runs are deterministic for a seed on CPU, and a resumed run continues exactly where the
interrupted one stopped (the epoch's shuffle comes from (seed, epoch); generator states are
checkpointed).
"""

import time
from pathlib import Path

import torch
from tqdm import tqdm

from golden.config import TrainConfig
from golden.errors import BshwError
from golden.io import atomic_torch_save, atomic_write_json

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


def fit(cfg: TrainConfig, out=None, resume=False, progress=True, data=None, final_votes=None):
    """Train ``cfg`` and return the metrics dict. ``out``: run directory (None: keep nothing).
    ``final_votes``: repetitions of the last epoch's stochastic vote (default ``cfg.votes``; a long
    vote curve only at the end keeps the per-epoch evaluation cheap)."""
    from golden.data import load_dataset
    from golden.model import make_learner

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
    metrics, start = {"epochs": []}, 0
    if out and resume:
        start, metrics = _resume(cfg, out, learner)
    if out:
        atomic_write_json(out / "config.json", cfg.to_dict())
        atomic_write_json(out / "network.json", {"layers": learner.layers, "data": str(data)})
    n, B = len(x), cfg.batch
    for epoch in range(start, cfg.epochs):
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
        losses, acts, t0 = [], [], time.perf_counter()
        bar = tqdm(range(0, n, B), desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress,
                   leave=False, unit="batch")
        for i in bar:
            idx = perm[i:i + B]
            s = learner.train_batch(x[idx], t[idx])
            losses.append(s["loss"])
            acts.append(s["activity"])
            if len(losses) % 50 == 0:
                bar.set_postfix(loss=f"{sum(losses[-50:]) / 50:.3f}")
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
    if out and metrics["epochs"]:
        from golden.plots import plot_run

        plot_run(out)
    return metrics


def _resume(cfg, out, learner):
    path = out / "checkpoint.pt"
    if not path.exists():
        raise BshwError(f"--resume: no checkpoint at {path}")
    try:
        ck = torch.load(path, map_location=cfg.device, weights_only=False)
        saved = ck["config"]
        for k in IDENTITY:
            mine = cfg.to_dict()[k]
            if saved.get(k) != mine:
                raise BshwError(f"checkpoint {path} is from another network: {k} = {saved.get(k)!r}, "
                                f"this run has {mine!r}")
        learner.load_state_dict(ck["learner"])
        return ck["epoch"], ck["metrics"]
    except BshwError:
        raise
    except Exception as e:  # a truncated or foreign file
        raise BshwError(f"checkpoint {path} cannot be read ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None


# ---- CLI -------------------------------------------------------------------------------------

def add_arguments(p):
    p.add_argument("--config", metavar="FILE", help="TOML file with a [train] table (flags override it)")
    p.add_argument("--net", choices=("fc", "cnn", "vgg"))
    p.add_argument("--hidden", metavar="N,N", help="FC hidden sizes, e.g. 500,200")
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
    p.add_argument("--out", metavar="DIR", help="run directory (default runs/<net>-<algo>-<weights>-s<seed>)")
    p.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.pt")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch CPU threads (default: torch's choice; 1 is fastest when other jobs share the cores)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def config_from_args(args) -> TrainConfig:
    flags = {k: v for k, v in vars(args).items()
             if v is not None and k in TrainConfig.__dataclass_fields__}
    if "hidden" in flags:
        try:
            flags["hidden"] = tuple(int(h) for h in flags["hidden"].split(","))
        except ValueError:
            raise BshwError(f"--hidden {args.hidden!r}: give sizes like 500,200") from None
    cfg = TrainConfig.from_toml(args.config, flags) if args.config else TrainConfig.from_dict(flags, "command line")
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise BshwError(f"--device {cfg.device}: no CUDA device on this machine")
    return cfg


def run(args) -> int:
    cfg = config_from_args(args)
    if args.threads is not None:
        if args.threads < 1:
            raise BshwError(f"--threads {args.threads}: give a positive number")
        torch.set_num_threads(args.threads)
    out = Path(cfg.out or f"runs/{cfg.net}-{cfg.algo}-{cfg.weights}-s{cfg.seed}")
    m = fit(cfg, out, resume=args.resume, progress=not args.quiet)
    if m["epochs"]:
        e = m["epochs"][-1]
        print(f"{out}: epoch {e['epoch']}, test error " + ", ".join(
            f"{k} {100 * v:.2f}%" for k, v in e["test_error"].items()))
    return 0
