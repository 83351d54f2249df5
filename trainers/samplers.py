"""Batch samplers: class balance, domain weights and generator-aware quotas.

Every sampler builds the whole epoch's list of batches from a numpy Generator seeded with
`(seed, epoch)`, identically on every rank; rank `r` of `world_size` then takes the global
batches `r, r + world_size, ...` (drop-last, so every rank gets the same count). What an
epoch contains is therefore a pure function of (seed, epoch, metadata), and a resumed run
skips exactly what was consumed: the state is the epoch and the number of global batches
already done, which also survives a change of world size.

The samplers draw each group's clips from a shuffled cycle (every clip once per cycle,
reshuffled when exhausted, never twice in one batch while the group has enough clips), so a
minority class or domain is oversampled rather than starving the batch.

A DataLoader pulls batches ahead of the training loop, so pass the number of steps the
loop really finished to `state_dict(batches_consumed=...)`.
"""

from __future__ import annotations

from typing import Hashable, Iterator, Literal, Mapping, Sequence

import numpy as np
from torch.utils.data import Sampler


def batch_quotas(batch_size: int, weights: Sequence[float], batch_number: int = 0) -> np.ndarray:
    """Split `batch_size` slots over groups in proportion to `weights` (largest remainder).

    Each count is the floor or the ceiling of its exact share; the slots left over go to the
    largest fractional parts, and among equal fractional parts they rotate with
    `batch_number`, so e.g. 25 slots over two equal classes give 13/12, then 12/13.
    """
    w = np.asarray(weights, dtype=np.float64)
    if (
        batch_size < 0
        or w.ndim != 1
        or len(w) == 0
        or np.any(w < 0)
        or not np.isfinite(w).all()
        or w.sum() <= 0
    ):
        raise ValueError(
            f"need batch_size >= 0 and non-negative weights with a positive sum, got {batch_size}, "
            f"{weights}"
        )
    exact = batch_size * w / w.sum()
    counts = np.floor(exact + 1e-9).astype(np.int64)
    fraction = np.round(exact - counts, 9)
    left = batch_size - int(counts.sum())
    k = len(w)
    order = sorted(
        (c for c in range(k) if w[c] > 0), key=lambda c: (-fraction[c], (c - batch_number) % k)
    )
    for c in order[:left]:
        counts[c] += 1
    return counts


class _ShuffledCycle:
    """Draws from a pool of clip indices: a permutation at a time, never repeating inside one draw
    while the pool is at least as large as the draw."""

    def __init__(self, pool: np.ndarray, rng: np.random.Generator):
        self.pool = np.asarray(pool, dtype=np.int64)
        self.rng = rng
        self.order = rng.permutation(self.pool)
        self.position = 0

    def take(self, count: int) -> np.ndarray:
        taken: list[np.ndarray] = []
        while count > 0:
            if self.position == len(self.order):
                fresh = self.rng.permutation(self.pool)
                if taken:  # push clips already in this draw to the back of the new cycle
                    already = np.concatenate(taken)
                    late = np.isin(fresh, already)
                    fresh = np.concatenate([fresh[~late], fresh[late]])
                self.order, self.position = fresh, 0
            step = min(count, len(self.order) - self.position)
            taken.append(self.order[self.position : self.position + step])
            self.position += step
            count -= step
        return np.concatenate(taken) if taken else np.empty(0, dtype=np.int64)


def _groups(values: Sequence[Hashable]) -> dict[Hashable, np.ndarray]:
    """value -> indices holding it, in sorted value order."""
    array = np.asarray(values, dtype=object)
    keys = sorted(set(array.tolist()), key=str)
    return {key: np.flatnonzero(array == key) for key in keys}


def _weights_for(
    groups: Mapping[Hashable, np.ndarray], weights: Mapping | None, what: str
) -> list[float]:
    if weights is None:
        return [1.0] * len(groups)
    unknown = set(weights) - set(groups)
    if unknown:
        raise ValueError(
            f"{what} weights name {sorted(unknown, key=str)}, not in the dataset "
            f"{sorted(groups, key=str)}"
        )
    missing = set(groups) - set(weights)
    if missing:
        raise ValueError(
            f"{what} weights miss {sorted(missing, key=str)}; give every {what} a weight (0 to "
            f"leave it out)"
        )
    return [float(weights[key]) for key in groups]


class EpochBatchSampler(Sampler[list[int]]):
    """Shared machinery: per-epoch global batches, the rank split, and the resume state.

    Subclasses implement `_build_batches(rng)` returning `num_batches` lists of dataset indices.
    """

    def __init__(
        self,
        *,
        batch_size: int,
        num_batches: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not valid for world_size {world_size}")
        if num_batches < world_size:
            raise ValueError(
                f"{num_batches} batches per epoch cannot feed {world_size} ranks; "
                "raise num_batches or lower batch_size"
            )
        self.batch_size, self.num_batches = batch_size, num_batches
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0
        self._start = 0  # global batches of `epoch` to skip in the next iteration
        self._iter_start = 0
        self._yielded = 0

    def _build_batches(self, rng: np.random.Generator) -> list[np.ndarray]:
        raise NotImplementedError

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """Every batch of `epoch` for all ranks, in global order (the same on every rank)."""
        rng = np.random.default_rng([self.seed, epoch])
        batches = self._build_batches(rng)
        if len(batches) != self.num_batches:
            raise AssertionError(
                f"{type(self).__name__} built {len(batches)} batches, expected {self.num_batches}"
            )
        return [[int(i) for i in batch] for batch in batches]

    def _global_positions(self, start: int) -> range:
        per_rank = max(0, self.num_batches - start) // self.world_size
        first = start + self.rank
        return range(first, first + per_rank * self.world_size, self.world_size)

    def __len__(self) -> int:
        return len(self._global_positions(self._start))

    def __iter__(self) -> Iterator[list[int]]:
        start = self._start
        batches = self.epoch_batches(self.epoch)
        self._iter_start, self._yielded = start, 0
        for position in self._global_positions(start):
            self._yielded += 1
            yield batches[position]
        self._start = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch; the same epoch again keeps a pending resume point."""
        if epoch != self.epoch:
            self.epoch, self._start, self._iter_start, self._yielded = epoch, 0, 0, 0

    def state_dict(self, batches_consumed: int | None = None) -> dict:
        """Where this rank stands: `batches_consumed` of the current iteration (default: what the
        sampler has handed out, which runs ahead of training behind a prefetching DataLoader)."""
        done = self._yielded if batches_consumed is None else batches_consumed
        if not 0 <= done <= self._yielded:
            raise ValueError(
                f"batches_consumed={batches_consumed} but only {self._yielded} batches were handed "
                f"out"
            )
        return {
            "sampler": type(self).__name__,
            "seed": self.seed,
            "num_batches": self.num_batches,
            "batch_size": self.batch_size,
            "epoch": self.epoch,
            "global_batches_done": min(self.num_batches, self._iter_start + done * self.world_size),
        }

    def load_state_dict(self, state: Mapping) -> None:
        """Resume: the next iteration yields exactly the batches of `epoch` not yet done."""
        for key, mine in (
            ("sampler", type(self).__name__),
            ("seed", self.seed),
            ("num_batches", self.num_batches),
            ("batch_size", self.batch_size),
        ):
            if state.get(key) != mine:
                raise ValueError(
                    f"sampler state has {key}={state.get(key)!r}, this sampler has {mine!r}; "
                    "a different sampler would not continue the same epoch"
                )
        done = int(state["global_batches_done"])
        if not 0 <= done <= self.num_batches:
            raise ValueError(f"global_batches_done={done} outside 0..{self.num_batches}")
        self.epoch = int(state["epoch"])
        self._start = self._iter_start = done
        self._yielded = 0


class WeightedRandomBatchSampler(EpochBatchSampler):
    """PyTorch's WeightedRandomSampler in batches (the CLIP-adapter card's class balancing):
    every slot of every batch is drawn with replacement, clip i with probability proportional to
    1 / (clips of its class), so each class fills an equal share of an epoch on average."""

    def __init__(
        self,
        labels: Sequence[int],
        batch_size: int,
        *,
        num_batches: int | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        labels = np.asarray([int(label) for label in labels])
        if len(labels) == 0:
            raise ValueError("no clips to sample from")
        _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
        weights = 1.0 / counts[inverse]
        self.probabilities = weights / weights.sum()
        super().__init__(
            batch_size=batch_size,
            num_batches=_default_num_batches(len(labels), batch_size, num_batches),
            seed=seed,
            rank=rank,
            world_size=world_size,
        )

    def _build_batches(self, rng: np.random.Generator) -> list[np.ndarray]:
        drawn = rng.choice(
            len(self.probabilities),
            size=(self.num_batches, self.batch_size),
            replace=True,
            p=self.probabilities,
        )
        return list(drawn)


def _default_num_batches(num_clips: int, batch_size: int, num_batches: int | None) -> int:
    if num_batches is not None:
        return num_batches
    return max(1, num_clips // batch_size)


class ClassBalancedBatchSampler(EpochBatchSampler):
    """Every batch holds each class in fixed proportion (default: equal, i.e. half real half
    fake)."""

    def __init__(
        self,
        labels: Sequence[int],
        batch_size: int,
        *,
        class_proportions: Mapping[int, float] | None = None,
        num_batches: int | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.pools = _groups([int(label) for label in labels])
        self.weights = _weights_for(self.pools, class_proportions, "class")
        super().__init__(
            batch_size=batch_size,
            num_batches=_default_num_batches(len(labels), batch_size, num_batches),
            seed=seed,
            rank=rank,
            world_size=world_size,
        )

    def _build_batches(self, rng: np.random.Generator) -> list[np.ndarray]:
        cycles = [_ShuffledCycle(pool, rng) for pool in self.pools.values()]
        batches = []
        for number in range(self.num_batches):
            quotas = batch_quotas(self.batch_size, self.weights, number)
            picked = np.concatenate([cycle.take(int(q)) for cycle, q in zip(cycles, quotas)])
            batches.append(rng.permutation(picked))
        return batches


class DomainWeightedBatchSampler(EpochBatchSampler):
    """Each batch draws its domains with the given weights, e.g. {"aegis": 0.5, "dvf": 0.3,
    "genvideo": 0.2}.

    `composition="draw"`: a multinomial draw per batch (weights hold on average);
    `"quota"`: fixed per-batch counts from `batch_quotas` (weights hold in every batch up to
    rounding).
    """

    def __init__(
        self,
        domains: Sequence[str],
        batch_size: int,
        *,
        domain_weights: Mapping[str, float] | None = None,
        composition: Literal["draw", "quota"] = "draw",
        num_batches: int | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        if composition not in ("draw", "quota"):
            raise ValueError(f"composition must be 'draw' or 'quota', got {composition!r}")
        self.pools = _groups(list(domains))
        self.weights = _weights_for(self.pools, domain_weights, "domain")
        if sum(self.weights) <= 0 or min(self.weights) < 0:
            raise ValueError(
                f"domain weights must be >= 0 with a positive sum, got {domain_weights}"
            )
        self.composition = composition
        super().__init__(
            batch_size=batch_size,
            num_batches=_default_num_batches(len(domains), batch_size, num_batches),
            seed=seed,
            rank=rank,
            world_size=world_size,
        )

    def _build_batches(self, rng: np.random.Generator) -> list[np.ndarray]:
        cycles = [_ShuffledCycle(pool, rng) for pool in self.pools.values()]
        probabilities = np.asarray(self.weights) / sum(self.weights)
        batches = []
        for number in range(self.num_batches):
            if self.composition == "draw":
                counts = rng.multinomial(self.batch_size, probabilities)
            else:
                counts = batch_quotas(self.batch_size, self.weights, number)
            picked = np.concatenate([cycle.take(int(c)) for cycle, c in zip(cycles, counts)])
            batches.append(rng.permutation(picked))
        return batches


class GeneratorQuotaBatchSampler(EpochBatchSampler):
    """Generator-aware quota sampling: class quotas per batch as in `ClassBalancedBatchSampler`,
    and within each class its generators share the class's slots equally; the slots that do
    not divide evenly rotate round-robin from batch to batch (starting at a random generator
    each epoch), so every generator gets the same share of an epoch up to one clip per batch.

    With `domains`, a generator is a (domain, generator) pair: `sora` of AEGIS and `sora` of
    DVF are two generators with a share each, not one pool."""

    def __init__(
        self,
        labels: Sequence[int],
        generators: Sequence[str],
        batch_size: int,
        *,
        class_proportions: Mapping[int, float] | None = None,
        num_batches: int | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        domains: Sequence[str] | None = None,
    ):
        if len(labels) != len(generators) or (domains is not None and len(domains) != len(labels)):
            raise ValueError(
                f"{len(labels)} labels but {len(generators)} generators"
                + ("" if domains is None else f" and {len(domains)} domains")
            )
        label_pools = _groups([int(label) for label in labels])
        self.weights = _weights_for(label_pools, class_proportions, "class")
        keys = generators if domains is None else [f"{d}/{g}" for d, g in zip(domains, generators)]
        generator_array = np.asarray(keys, dtype=object)
        self.pools = {  # label -> generator -> clip indices
            label: {gen: pool[idx] for gen, idx in _groups(generator_array[pool].tolist()).items()}
            for label, pool in label_pools.items()
        }
        super().__init__(
            batch_size=batch_size,
            num_batches=_default_num_batches(len(labels), batch_size, num_batches),
            seed=seed,
            rank=rank,
            world_size=world_size,
        )

    def _build_batches(self, rng: np.random.Generator) -> list[np.ndarray]:
        cycles = {
            label: [_ShuffledCycle(pool, rng) for pool in by_gen.values()]
            for label, by_gen in self.pools.items()
        }
        cursor = {
            label: int(rng.integers(len(c))) for label, c in cycles.items()
        }  # next generator owed an extra slot
        batches = []
        for number in range(self.num_batches):
            class_quotas = batch_quotas(self.batch_size, self.weights, number)
            picked = []
            for (label, label_cycles), quota in zip(cycles.items(), class_quotas):
                g = len(label_cycles)
                base, extra = divmod(int(quota), g)
                first = cursor[label]
                cursor[label] = (first + extra) % g
                for k, cycle in enumerate(label_cycles):
                    picked.append(cycle.take(base + (1 if (k - first) % g < extra else 0)))
            batches.append(rng.permutation(np.concatenate(picked)))
        return batches
