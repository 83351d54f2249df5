"""Evaluation reports: `results.json`, `results.md`, `predictions.jsonl` and `plots.png`.

The Markdown tables follow the model cards: the prototype protocol reports AUROC, EER and
accuracy per domain (R(2+1)D card), the benchmark protocol accuracy, MCC, Brier,
cross-entropy and the combined score per dataset plus mean and p95 inference time per clip
(multi-modal card). The PNG has, per protocol, the ROC curve and the score histograms
(real vs fake) of every group. Every file is written to a temporary name and renamed.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
from vfcache.trainers import metrics
from vfcache.trainers.protocols import ALL_ROW, DetectionRow, ProtocolResult

from vfcache.atomic import atomic_write, write_json_atomic


@dataclass(frozen=True)
class ReportFiles:
    json: Path
    markdown: Path
    predictions: Path
    png: Optional[Path]


def _fmt(value: Optional[float], digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


DETECTION_METRICS = (("AUROC", "auroc"), ("EER", "eer"), ("Accuracy", "accuracy"), ("MCC", "mcc"))


def _rows_table(
    rows: Sequence[DetectionRow], group: str, columns: Sequence[tuple[str, str]]
) -> list[str]:
    """One line per row: its name, its clips (real / fake), then each `(header,
    DetectionRow attribute)` of `columns` to 3 decimals."""
    header = [
        "| " + " | ".join([group, "Clips (real / fake)", *(title for title, _ in columns)]) + " |",
        "|" + "---|" * (len(columns) + 2),
    ]
    return header + [
        f"| {row.name} | {row.num_clips} ({row.num_real} / {row.num_fake}) | "
        + " | ".join(_fmt(getattr(row, attr)) for _, attr in columns)
        + " |"
        for row in rows
    ]


def _prototype_table(result: ProtocolResult) -> list[str]:
    lines = _rows_table(result.rows, "Domain", DETECTION_METRICS)
    lines += [
        "",
        f"Fake when sim_fake - sim_real >= {result.threshold:g}.",
        "",
        "| Domain | Support real | Support fake | cos(real, fake prototype) |",
        "|---|---|---|---|",
    ]
    for proto in result.prototypes:
        lines.append(
            f"| {proto.domain} | {proto.num_real} | {proto.num_fake} | "
            f"{_fmt(proto.cosine_real_fake)} |"
        )
    return lines


def _benchmark_table(result: ProtocolResult) -> list[str]:
    lines = _rows_table(
        result.rows,
        result.group_by.capitalize(),
        [
            ("Accuracy", "accuracy"),
            ("MCC", "mcc"),
            ("Brier", "brier"),
            ("Cross-entropy", "cross_entropy"),
            ("Combined", "combined_score"),
            ("AUROC", "auroc"),
        ],
    )
    if result.timing is not None:
        lines += [
            "",
            f"Inference time per clip: mean {result.timing.mean_ms_per_clip:.2f} ms, "
            f"p95 {result.timing.p95_ms_per_clip:.2f} ms ({result.timing.num_clips} clips).",
        ]
    return lines


def render_markdown(
    name: str, results: Mapping[str, ProtocolResult], context: Mapping[str, Any]
) -> str:
    lines = [f"# Evaluation: {name}", ""]
    for key in ("checkpoint", "checkpoint_epoch", "normalisation", "device"):
        if key in context:
            lines.append(f"- {key.replace('_', ' ')}: `{context[key]}`")
    if "gasbench" in context:
        lines += ["", "## GASBench scores (sn34 table)", ""] + _gasbench_table(context["gasbench"])
    tables = {"prototype": _prototype_table, "anomaly": _anomaly_table}
    for protocol, result in results.items():
        lines += ["", f"## {protocol.capitalize()} protocol", ""]
        lines += tables.get(protocol, _benchmark_table)(result)
        lines += _generator_table(result)
    return "\n".join(lines) + "\n"


def _gasbench_table(scores: Mapping[str, Any]) -> list[str]:
    """GASBench's metrics per dataset entry and overall, under its names
    (`vfcache.trainers.gasbench_scores`)."""
    columns = ("total", "accuracy", "mcc", "brier", "cross_entropy", "sn34_score")
    lines = ["| Dataset | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    blocks = list(scores["per_dataset"].items()) + [("overall", scores)]
    for name, block in blocks:
        lines.append(
            f"| {name} | {block['total']} | "
            + " | ".join(_fmt(block[c], 4) for c in columns[1:])
            + " |"
        )
    return lines + [
        "",
        f"overall_score (accuracy) {_fmt(scores['overall_score'], 4)}; inference time per "
        f"sample: avg {_fmt(scores['avg_inference_time_ms'], 2)} ms, "
        f"p95 {_fmt(scores['p95_inference_time_ms'], 2)} ms.",
    ]


def _anomaly_table(result: ProtocolResult) -> list[str]:
    lines = _rows_table(
        result.rows,
        "Domain",
        [
            ("AUROC", "auroc"),
            ("EER", "eer"),
            ("Accuracy", "accuracy"),
            ("Precision", "precision"),
            ("Recall", "recall"),
            ("F1", "f1"),
            ("FPR", "fpr"),
        ],
    )
    lines += [
        "",
        f"Fake when the anomaly score (reconstruction error) >= {result.threshold:.4g}.",
        "",
        "| Domain | Real score (mean +- std) | Fake score (mean +- std) | Separation ratio |",
        "|---|---|---|---|",
    ]
    for stats in result.score_stats:
        lines.append(
            f"| {stats.name} | {_fmt(stats.real_mean, 4)} +- {_fmt(stats.real_std, 4)} | "
            f"{_fmt(stats.fake_mean, 4)} +- {_fmt(stats.fake_std, 4)} | "
            f"{_fmt(stats.separation_ratio, 2)} |"
        )
    return lines


def _generator_table(result: ProtocolResult) -> list[str]:
    """Each fake generator against every real clip of its domain (one shared real pool)."""
    if not result.generator_rows:
        return []
    return ["", "Each fake generator against all real clips of its domain:", ""] + _rows_table(
        result.generator_rows, "Domain / generator", DETECTION_METRICS
    )


def _result_json(result: ProtocolResult) -> dict:
    return {
        "protocol": result.protocol,
        "group_by": result.group_by,
        "threshold": result.threshold,
        "rows": [dataclasses.asdict(row) for row in result.rows],
        "generator_rows": [dataclasses.asdict(row) for row in result.generator_rows],
        "score_stats": [dataclasses.asdict(stats) for stats in result.score_stats],
        "timing": None if result.timing is None else dataclasses.asdict(result.timing),
        "prototypes": [
            {
                "domain": p.domain,
                "num_real": p.num_real,
                "num_fake": p.num_fake,
                "cosine_real_fake": p.cosine_real_fake,
            }
            for p in result.prototypes
        ],
    }


def _prediction_lines(results: Mapping[str, ProtocolResult]) -> str:
    lines = []
    for protocol, result in results.items():
        for i, clip_id in enumerate(result.clip_ids):
            lines.append(
                json.dumps(
                    {
                        "protocol": protocol,
                        "clip_id": clip_id,
                        "group": str(result.groups[i]),
                        "label": int(result.labels[i]),
                        "score": float(result.scores[i]),
                        "prediction": int(result.predictions[i]),
                        "prob_fake": None
                        if result.prob_fake is None
                        else float(result.prob_fake[i]),
                    },
                    sort_keys=True,
                )
            )
    return "".join(line + "\n" for line in lines)


def _plot_group(roc_axis, hist_axis, result: ProtocolResult, row: DetectionRow) -> None:
    pick = np.ones(len(result.labels), bool) if row.name == ALL_ROW else result.groups == row.name
    labels, scores = result.labels[pick], result.scores[pick]
    title = f"{result.protocol}: {row.name}"
    if row.auroc is not None:
        curve = metrics.roc_curve(labels, scores)
        roc_axis.plot(curve.fpr, curve.tpr, lw=1.5)
        roc_axis.set_title(f"{title} (AUROC {row.auroc:.3f}, EER {row.eer:.3f})", fontsize=8)
    else:
        roc_axis.set_title(f"{title} (one class only)", fontsize=8)
    roc_axis.plot([0, 1], [0, 1], ls=":", color="grey", lw=0.8)
    roc_axis.set_xlabel("false positive rate", fontsize=7)
    roc_axis.set_ylabel("true positive rate", fontsize=7)
    bins = np.linspace(scores.min(), scores.max(), 21) if scores.size and np.ptp(scores) > 0 else 10
    for label, colour in ((0, "tab:blue"), (1, "tab:red")):
        if np.any(labels == label):
            hist_axis.hist(
                scores[labels == label],
                bins=bins,
                alpha=0.55,
                color=colour,
                label="fake" if label else "real",
            )
    hist_axis.axvline(result.threshold, color="black", ls="--", lw=0.8)
    hist_axis.set_xlabel(
        {"anomaly": "reconstruction error", "prototype": "sim_fake - sim_real"}.get(
            result.protocol, "logit margin"
        ),
        fontsize=7,
    )
    hist_axis.legend(fontsize=7)


def render_png(path: Path, results: Mapping[str, ProtocolResult]) -> Path:
    from matplotlib.figure import Figure  # Agg canvas, no pyplot state; imported only to plot

    columns = max(len(r.rows) for r in results.values())
    figure = Figure(figsize=(3.2 * columns, 5.6 * len(results)), layout="constrained")
    axes = figure.subplots(2 * len(results), columns, squeeze=False)
    for block, result in enumerate(results.values()):
        for column in range(columns):
            roc_axis, hist_axis = axes[2 * block, column], axes[2 * block + 1, column]
            if column < len(result.rows):
                _plot_group(roc_axis, hist_axis, result, result.rows[column])
            else:
                roc_axis.set_visible(False)
                hist_axis.set_visible(False)
    with atomic_write(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=110)
    return path


def write_eval_report(
    out_dir: Path,
    *,
    name: str,
    results: Mapping[str, ProtocolResult],
    context: Mapping[str, Any],
    plots: bool = True,
) -> ReportFiles:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "results.json"
    write_json_atomic(
        json_path,
        {"name": name, **context, "results": {k: _result_json(v) for k, v in results.items()}},
    )
    markdown_path = out_dir / "results.md"
    with atomic_write(markdown_path, "w") as handle:
        handle.write(render_markdown(name, results, context))
    predictions_path = out_dir / "predictions.jsonl"
    with atomic_write(predictions_path, "w") as handle:
        handle.write(_prediction_lines(results))
    png_path = render_png(out_dir / "plots.png", results) if plots and results else None
    return ReportFiles(
        json=json_path, markdown=markdown_path, predictions=predictions_path, png=png_path
    )
