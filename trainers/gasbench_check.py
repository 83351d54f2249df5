"""GASBench's static check of a model directory's `model.py`, applied before it is imported.

GASBench refuses a `model.py` that imports anything outside its allowed packages or calls the
dynamic-code builtins (the allowed and blocked lists of its `docs/Safetensors.md`, "Allowed
Packages" / "Blocked Packages", and the study in `shared/docs/gasbench.md` section 9). The check
reads the source with `ast` only: nothing of the directory runs, so a directory GASBench would
reject is refused here with the offending line before any of its code is executed.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

# import roots a model.py may use (ML frameworks, image/video processing, science, a few stdlib)
ALLOWED_MODULES = frozenset(
    {
        "torch",
        "torchvision",
        "torchaudio",
        "transformers",
        "safetensors",
        "einops",
        "timm",
        "flash_attn",
        "PIL",
        "cv2",
        "skimage",
        "decord",
        "fvcore",
        "ultralytics",
        "numpy",
        "scipy",
        "math",
        "functools",
        "typing",
        "collections",
        "dataclasses",
        "enum",
        "abc",
        "pathlib",
    }
)
# named with their reason, so the message says why rather than only "not allowed"
BLOCKED_MODULES = {
    "os": "system access",
    "sys": "system access",
    "subprocess": "system access",
    "shutil": "system access",
    "glob": "system access",
    "tempfile": "system access",
    "importlib": "dynamic import",
    "threading": "threads",
    "multiprocessing": "processes",
    "requests": "network access",
    "urllib": "network access",
    "socket": "network access",
    "http": "network access",
    "pickle": "serialisation (security risk)",
    "joblib": "serialisation (security risk)",
    "apex": "training-only",
    "deepspeed": "training-only",
    "tensorboard": "logging-only",
    "tensorboardX": "logging-only",
    "wandb": "logging",
    "mlflow": "logging",
    "numba": "JIT compilation",
    "cython": "JIT compilation",
    "boto3": "cloud SDK",
    "google": "cloud SDK",
    "azure": "cloud SDK",
    "sqlite3": "database access",
    "psycopg2": "database access",
    "redis": "database access",
}
BLOCKED_CALLS = frozenset(
    {"eval", "exec", "compile", "__import__", "getattr", "setattr", "delattr"}
)


@dataclass(frozen=True)
class Violation:
    line: int
    code: str  # the source line, stripped
    reason: str

    def describe(self, path: Path) -> str:
        return f"{path.name} line {self.line}: {self.reason}: {self.code}"


def _import_roots(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:  # a relative import reaches files GASBench does not ship
            return ["." * node.level + (node.module or "")]
        return [node.module or ""]
    return []


def _module_reason(name: str) -> str | None:
    root = name.split(".")[0]
    if name.startswith("."):
        return f"relative import {name!r} is not allowed"
    if root in BLOCKED_MODULES:
        return f"blocked import {name!r} ({BLOCKED_MODULES[root]})"
    if root not in ALLOWED_MODULES:
        return f"import {name!r} is not among GASBench's allowed packages"
    return None


def _call_reason(node: ast.AST) -> str | None:
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    name = func.id if isinstance(func, ast.Name) else None
    if name in BLOCKED_CALLS:
        return f"blocked call {name}()"
    return None


def find_violations(source: str) -> list[Violation]:
    """Every blocked or unlisted import and every blocked call of a model.py source, in order."""
    tree = ast.parse(source)
    lines = source.splitlines()
    found = []
    for node in ast.walk(tree):
        reasons = [_module_reason(name) for name in _import_roots(node)] + [_call_reason(node)]
        for reason in filter(None, reasons):
            code = lines[node.lineno - 1].strip() if 0 < node.lineno <= len(lines) else ""
            found.append(Violation(node.lineno, code, reason))
    return sorted(found, key=lambda v: v.line)


def check_model_code(path: Path) -> list[Violation]:
    """The violations of a model.py file; a file that is not Python is one violation."""
    source = path.read_text(encoding="utf-8")
    try:
        return find_violations(source)
    except SyntaxError as err:
        return [
            Violation(err.lineno or 0, (err.text or "").strip(), f"not valid Python ({err.msg})")
        ]


__all__ = [
    "ALLOWED_MODULES",
    "BLOCKED_CALLS",
    "BLOCKED_MODULES",
    "Violation",
    "check_model_code",
    "find_violations",
]
