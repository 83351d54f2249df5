"""Train and eval configs (`configs/train/*.yaml`, `configs/eval/*.yaml`) as frozen dataclasses.

Validated at load like every vfcache config: an unknown key, a wrong type or a value out of
range raises `ConfigError` naming the file, the field, the value and what would be accepted.
Paths inside a config (split files, checkpoints, out_dir) stay strings here; relative ones
are resolved against the data root (`--root`) when a run starts (`resolve_path`), so one
config serves any root. `to_json()` gives the plain dict stored in checkpoints (`args`) and
in the run folder. Both configs live here, a little over 400 lines, because they share
the field parsers.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from vfcache.trainers.protocols import PROTOTYPE_POOLING
from vfcache.trainers.trainable import check_policy

from vfcache.errors import ConfigError
from vfcache.validation import check_keys, choice, load_yaml, typed

LOSS_KINDS = ("cross_entropy", "supcon", "reconstruction")
SAMPLER_KINDS = ("class_balanced", "domain_weighted", "generator_quota", "weighted_random")
COMPOSITIONS = ("draw", "quota")
SCHEDULES = ("constant", "cosine")
INIT_MODES = ("backbone", "full")
NORMALISATIONS = ("unit", "symmetric", "raw255", "kinetics", "imagenet", "clip")
LAYOUTS = ("BCTHW", "BTCHW")
DOMAIN_LOSS_MODES = ("shares", "per_anchor")
AMP_MODES = ("auto", "bf16", "fp16", "off")
DEVICES = ("auto", "cpu", "cuda")
SELECTION_PROTOCOLS = ("prototype", "softmax", "anomaly", "val_loss")
SELECTION_METRICS = ("auroc", "accuracy", "eer", "mcc", "combined")
EVAL_PROTOCOLS = ("prototype", "benchmark", "anomaly")
CLASS_NAMES = {"real": 0, "fake": 1}


@dataclass(frozen=True)
class ModelConfig:
    name: str  # registry name (tiny3d, r2plus1d_18_supcon, ...) or "package.module:factory"
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LossConfig:
    kind: str  # cross_entropy | supcon
    class_weights: Optional[tuple[float, ...]] = None  # cross_entropy: (real, fake)
    label_smoothing: float = 0.0  # cross_entropy
    temperature: float = 0.07  # supcon


@dataclass(frozen=True)
class OptimizerConfig:
    """AdamW; the learning rate follows `schedule` per optimizer step after a linear warmup."""

    lr: float
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "constant"  # constant | cosine
    warmup_steps: int = 0
    warmup_fraction: float = 0.0  # or warmup over this fraction of all optimizer steps (cards: 0.1)
    min_lr: float = 0.0  # floor of the cosine schedule
    grad_clip_norm: Optional[float] = None


@dataclass(frozen=True)
class SamplerConfig:
    kind: str  # class_balanced | domain_weighted | generator_quota
    domain_weights: Optional[Mapping[str, float]] = None  # domain_weighted (None: equal)
    class_proportions: Optional[Mapping[int, float]] = None  # class_balanced, generator_quota
    composition: str = "draw"  # domain_weighted: multinomial draw or fixed quota per batch
    batches_per_epoch: Optional[int] = None  # global batches; None: train clips // batch_size


@dataclass(frozen=True)
class DataConfig:
    train: tuple[str, ...]
    val: tuple[str, ...]
    support: tuple[str, ...] = ()  # support bank for the prototype protocol
    train_labels: Optional[tuple[int, ...]] = None  # train on these labels only (one-class: real)


@dataclass(frozen=True)
class AugmentConfig:
    """Device-side augmentation of training clips (`vfcache.trainers.gpu.DeviceAugment`)."""

    flip_probability: float = 0.0
    brightness_delta: float = 0.0
    channel_shuffle_probability: float = 0.0

    @property
    def enabled(self) -> bool:
        return (
            self.flip_probability > 0
            or self.brightness_delta > 0
            or self.channel_shuffle_probability > 0
        )


@dataclass(frozen=True)
class SelectionConfig:
    """How the best epoch is chosen on validation: `metric` per domain, averaged with
    `domain_weights` (None: equal weights over the domains of the val splits)."""

    protocol: str  # prototype | softmax
    metric: str = "auroc"  # auroc | accuracy | eer (scored as 1 - eer) | mcc | combined
    domain_weights: Optional[Mapping[str, float]] = None
    threshold: float = 0.0  # prototype protocol: fake when sim_fake - sim_real >= threshold
    prototype_pooling: str = "per_domain"  # per_domain (the card) | pooled across domains


@dataclass(frozen=True)
class TrainConfig:
    name: str
    model: ModelConfig
    loss: LossConfig
    optimizer: OptimizerConfig
    sampler: SamplerConfig
    data: DataConfig
    selection: SelectionConfig
    epochs: int
    batch_size: int  # clips per forward pass per rank
    out_dir: str
    grad_accumulation: int = 1  # batches per optimizer step (effective batch = batch_size x this)
    init_checkpoint: Optional[str] = None
    init_mode: str = "backbone"  # backbone: transfer stem+layer1-4 only; full: strict load
    unfreeze: Union[str, Mapping[str, Any]] = "all"  # see vfcache.trainers.trainable
    domain_loss_weights: Optional[Mapping[str, float]] = None
    domain_loss_mode: str = "shares"  # shares: w_d * mean over domain d; per_anchor: w_d per sample
    normalisation: Optional[str] = None  # pixel preset; None: the model's input_contract, else unit
    layout: Optional[str] = None  # BCTHW | BTCHW; None: the model's input_contract, else BCTHW
    augment: AugmentConfig = AugmentConfig()
    amp: str = (
        "auto"  # auto: bf16 on a GPU with native bf16, fp16 + GradScaler on older GPUs, off on CPU
    )
    device: str = "auto"
    workers: int = 2
    eval_batch_size: Optional[int] = None
    decode_cache_gb: float = 0.0
    decode_cache_dir: Optional[str] = None  # default: the run folder
    seed: int = 0
    checkpoint_every_steps: int = 0  # also write last.pt mid-epoch every N steps (0: never)
    log_every_steps: int = 50
    source: str = field(default="<object>", compare=False)

    def to_json(self) -> dict:
        return _plain({k: v for k, v in dataclasses.asdict(self).items() if k != "source"})


@dataclass(frozen=True)
class EvalConfig:
    name: str
    checkpoint: str
    protocols: tuple[str, ...]  # prototype and/or benchmark
    query: tuple[str, ...]  # split files scored (test)
    out_dir: str
    support: tuple[str, ...] = ()
    model: Optional[ModelConfig] = None  # None: the checkpoint's args.model
    normalisation: Optional[str] = None  # None: the checkpoint's args.normalisation, else unit
    layout: Optional[str] = None  # None: the checkpoint's args.layout, else the model's contract
    threshold: float = 0.0
    prototype_pooling: str = "per_domain"  # per_domain (the card) | pooled across domains
    anomaly_threshold: Optional[float] = (
        None  # anomaly protocol: fixed; None: chosen on calibration
    )
    calibration: tuple[str, ...] = ()  # anomaly protocol: split files (real and fake) to choose it
    batch_size: int = 8
    workers: int = 2
    amp: str = "auto"
    device: str = "auto"
    plots: bool = True
    source: str = field(default="<object>", compare=False)

    def to_json(self) -> dict:
        return _plain({k: v for k, v in dataclasses.asdict(self).items() if k != "source"})


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def resolve_path(path: str | os.PathLike, root: str | os.PathLike) -> Path:
    """A config path: absolute as given, relative to the data root otherwise."""
    candidate = Path(os.path.expanduser(str(path)))
    return candidate if candidate.is_absolute() else Path(root) / candidate


def resolve_split_path(path: str | os.PathLike, root: str | os.PathLike) -> Path | str:
    """A split file of a config: a URL of a cache folder on object storage (`s3://...`) as given,
    else as `resolve_path`."""
    from vfcache.cache_tools.remote import is_url

    return str(path) if is_url(path) else resolve_path(path, root)


# -- field parsers ------------------------------------------------------------------------------
def _section(source: str, name: str, data: Any) -> dict:
    if not isinstance(data, dict):
        raise ConfigError(source, name, data, "a mapping")
    return data


def _paths(source: str, name: str, value: Any, *, required: bool) -> tuple[str, ...]:
    if value is None:
        value = []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(source, name, value, "a split file path or a list of them")
    if required and not value:
        raise ConfigError(source, name, value, "at least one split file")
    if len(set(value)) != len(value):
        raise ConfigError(source, name, value, "each split file once")
    return tuple(value)


def _optional_choice(source: str, name: str, value: Any, choices: tuple[str, ...]) -> Optional[str]:
    return None if value is None else choice(source, name, value, choices)


def _unfreeze(source: str, value: Any) -> Union[str, Mapping[str, Any]]:
    try:
        check_policy(value)
    except ValueError as err:
        raise ConfigError(source, "unfreeze", value, str(err)) from err
    return (
        value
        if isinstance(value, str)
        else {k: (tuple(v) if isinstance(v, list) else v) for k, v in value.items()}
    )


def _weights(
    source: str, name: str, value: Any, *, keys: Optional[Mapping[str, int]] = None
) -> Optional[Mapping]:
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise ConfigError(source, name, value, "a non-empty mapping of name: weight")
    weights: dict = {}
    for key, weight in value.items():
        weight = typed(source, f"{name}.{key}", weight, float, minimum=0.0)
        if keys is not None:
            if key not in keys:
                raise ConfigError(source, f"{name}.{key}", key, f"one of {sorted(keys)}")
            key = keys[key]
        weights[key if keys is not None else str(key)] = weight
    if sum(weights.values()) <= 0:
        raise ConfigError(source, name, value, "weights with a positive sum")
    return weights


def _optional(
    source: str, name: str, value: Any, kind: type, *, minimum: float | None = None
) -> Any:
    return None if value is None else typed(source, name, value, kind, minimum=minimum)


def _model(source: str, name: str, data: Any) -> ModelConfig:
    if isinstance(data, str):
        data = {"name": data}
    data = _section(source, name, data)
    check_keys(source, f"{name}.", data, {"name", "kwargs"}, {"name"})
    kwargs = data.get("kwargs") or {}
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise ConfigError(source, f"{name}.kwargs", kwargs, "a mapping of keyword arguments")
    return ModelConfig(name=typed(source, f"{name}.name", data["name"], str), kwargs=dict(kwargs))


def _loss(source: str, data: Any) -> LossConfig:
    data = _section(source, "loss", data)
    check_keys(
        source, "loss.", data, {"kind", "class_weights", "label_smoothing", "temperature"}, {"kind"}
    )
    kind = choice(source, "loss.kind", data["kind"], LOSS_KINDS)
    if kind in ("supcon", "reconstruction") and (
        "class_weights" in data or "label_smoothing" in data
    ):
        raise ConfigError(
            source, "loss", sorted(data), f"no class_weights/label_smoothing with {kind}"
        )
    if kind == "reconstruction" and "temperature" in data:
        raise ConfigError(
            source,
            "loss.temperature",
            data["temperature"],
            "no temperature with reconstruction (it belongs to supcon)",
        )
    if kind == "cross_entropy" and "temperature" in data:
        raise ConfigError(
            source,
            "loss.temperature",
            data["temperature"],
            "no temperature with cross_entropy (it belongs to supcon)",
        )
    class_weights = data.get("class_weights")
    if class_weights is not None:
        if not (isinstance(class_weights, list) and len(class_weights) == 2):
            raise ConfigError(source, "loss.class_weights", class_weights, "[real, fake] weights")
        class_weights = tuple(
            typed(source, "loss.class_weights", w, float, minimum=0.0) for w in class_weights
        )
    smoothing = typed(
        source, "loss.label_smoothing", data.get("label_smoothing", 0.0), float, minimum=0.0
    )
    if smoothing >= 1.0:
        raise ConfigError(source, "loss.label_smoothing", smoothing, "a value in [0, 1)")
    temperature = typed(source, "loss.temperature", data.get("temperature", 0.07), float)
    if temperature <= 0:
        raise ConfigError(source, "loss.temperature", temperature, "a value > 0")
    return LossConfig(
        kind=kind, class_weights=class_weights, label_smoothing=smoothing, temperature=temperature
    )


def _warmup_fraction(source: str, data: Mapping) -> float:
    fraction = typed(
        source, "optimizer.warmup_fraction", data.get("warmup_fraction", 0.0), float, minimum=0.0
    )
    if fraction >= 1:
        raise ConfigError(source, "optimizer.warmup_fraction", fraction, "a fraction in [0, 1)")
    if fraction and data.get("warmup_steps"):
        raise ConfigError(
            source,
            "optimizer.warmup_fraction",
            fraction,
            "0 when optimizer.warmup_steps is given (one of the two)",
        )
    return fraction


def _optimizer(source: str, data: Any) -> OptimizerConfig:
    data = _section(source, "optimizer", data)
    allowed = {f.name for f in dataclasses.fields(OptimizerConfig)} | {"kind"}
    check_keys(source, "optimizer.", data, allowed, {"lr"})
    choice(source, "optimizer.kind", data.get("kind", "adamw"), ("adamw",))
    lr = typed(source, "optimizer.lr", data["lr"], float)
    if lr <= 0:
        raise ConfigError(source, "optimizer.lr", lr, "a learning rate > 0")
    betas = data.get("betas", [0.9, 0.999])
    if not (
        isinstance(betas, list)
        and len(betas) == 2
        and all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)
    ):
        raise ConfigError(source, "optimizer.betas", betas, "two numbers in [0, 1)")
    return OptimizerConfig(
        lr=lr,
        weight_decay=typed(
            source, "optimizer.weight_decay", data.get("weight_decay", 0.0), float, minimum=0.0
        ),
        betas=(float(betas[0]), float(betas[1])),
        schedule=choice(source, "optimizer.schedule", data.get("schedule", "constant"), SCHEDULES),
        warmup_steps=typed(
            source, "optimizer.warmup_steps", data.get("warmup_steps", 0), int, minimum=0
        ),
        warmup_fraction=_warmup_fraction(source, data),
        min_lr=typed(source, "optimizer.min_lr", data.get("min_lr", 0.0), float, minimum=0.0),
        grad_clip_norm=_optional(
            source, "optimizer.grad_clip_norm", data.get("grad_clip_norm"), float, minimum=1e-12
        ),
    )


def _sampler(source: str, data: Any) -> SamplerConfig:
    data = _section(source, "sampler", data)
    allowed = {f.name for f in dataclasses.fields(SamplerConfig)}
    check_keys(source, "sampler.", data, allowed, {"kind"})
    kind = choice(source, "sampler.kind", data["kind"], SAMPLER_KINDS)
    if "domain_weights" in data and kind != "domain_weighted":
        raise ConfigError(
            source,
            "sampler.domain_weights",
            data["domain_weights"],
            "no domain_weights unless sampler.kind is domain_weighted",
        )
    if "class_proportions" in data and kind in ("domain_weighted", "weighted_random"):
        raise ConfigError(
            source,
            "sampler.class_proportions",
            data["class_proportions"],
            f"no class_proportions with the {kind} sampler (weighted_random weighs "
            "each class by its inverse frequency)",
        )
    return SamplerConfig(
        kind=kind,
        domain_weights=_weights(source, "sampler.domain_weights", data.get("domain_weights")),
        class_proportions=_weights(
            source, "sampler.class_proportions", data.get("class_proportions"), keys=CLASS_NAMES
        ),
        composition=choice(
            source, "sampler.composition", data.get("composition", "draw"), COMPOSITIONS
        ),
        batches_per_epoch=_optional(
            source, "sampler.batches_per_epoch", data.get("batches_per_epoch"), int, minimum=1
        ),
    )


def _data(source: str, data: Any) -> DataConfig:
    data = _section(source, "data", data)
    check_keys(source, "data.", data, {"train", "val", "support", "train_labels"}, {"train", "val"})
    labels = data.get("train_labels")
    if labels is not None:
        if not (
            isinstance(labels, list) and labels and all(label in CLASS_NAMES for label in labels)
        ):
            raise ConfigError(source, "data.train_labels", labels, "a list among real, fake")
        labels = tuple(sorted(CLASS_NAMES[label] for label in set(labels)))
    return DataConfig(
        train=_paths(source, "data.train", data["train"], required=True),
        val=_paths(source, "data.val", data["val"], required=True),
        support=_paths(source, "data.support", data.get("support"), required=False),
        train_labels=labels,
    )


def _augment(source: str, data: Any) -> AugmentConfig:
    if data is None:
        return AugmentConfig()
    data = _section(source, "augment", data)
    check_keys(
        source,
        "augment.",
        data,
        {"flip_probability", "brightness_delta", "channel_shuffle_probability"},
        set(),
    )
    flip = typed(
        source, "augment.flip_probability", data.get("flip_probability", 0.0), float, minimum=0.0
    )
    brightness = typed(
        source, "augment.brightness_delta", data.get("brightness_delta", 0.0), float, minimum=0.0
    )
    shuffle = typed(
        source,
        "augment.channel_shuffle_probability",
        data.get("channel_shuffle_probability", 0.0),
        float,
        minimum=0.0,
    )
    if flip > 1:
        raise ConfigError(source, "augment.flip_probability", flip, "a probability in [0, 1]")
    if shuffle > 1:
        raise ConfigError(
            source, "augment.channel_shuffle_probability", shuffle, "a probability in [0, 1]"
        )
    if brightness >= 1:
        raise ConfigError(source, "augment.brightness_delta", brightness, "a value in [0, 1)")
    return AugmentConfig(
        flip_probability=flip, brightness_delta=brightness, channel_shuffle_probability=shuffle
    )


def _selection(source: str, data: Any, loss_kind: str) -> SelectionConfig:
    data = _section(source, "selection", data or {})
    check_keys(
        source,
        "selection.",
        data,
        {"protocol", "metric", "domain_weights", "threshold", "prototype_pooling"},
        set(),
    )
    # one-class runs validate on the reconstruction error of (often real-only) val clips
    default_protocol = {"supcon": "prototype", "reconstruction": "val_loss"}.get(
        loss_kind, "softmax"
    )
    protocol = choice(
        source, "selection.protocol", data.get("protocol", default_protocol), SELECTION_PROTOCOLS
    )
    metric = choice(source, "selection.metric", data.get("metric", "auroc"), SELECTION_METRICS)
    if metric == "combined" and protocol != "softmax":
        raise ConfigError(
            source,
            "selection.metric",
            metric,
            "a metric of the prototype protocol (auroc, accuracy, eer, mcc); "
            "combined needs softmax probabilities",
        )
    return SelectionConfig(
        protocol=protocol,
        metric=metric,
        domain_weights=_weights(source, "selection.domain_weights", data.get("domain_weights")),
        threshold=typed(source, "selection.threshold", data.get("threshold", 0.0), float),
        prototype_pooling=choice(
            source,
            "selection.prototype_pooling",
            data.get("prototype_pooling", "per_domain"),
            PROTOTYPE_POOLING,
        ),
    )


# -- train config -------------------------------------------------------------------------------
TRAIN_KEYS = {f.name for f in dataclasses.fields(TrainConfig)} - {"source"}
TRAIN_REQUIRED = {
    "name",
    "model",
    "loss",
    "optimizer",
    "sampler",
    "data",
    "epochs",
    "batch_size",
    "out_dir",
}


def parse_train_config(data: Mapping[str, Any], source: str = "<dict>") -> TrainConfig:
    data = _section(source, "<file>", dict(data))
    check_keys(source, "", data, TRAIN_KEYS, TRAIN_REQUIRED)
    loss = _loss(source, data["loss"])
    config = TrainConfig(
        name=typed(source, "name", data["name"], str),
        model=_model(source, "model", data["model"]),
        loss=loss,
        optimizer=_optimizer(source, data["optimizer"]),
        sampler=_sampler(source, data["sampler"]),
        data=_data(source, data["data"]),
        selection=_selection(source, data.get("selection"), loss.kind),
        epochs=typed(source, "epochs", data["epochs"], int, minimum=1),
        batch_size=typed(source, "batch_size", data["batch_size"], int, minimum=1),
        grad_accumulation=typed(
            source, "grad_accumulation", data.get("grad_accumulation", 1), int, minimum=1
        ),
        out_dir=typed(source, "out_dir", data["out_dir"], str),
        init_checkpoint=_optional(source, "init_checkpoint", data.get("init_checkpoint"), str),
        init_mode=choice(source, "init_mode", data.get("init_mode", "backbone"), INIT_MODES),
        unfreeze=_unfreeze(source, data.get("unfreeze", "all")),
        domain_loss_weights=_weights(
            source, "domain_loss_weights", data.get("domain_loss_weights")
        ),
        domain_loss_mode=choice(
            source, "domain_loss_mode", data.get("domain_loss_mode", "shares"), DOMAIN_LOSS_MODES
        ),
        normalisation=_optional_choice(
            source, "normalisation", data.get("normalisation"), NORMALISATIONS
        ),
        layout=_optional_choice(source, "layout", data.get("layout"), LAYOUTS),
        augment=_augment(source, data.get("augment")),
        amp=choice(source, "amp", data.get("amp", "auto"), AMP_MODES),
        device=choice(source, "device", data.get("device", "auto"), DEVICES),
        workers=typed(source, "workers", data.get("workers", 2), int, minimum=0),
        eval_batch_size=_optional(
            source, "eval_batch_size", data.get("eval_batch_size"), int, minimum=1
        ),
        decode_cache_gb=typed(
            source, "decode_cache_gb", data.get("decode_cache_gb", 0.0), float, minimum=0.0
        ),
        decode_cache_dir=_optional(source, "decode_cache_dir", data.get("decode_cache_dir"), str),
        seed=typed(source, "seed", data.get("seed", 0), int, minimum=0),
        checkpoint_every_steps=typed(
            source, "checkpoint_every_steps", data.get("checkpoint_every_steps", 0), int, minimum=0
        ),
        log_every_steps=typed(
            source, "log_every_steps", data.get("log_every_steps", 50), int, minimum=1
        ),
        source=source,
    )
    if config.selection.protocol == "prototype" and not config.data.support:
        raise ConfigError(
            source,
            "data.support",
            [],
            "support split files for the prototype "
            "protocol of selection (or selection.protocol: softmax)",
        )
    if config.init_checkpoint is None and "init_mode" in data:
        raise ConfigError(
            source, "init_mode", data["init_mode"], "no init_mode without init_checkpoint"
        )
    return config


def load_train_config(path: str | os.PathLike) -> TrainConfig:
    path = Path(path)
    return parse_train_config(load_yaml(path), str(path))


# -- eval config --------------------------------------------------------------------------------
EVAL_KEYS = {f.name for f in dataclasses.fields(EvalConfig)} - {"source"}


def parse_eval_config(data: Mapping[str, Any], source: str = "<dict>") -> EvalConfig:
    data = _section(source, "<file>", dict(data))
    check_keys(source, "", data, EVAL_KEYS, {"name", "checkpoint", "protocols", "query", "out_dir"})
    protocols = data["protocols"]
    if isinstance(protocols, str):
        protocols = [protocols]
    if not isinstance(protocols, list) or not protocols or len(set(protocols)) != len(protocols):
        raise ConfigError(
            source, "protocols", protocols, f"a non-empty list among {EVAL_PROTOCOLS}"
        )
    for protocol in protocols:
        choice(source, "protocols", protocol, EVAL_PROTOCOLS)
    support = _paths(source, "support", data.get("support"), required=False)
    if "prototype" in protocols and not support:
        raise ConfigError(
            source,
            "support",
            data.get("support"),
            "support split files (the prototype protocol builds its prototypes there)",
        )
    calibration = _paths(source, "calibration", data.get("calibration"), required=False)
    anomaly_threshold = _optional(source, "anomaly_threshold", data.get("anomaly_threshold"), float)
    if "anomaly" in protocols and anomaly_threshold is None and not calibration:
        raise ConfigError(
            source,
            "anomaly_threshold",
            None,
            "a fixed threshold (the card's 0.3137), or calibration split files "
            "with real and fake clips to choose it on",
        )
    return EvalConfig(
        name=typed(source, "name", data["name"], str),
        checkpoint=typed(source, "checkpoint", data["checkpoint"], str),
        protocols=tuple(protocols),
        query=_paths(source, "query", data["query"], required=True),
        out_dir=typed(source, "out_dir", data["out_dir"], str),
        support=support,
        model=None if data.get("model") is None else _model(source, "model", data["model"]),
        normalisation=_optional_choice(
            source, "normalisation", data.get("normalisation"), NORMALISATIONS
        ),
        layout=_optional_choice(source, "layout", data.get("layout"), LAYOUTS),
        threshold=typed(source, "threshold", data.get("threshold", 0.0), float),
        prototype_pooling=choice(
            source,
            "prototype_pooling",
            data.get("prototype_pooling", "per_domain"),
            PROTOTYPE_POOLING,
        ),
        anomaly_threshold=anomaly_threshold,
        calibration=calibration,
        batch_size=typed(source, "batch_size", data.get("batch_size", 8), int, minimum=1),
        workers=typed(source, "workers", data.get("workers", 2), int, minimum=0),
        amp=choice(source, "amp", data.get("amp", "auto"), AMP_MODES),
        device=choice(source, "device", data.get("device", "auto"), DEVICES),
        plots=typed(source, "plots", data.get("plots", True), bool),
        source=source,
    )


def load_eval_config(path: str | os.PathLike) -> EvalConfig:
    path = Path(path)
    return parse_eval_config(load_yaml(path), str(path))
