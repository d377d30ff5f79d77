"""Decode plans for a causal model: many texts per call, each shared prompt prefix evaluated once.

With a causal model, the key/value states of a token depend only on the
tokens before it. Texts built from one template start with the same tokens,
so those states are the same for every text that starts with them: they can
be computed once and attended to by every text that continues them, and the
last-token (or mean) vector of each text is what it would be alone.

:func:`plan_decode` turns the token sequences of a chunk of texts into
:class:`DecodeGroup` s, each one llama.cpp decode call of at most ``budget``
tokens and ``max_seqs`` sequences:

* the sequences are sorted, so those sharing a prefix are neighbours (the
  depth-first order of a trie over token ids); identical sequences are
  evaluated once and stand for all their rows;
* a group lists the trie's nodes in that order: the token at position ``p``
  shared by sequences ``lo .. hi-1`` of the group is one entry, tagged with
  all of their sequence ids, so llama.cpp stores its key/value states once
  (in a unified KV cache) for all of them; every sequence sees its tokens in
  increasing position, each after the prefix it extends;
* ``share=False`` gives plain batching: every row its own sequence, all its
  tokens evaluated (the baseline the sharing is measured against).

Pure Python, no model: the plan is the same on every machine.

Examples
--------
>>> groups = plan_decode([[1, 5, 6, 7], [1, 5, 6, 9], [1, 5, 6, 7], [1, 2]], budget=16)
>>> g = groups[0]
>>> g.tokens, g.positions
([1, 2, 5, 6, 7, 9], [0, 1, 1, 2, 3, 3])
>>> [(lo, hi) for lo, hi in zip(g.seq_lo, g.seq_hi)]
[(0, 3), (0, 1), (1, 3), (1, 3), (1, 2), (2, 3)]
>>> g.rows, [p[-1] for p in g.paths]
([[3], [0, 2], [1]], [1, 4, 5])
>>> g.prompt_tokens, len(g.tokens)
(14, 6)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence


@dataclass
class DecodeGroup:
    """One decode call: trie nodes in depth-first order and the sequences (texts) they belong to.

    Attributes
    ----------
    tokens, positions : list of int
        One entry per token evaluated.
    seq_lo, seq_hi : list of int
        Entry ``i`` belongs to sequences ``seq_lo[i] .. seq_hi[i] - 1`` (group-local ids).
    paths : list of list of int
        Per sequence, the entries of its tokens in position order (the last
        one is its last token).
    rows : list of list of int
        Per sequence, the input rows it stands for (identical rows share one).
    prompt_tokens : int
        Tokens of those rows, duplicates counted: what one text per call evaluates.
    """

    tokens: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    seq_lo: list[int] = field(default_factory=list)
    seq_hi: list[int] = field(default_factory=list)
    paths: list[list[int]] = field(default_factory=list)
    rows: list[list[int]] = field(default_factory=list)
    prompt_tokens: int = 0

    @property
    def n_rows(self) -> int:
        """Input rows this group answers."""
        return sum(len(r) for r in self.rows)


def _lcp(a: Sequence[int], b: Sequence[int]) -> int:
    n, m = 0, min(len(a), len(b))
    while n < m and a[n] == b[n]:
        n += 1
    return n


def plan_decode(seqs: Sequence[Sequence[int]], *, budget: int, max_seqs: int = 256,
                share: bool = True) -> list[DecodeGroup]:
    """Pack token sequences into decode groups of at most ``budget`` tokens and ``max_seqs`` sequences.

    Parameters
    ----------
    seqs : sequence of sequence of int
        Token ids per row (BOS first), each non-empty and at most ``budget`` long.
    budget : int
        Tokens per decode call (llama.cpp's ``n_batch``; also the KV cells it needs).
    max_seqs : int
        Distinct sequences per call (llama.cpp's limit with a unified KV cache is 256).
    share : bool
        Evaluate shared prefixes and identical rows once (``False``: every row all its tokens).

    Returns
    -------
    list of DecodeGroup
        Every row appears in exactly one group.
    """
    if budget < 1 or max_seqs < 1:
        raise ValueError("budget and max_seqs must be at least 1")
    for i, s in enumerate(seqs):
        if not 0 < len(s) <= budget:
            raise ValueError(f"row {i} has {len(s)} tokens: each row needs 1 to {budget} (the decode budget)")
    order = sorted(range(len(seqs)), key=lambda i: list(seqs[i])) if share else range(len(seqs))
    groups: list[DecodeGroup] = []
    g: DecodeGroup | None = None
    prev: Sequence[int] = ()
    for row in order:
        s = seqs[row]
        if share and g is not None and g.rows and list(prev) == list(s):  # identical: the same sequence
            g.rows[-1].append(row)
            g.prompt_tokens += len(s)
            continue
        shared = _lcp(prev, s) if share and g is not None and g.rows else 0
        if g is None or len(g.tokens) + len(s) - shared > budget or len(g.rows) >= max_seqs:
            g = DecodeGroup()
            groups.append(g)
            shared = 0
        k = len(g.rows)
        path = g.paths[-1][:shared] if shared else []
        for i in path:  # the shared prefix now also belongs to sequence k
            g.seq_hi[i] = k + 1
        for p in range(shared, len(s)):
            path.append(len(g.tokens))
            g.tokens.append(int(s[p]))
            g.positions.append(p)
            g.seq_lo.append(k)
            g.seq_hi.append(k + 1)
        g.paths.append(path)
        g.rows.append([row])
        g.prompt_tokens += len(s)
        prev = s
    return groups
