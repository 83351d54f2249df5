"""Integer arithmetic behind split assignment: sizes -> clip counts, stratum quotas, subset sums.

All pure and exact (`fractions.Fraction`, Python ints as bitsets), so the same inputs give the
same counts on every machine.

- `largest_remainder`: round non-negative shares to integers with a fixed total.
- `round_matrix`: round a parts x strata table of proportional shares so that every part
  total and every stratum total is met exactly and every cell is the floor or the ceiling of
  its share (a controlled rounding, which always exists for integer margins; found here as a
  max-flow over the cells with a fractional share).
- `SuffixReach`: which totals the groups from position i onwards can make (subset sums),
  so a greedy pass over the groups can be steered to hit a part size exactly.
"""

from __future__ import annotations

import math
from collections import deque
from fractions import Fraction
from typing import Sequence


def largest_remainder(shares: Sequence[Fraction], total: int) -> list[int]:
    """Floors of `shares`, plus one for the largest remainders (ties: earlier first) to reach
    `total`."""
    floors = [math.floor(share) for share in shares]
    missing = total - sum(floors)
    if missing < 0 or missing > len(shares):
        raise ValueError(
            f"shares {[str(s) for s in shares]} cannot be rounded to a total of {total}"
        )
    order = sorted(range(len(shares)), key=lambda i: (-(shares[i] - floors[i]), i))
    for i in order[:missing]:
        floors[i] += 1
    return floors


def round_matrix(row_totals: Sequence[int], col_totals: Sequence[int]) -> list[list[int]]:
    """Cell (r, c) gets floor or ceil of row_totals[r] * col_totals[c] / N with both margins exact.

    Greedy by largest fractional part first, then augmenting paths finish the rounding (the
    bipartite flow always saturates because both margins are integers).
    """
    total = sum(row_totals)
    if total != sum(col_totals):
        raise ValueError(
            f"row totals {list(row_totals)} and column totals {list(col_totals)} differ"
        )
    rows, cols = len(row_totals), len(col_totals)
    if total == 0:
        return [[0] * cols for _ in range(rows)]
    share = [[Fraction(r * c, total) for c in col_totals] for r in row_totals]
    cell = [[math.floor(s) for s in row] for row in share]
    row_need = [row_totals[r] - sum(cell[r]) for r in range(rows)]
    col_room = [col_totals[c] - sum(cell[r][c] for r in range(rows)) for c in range(cols)]
    fractional = [[share[r][c] != cell[r][c] for c in range(cols)] for r in range(rows)]
    bumped = [[False] * cols for _ in range(rows)]
    by_fraction = sorted(
        ((r, c) for r in range(rows) for c in range(cols) if fractional[r][c]),
        key=lambda rc: (-(share[rc[0]][rc[1]] - cell[rc[0]][rc[1]]), rc),
    )
    for r, c in by_fraction:
        if row_need[r] > 0 and col_room[c] > 0:
            bumped[r][c] = True
            row_need[r] -= 1
            col_room[c] -= 1
    for r in range(rows):
        while row_need[r] > 0:
            _augment(r, bumped, fractional, col_room)
            row_need[r] -= 1
    return [[cell[r][c] + int(bumped[r][c]) for c in range(cols)] for r in range(rows)]


def _augment(
    start: int, bumped: list[list[bool]], fractional: list[list[bool]], col_room: list[int]
) -> None:
    """Give row `start` one more bump: row -> free column, or row -> column -> row that gives its
    bump up."""
    rows, cols = len(bumped), len(bumped[0])
    came_from: dict[tuple[str, int], tuple[str, int] | None] = {("r", start): None}
    queue = deque([("r", start)])
    while queue:
        kind, index = queue.popleft()
        if kind == "r":
            for c in range(cols):
                if fractional[index][c] and not bumped[index][c] and ("c", c) not in came_from:
                    came_from[("c", c)] = (kind, index)
                    if col_room[c] > 0:
                        _flip_path(("c", c), came_from, bumped)
                        col_room[c] -= 1
                        return
                    queue.append(("c", c))
        else:
            for r in range(rows):
                if bumped[r][index] and ("r", r) not in came_from:
                    came_from[("r", r)] = (kind, index)
                    queue.append(("r", r))
    raise RuntimeError("controlled rounding found no augmenting path; margins are inconsistent")


def _flip_path(node: tuple[str, int], came_from: dict, bumped: list[list[bool]]) -> None:
    while came_from[node] is not None:
        prev = came_from[node]
        if node[0] == "c":  # reached column node[1] from row prev[1]: that row takes the bump
            bumped[prev[1]][node[1]] = True
        else:  # reached row node[1] from column prev[1]: that row gives its bump up
            bumped[node[1]][prev[1]] = False
        node = prev


class SuffixReach:
    """Subset sums (up to `cap`) of `sizes[i:]`, for every i.

    Sums are Python-int bitsets. Only every k-th suffix (k ~ sqrt(len)) is kept; a block is
    recomputed when a forward pass enters it, so memory stays O(sqrt(n) * cap / 8) bytes.

    A suffix whose sums up to `cap` are exactly the multiples of its sizes' gcd g (every sum is
    one) is marked full: its sums need no bitset, and a longer suffix that only adds multiples
    of g is full too. Many small groups get there long before the start of the list, so the
    bitset work is O(m * cap / 64) for the m groups of the tail that is not yet full, not for
    all n groups, which keeps large splits from going quadratic. Answers are exact either way.
    """

    def __init__(self, sizes: Sequence[int], cap: int):
        if any(size <= 0 for size in sizes):
            raise ValueError("group sizes must be positive")
        self._sizes = list(sizes)
        self._cap = cap
        self._mask = (1 << (cap + 1)) - 1
        self._block = max(1, math.isqrt(len(sizes)) + 1)
        self._full_masks: dict[int, int] = {}
        count = len(sizes)
        self._full_gcd = [0] * (count + 1)  # g > 0: the sums of sizes[i:] are the multiples of g
        current, divisor, full = 1, 0, False  # the empty suffix makes only 0
        self._checkpoints = {count: current}
        for i in range(count - 1, -1, -1):
            size = self._sizes[i]
            if full and size % divisor == 0:
                self._full_gcd[i] = divisor
                continue
            if full:  # a size off the lattice: back to a bitset, from the full set
                current, full = self._full_mask(divisor), False
            current = (current | (current << size)) & self._mask
            divisor = math.gcd(divisor, size)
            if current == self._full_mask(divisor):
                full = True
                self._full_gcd[i] = divisor
            elif i % self._block == 0:
                self._checkpoints[i] = current
        self._cached_block = -1
        self._cached: list[int] = []

    def _full_mask(self, divisor: int) -> int:
        """The bitset of every multiple of `divisor` from 0 to cap."""
        if divisor not in self._full_masks:
            bits = bytearray((self._cap + 8) // 8)
            for value in range(0, self._cap + 1, divisor):
                bits[value >> 3] |= 1 << (value & 7)
            self._full_masks[divisor] = int.from_bytes(bytes(bits), "little")
        return self._full_masks[divisor]

    def bits(self, i: int) -> int:
        count = len(self._sizes)
        if self._full_gcd[i]:
            return self._full_mask(self._full_gcd[i])
        if i == count:
            return self._checkpoints[count]
        block = i // self._block
        if block != self._cached_block:
            start = block * self._block
            end = min(start + self._block, count)
            current = (
                self._full_mask(self._full_gcd[end])
                if self._full_gcd[end]
                else self._checkpoints[end]
            )
            values = [0] * (end - start)
            for j in range(end - 1, start - 1, -1):
                if self._full_gcd[j]:
                    current = self._full_mask(self._full_gcd[j])
                else:
                    current = (current | (current << self._sizes[j])) & self._mask
                values[j - start] = current
            self._cached_block, self._cached = block, values
        return self._cached[i - block * self._block]

    def reachable(self, i: int, total: int) -> bool:
        if total < 0:
            return False
        divisor = self._full_gcd[i]
        if divisor:
            return total <= self._cap and total % divisor == 0
        return bool((self.bits(i) >> total) & 1)

    def best_at_most(self, total: int) -> int:
        """The largest total <= `total` that some subset of all sizes makes."""
        divisor = self._full_gcd[0]
        if divisor:
            top = min(total, self._cap)
            return top - top % divisor
        bits = self.bits(0) & ((1 << (total + 1)) - 1)
        return bits.bit_length() - 1
