"""GASBench model directories: evaluate one, and export a trained vfcache model as one.

GASBench (the multi-modal card's benchmark) loads a video detector from a directory holding
`model_config.yaml` (name, modality `video`, `preprocessing.resize: [H, W]` and
`preprocessing.num_frames`, `model.num_classes: 2`, optional `model.weights_file`), `model.py`
(a `load_model(weights_path, num_classes=2)` function) and the `*.safetensors` weights; it
feeds `(B, T, 3, H, W)` RGB pixels in [0, 255] (here float32; the model normalises inside)
and takes the softmax of the `(B, 2)` logits.

`load_gasbench_dir` does exactly that: `model.py` is **code that runs** (imported as a module,
as GASBench does): only load directories you trust. `export_gasbench` writes a checkpoint of a
registered vfcache model as such a directory: `model.py` holds the network's own source and a
wrapper that turns [0, 255] frames into the input the model was trained on, and imports only
torch, safetensors and the standard library, never vfcache, because GASBench loads it alone.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import inspect
import math
import shutil
import tempfile
import textwrap
import zipfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml
from torch import nn
from vfcache.trainers import models as vfcache_models
from vfcache.trainers import r2plus1d
from vfcache.trainers.gasbench_check import check_model_code
from vfcache.trainers.gpu import get_normalisation
from vfcache.trainers.input_contract import InputContract

from vfcache.archive_paths import UnsafeMemberError, safe_member_path
from vfcache.errors import StageError

CONFIG_NAME = "model_config.yaml"
CODE_NAME = "model.py"
WEIGHTS_NAME = "model.safetensors"
EXPORTABLE = {"tiny3d", "r2plus1d_18_supcon", "r2plus1d_18_baseline"}


DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float16": "float16",
    "fp16": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}
MAX_FRAMES = 64  # GASBench caps num_frames at 64 (benchmarks/inputs.py)


def _fail(folder: Path, what: str) -> StageError:
    return StageError(f"{folder} is not a GASBench model directory: {what}")


def _check_preprocessing(folder: Path, prep: Mapping) -> None:
    resize, frames = prep.get("resize"), prep.get("num_frames", prep.get("max_frames"))
    if not (
        isinstance(resize, list)
        and len(resize) == 2
        and all(isinstance(v, int) and v > 0 for v in resize)
    ):
        raise _fail(folder, f"preprocessing.resize is {resize!r}, expected [height, width]")
    if not (isinstance(frames, int) and not isinstance(frames, bool) and 0 < frames <= MAX_FRAMES):
        raise _fail(
            folder, f"preprocessing.num_frames is {frames!r}, expected a frame count 1-{MAX_FRAMES}"
        )
    rate = prep.get("frame_rate")
    if rate is not None and not (
        isinstance(rate, (int, float))
        and not isinstance(rate, bool)
        and math.isfinite(rate)
        and rate > 0
    ):
        raise _fail(folder, f"preprocessing.frame_rate is {rate!r}, expected frames per second > 0")


def read_gasbench_config(folder: Path) -> dict:
    """The checked `model_config.yaml` of a video model directory (docs/Safetensors.md): `name`,
    `version`, `modality: video`, optional `dtype`, `preprocessing.resize` [H, W],
    `preprocessing.num_frames` (the older spec's `max_frames` is read too; it is normalised to
    `num_frames`), optional `preprocessing.frame_rate`, `model.num_classes` (2, or 3 with the
    semisynthetic class) and optional `model.weights_file` (default `model.safetensors`)."""
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise _fail(folder, f"{CONFIG_NAME} is missing")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise _fail(folder, f"{CONFIG_NAME} is not YAML ({' '.join(str(err).split())})") from err
    if not isinstance(config, dict):
        raise _fail(folder, f"{CONFIG_NAME} holds no mapping")
    if config.get("modality") != "video":
        raise _fail(
            folder, f"modality is {config.get('modality')!r}, vfcache evaluates video models"
        )
    prep = config.get("preprocessing")
    if not isinstance(prep, dict):
        raise _fail(folder, "preprocessing is missing (resize and num_frames)")
    _check_preprocessing(folder, prep)
    prep.setdefault("num_frames", prep.get("max_frames"))
    dtype = config.get("dtype", "float32")
    if dtype not in DTYPES:
        raise _fail(folder, f"dtype is {dtype!r}, expected one of {sorted(DTYPES)}")
    model = config.get("model")
    if not isinstance(model, dict) or model.get("num_classes") not in (2, 3):
        classes = model.get("num_classes") if isinstance(model, dict) else None
        raise _fail(
            folder,
            f"model.num_classes is {classes!r}; GASBench video models score 2 classes "
            "[real, synthetic] (or 3 with semisynthetic)",
        )
    return config


def _weights_path(folder: Path, config: Mapping) -> Path:
    named = (config.get("model") or {}).get("weights_file") or WEIGHTS_NAME
    path = folder / named
    if not path.is_file():
        raise _fail(folder, f"model.weights_file {named} does not exist")
    return path


def _import_model_code(folder: Path):
    code = folder / CODE_NAME
    if not code.is_file():
        raise _fail(folder, f"{CODE_NAME} is missing")
    violations = check_model_code(code)
    if violations:
        more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
        raise _fail(folder, f"GASBench would reject it: {violations[0].describe(code)}{more}")
    spec = importlib.util.spec_from_file_location(f"gasbench_model_{abs(hash(str(folder)))}", code)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # the directory's own code: whatever it raises is its failure
        raise _fail(folder, f"{CODE_NAME} fails to import: {type(err).__name__}: {err}") from err
    if not callable(getattr(module, "load_model", None)):
        raise _fail(
            folder, f"{CODE_NAME} defines no load_model(weights_path, num_classes) function"
        )
    return module


def _load_kwargs(load_model, weights: Path, config: Mapping) -> dict:
    """GASBench passes every `model:` key but weights_file to load_model, and only num_classes
    when the function's signature does not take them (custom_model_loader.py)."""
    kwargs = {k: v for k, v in (config.get("model") or {}).items() if k != "weights_file"}
    signature = inspect.signature(load_model)
    try:
        signature.bind(str(weights), **kwargs)
    except TypeError:
        kwargs = {"num_classes": kwargs.get("num_classes", 2)}
    return kwargs


def load_gasbench_dir(folder: str | Path) -> tuple[nn.Module, dict]:
    """(model in eval mode, in the config's dtype; config) the GASBench way: the static import
    check, then `load_model(weights_path, num_classes=...)` from the directory's model.py. The
    model gets an input contract of (B, T, 3, H, W) frames at the configured size and count."""
    import torch

    folder = Path(folder)
    config = read_gasbench_config(folder)
    weights = _weights_path(folder, config)
    module = _import_model_code(folder)
    kwargs = _load_kwargs(module.load_model, weights, config)
    try:
        model = module.load_model(str(weights), **kwargs)
    except Exception as err:  # the directory's own code
        raise _fail(
            folder, f"load_model failed: {type(err).__name__}: {' '.join(str(err).split())[:300]}"
        ) from err
    if not isinstance(model, nn.Module):
        raise _fail(folder, f"load_model returned a {type(model).__name__}, not a torch.nn.Module")
    model = model.to(dtype=getattr(torch, DTYPES[config.get("dtype", "float32")]))
    model.eval()
    height, width = config["preprocessing"]["resize"]
    model.input_contract = InputContract(
        layout="BTCHW",
        pixels="raw255",
        frames=config["preprocessing"]["num_frames"],
        size=(height, width),
    )
    return model, config


@contextlib.contextmanager
def opened_gasbench_dir(path: str | Path) -> Iterator[Path]:
    """A model directory, or a `.zip` of one (what miners upload) unpacked to a temporary folder
    for the duration; members that would escape the folder are refused."""
    path = Path(path)
    if path.is_dir():
        yield path
        return
    if not (path.is_file() and zipfile.is_zipfile(path)):
        raise StageError(f"{path} is not a GASBench model directory or a .zip of one")
    with tempfile.TemporaryDirectory(prefix="gasbench-model-") as tmp:
        root = Path(tmp)
        try:
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    name = safe_member_path(info.filename, str(path))
                    if name is None or info.is_dir():
                        continue
                    target = root / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with archive.open(info) as source, open(target, "wb") as sink:
                        shutil.copyfileobj(source, sink, 1 << 20)
        except (zipfile.BadZipFile, UnsafeMemberError) as err:
            raise StageError(f"{path}: cannot unpack the model archive ({err})") from err
        found = sorted(p.parent for p in root.rglob(CONFIG_NAME))
        if not found:
            raise StageError(f"{path}: the archive holds no {CONFIG_NAME}")
        yield found[0]


# -- export -----------------------------------------------------------------------------------
_WRAPPER = '''

class GasbenchVideoModel(nn.Module):
    """GASBench's input, (B, T, 3, H, W) RGB in [0, 255], turned into what the network was
    trained on ({layout}, pixels / 255 minus mean over std), and its (B, 2) logits."""

    def __init__(self):
        super().__init__()
        self.model = {factory}(**{kwargs!r})
        self.register_buffer("mean", torch.tensor({mean!r}).view(1, 3, 1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor({std!r}).view(1, 3, 1, 1, 1), persistent=False)

    def forward(self, frames):
        x = frames.float().div(255.0).permute(0, 2, 1, 3, 4)  # (B, 3, T, H, W)
        x = (x - self.mean) / self.std
        if {btchw!r}:
            x = x.permute(0, 2, 1, 3, 4)
        out = self.model(x)
        return out.logits if hasattr(out, "logits") else out


def load_model(weights_path, num_classes=2):
    if num_classes != 2:
        raise ValueError("this detector scores 2 classes, [real, fake]")
    model = GasbenchVideoModel()
    model.load_state_dict(load_file(weights_path))
    model.train(False)
    return model
'''


def _network_source(name: str) -> tuple[str, str]:
    """(standalone source of the network, factory name) for a registered model."""
    if name == "tiny3d":
        pieces = [r2plus1d.DetectorOutput, vfcache_models.Tiny3D, vfcache_models._conv_bn_relu]
        return "\n\n".join(textwrap.dedent(inspect.getsource(piece)) for piece in pieces), "Tiny3D"
    factory = {
        "r2plus1d_18_supcon": "R2Plus1DDetector",
        "r2plus1d_18_baseline": "BaselineClassifier",
    }[name]
    return _module_body(inspect.getsource(r2plus1d)), factory


def _module_body(source: str) -> str:
    """A module's code from its first definition on: no docstring, no imports (model.py has its
    own)."""
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the docstring
        decorators = getattr(node, "decorator_list", [])
        first = min([node.lineno] + [d.lineno for d in decorators])
        return "\n".join(source.splitlines()[first - 1 :]) + "\n"
    raise ValueError("the module defines nothing")


def export_gasbench(
    checkpoint_path: str | Path, out_dir: str | Path, *, name: str | None = None
) -> Path:
    """Write a trained vfcache checkpoint as a GASBench video model directory; returns it."""
    from safetensors.torch import save_file

    checkpoint_path, out_dir = Path(checkpoint_path), Path(out_dir)
    checkpoint = vfcache_models.read_checkpoint(checkpoint_path)
    args: Mapping[str, Any] = checkpoint.get("args") or {}
    model_name = (args.get("model") or {}).get("name")
    if model_name not in EXPORTABLE:
        raise StageError(
            f"{checkpoint_path}: model {model_name!r} cannot be exported for GASBench "
            f"yet; exportable: {sorted(EXPORTABLE)}"
        )
    kwargs = dict((args.get("model") or {}).get("kwargs") or {})
    clip_shape = args.get("clip_shape") or []
    if len(clip_shape) != 4:
        raise StageError(
            f"{checkpoint_path}: the checkpoint records no clip shape (args.clip_shape)"
        )
    frames, height, width = int(clip_shape[0]), int(clip_shape[1]), int(clip_shape[2])
    norm = get_normalisation(args.get("normalisation") or "unit")
    source, factory = _network_source(model_name)
    code = (
        "# Written by `vfcache export --gasbench`: the network and a wrapper for GASBench's\n"
        "# (B, T, 3, H, W) [0, 255] input. Standalone: torch, safetensors and the standard "
        "library.\n"
        "from dataclasses import dataclass\nfrom typing import Optional\n\nimport torch\n"
        "import torch.nn.functional as F\nfrom safetensors.torch import load_file\nfrom torch "
        "import nn\n\n\n"
        + source
        + _WRAPPER.format(
            factory=factory,
            kwargs=kwargs,
            mean=list(norm.mean),
            std=list(norm.std),
            layout=args.get("layout") or "BCTHW",
            btchw=(args.get("layout") or "BCTHW") == "BTCHW",
        )
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / CODE_NAME).write_text(code, encoding="utf-8")
    state = {
        f"model.{key}": value.contiguous() for key, value in checkpoint["model_state_dict"].items()
    }
    save_file(state, str(out_dir / WEIGHTS_NAME))
    config = {
        "name": name or checkpoint_path.parent.name,
        "version": "1.0.0",
        "modality": "video",
        "preprocessing": {"resize": [height, width], "num_frames": frames},
        "model": {"num_classes": 2, "weights_file": WEIGHTS_NAME},
    }
    (out_dir / CONFIG_NAME).write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    load_gasbench_dir(out_dir)  # refuse to leave a directory that does not load
    return out_dir


__all__ = ["export_gasbench", "load_gasbench_dir", "opened_gasbench_dir", "read_gasbench_config"]
