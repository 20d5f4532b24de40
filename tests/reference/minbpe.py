"""minbpe's BPE training, re-created as the slow reference our `BPETokenizer.train` is checked and timed against.

karpathy/minbpe (MIT licence) is the teaching reference for byte-level BPE, but it is not a
package that can be installed, so its `RegexTokenizer.train` is re-created here, algorithm for
algorithm and deliberately as slow: split the text with the pattern, then for every merge

1. recount every adjacent pair of every chunk, walking the chunks in text order into a plain
   dict (`get_stats`), so the dict's insertion order is the order pairs are first seen;
2. take `max(stats, key=stats.get)`: among equal counts Python's `max` keeps the first key,
   so a tie goes to the pair seen first in the text;
3. rewrite every chunk with the pair replaced, left to right, by the new id 256 + i (`merge`).

Import it with tests/ on sys.path: `from reference.minbpe import train`.
"""

import regex


def pair_counts(chunks: list[list[int]]) -> dict[tuple[int, int], int]:
    """Every adjacent pair's count over all chunks, keys in order of first appearance."""
    stats: dict[tuple[int, int], int] = {}
    for ids in chunks:
        for pair in zip(ids, ids[1:]):
            stats[pair] = stats.get(pair, 0) + 1
    return stats


def replace_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """`ids` with each occurrence of `pair`, scanning left to right, replaced by `new_id`."""
    out: list[int] = []
    i = 0
    while i < len(ids):
        if ids[i : i + 2] == list(pair):
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def train(text: str, vocab_size: int, pattern: str) -> tuple[list[tuple[int, int]], list[list[int]]]:
    """The vocab_size - 256 merges minbpe's RegexTokenizer learns from `text` split by `pattern`,
    and the chunks' token ids after the last merge."""
    chunks = [list(chunk.encode("utf-8")) for chunk in regex.findall(pattern, text)]
    merges = []
    for new_id in range(256, vocab_size):
        stats = pair_counts(chunks)
        pair = max(stats, key=stats.get)  # ValueError when no pairs are left, as in minbpe
        chunks = [replace_pair(ids, pair, new_id) for ids in chunks]
        merges.append(pair)
    return merges, chunks
