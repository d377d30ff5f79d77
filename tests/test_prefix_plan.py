"""Decode plans that evaluate shared prompt prefixes once (pure Python: no model needed)."""

from __future__ import annotations

import random

import pytest

from embedstore.extractors.prefix_plan import plan_decode


def _template_like(rng: random.Random, n: int) -> list[list[int]]:
    """Token sequences shaped like rendered templates: a common head, a few slot values, duplicates."""
    head = [1, 40, 41, 42]
    out = []
    for _ in range(n):
        s = head + [rng.choice([50, 51, 52])] + [60, 61] + [rng.randrange(70, 90)] + [62]
        s += [rng.choice([80, 81])] * rng.randrange(1, 4)
        s += [rng.randrange(100, 140) for _ in range(rng.randrange(0, 6))]
        out.append(s)
    out += [head[:2], head, out[0][:]]  # a sequence that is a prefix of others, and a duplicate
    return out


def _check(seqs, groups, budget, max_seqs):
    seen = sorted(r for g in groups for rows in g.rows for r in rows)
    assert seen == list(range(len(seqs)))  # every row exactly once
    for g in groups:
        assert len(g.tokens) <= budget and len(g.paths) <= max_seqs
        assert g.prompt_tokens == sum(len(seqs[r]) for rows in g.rows for r in rows)
        for s, (path, rows) in enumerate(zip(g.paths, g.rows)):
            for r in rows:  # the sequence's own tokens, at positions 0..L-1, in order
                assert [g.tokens[i] for i in path] == list(seqs[r])
                assert [g.positions[i] for i in path] == list(range(len(seqs[r])))
            # entry i belongs to sequence s exactly when it is on s's path (the attention mask llama.cpp builds)
            assert {i for i in range(len(g.tokens)) if g.seq_lo[i] <= s < g.seq_hi[i]} == set(path)
            assert path == sorted(path)  # a prefix is always placed before the tokens that continue it


@pytest.mark.parametrize("budget,max_seqs", [(512, 256), (24, 256), (64, 5)])
def test_plan_covers_every_row_once_within_the_budgets_and_keeps_each_sequence_intact(budget, max_seqs):
    seqs = _template_like(random.Random(budget + max_seqs), 120)
    shared = plan_decode(seqs, budget=budget, max_seqs=max_seqs)
    _check(seqs, shared, budget, max_seqs)
    plain = plan_decode(seqs, budget=budget, max_seqs=max_seqs, share=False)
    _check(seqs, plain, budget, max_seqs)
    assert sum(len(g.tokens) for g in plain) == sum(map(len, seqs))  # no sharing: every token evaluated
    assert [r for g in plain for rows in g.rows for r in rows] == list(range(len(seqs)))  # input order
    evaluated = sum(len(g.tokens) for g in shared)
    assert evaluated < 0.6 * sum(map(len, seqs))


def test_one_group_evaluates_each_distinct_prefix_exactly_once():
    seqs = _template_like(random.Random(3), 60)
    (group,) = plan_decode(seqs, budget=10_000)
    distinct_prefixes = {tuple(s[:p + 1]) for s in seqs for p in range(len(s))}
    assert len(group.tokens) == len(distinct_prefixes)  # the trie's node count
    assert len(group.paths) == len({tuple(s) for s in seqs})  # duplicates share one sequence


def test_plan_refuses_rows_it_cannot_place():
    with pytest.raises(ValueError, match="row 1 has 5 tokens"):
        plan_decode([[1, 2], [1, 2, 3, 4, 5]], budget=4)
    with pytest.raises(ValueError, match="row 0 has 0 tokens"):
        plan_decode([[]], budget=4)
