"""Numbers quoted in prose, each bound to the one value of a results file it comes from.

A passage that quotes results is fenced by two HTML comments (invisible on GitHub and in Jupyter). The
opening one names the results file (a path from the repository root) and may give short names for paths
the passage uses often; inside, a comment after a number names the key path it quotes::

    <!-- numbers: benchmarks/results/rl_vs_sft.json  a2c = results.methods.A2C-R2 -->
    A2C closes 0.78 / 0.73<!-- a2c.gap_closed.{f1_act,f1_rsn} --> of the gap, and on seed 0<!-- results.seeds.0 -->
    fixes 23 clips for 5 it breaks (p = 0.00091)<!-- a2c.paired.0.{fixed,broken,p} -->.
    <!-- /numbers -->

The rules:

- Inside a fence every number is bound: decimals, whole numbers (a count, a seed, a step count), both
  sides of ``23/5``, ``−1.12``, ``1,503``, ``5.2e-16``, ``97.4 %``. Digits inside a word are names, not
  numbers (``F1``, ``R2``, ``H200``, ``256M``, ``8x4``), and so are version strings (``3.11.7``).
- A binding comment lists one key path for each number between it and the comment before it, in order
  (put it right after the number, or after a short run of them: a pair, a table row).
- A key path indexes the file from its top: dict keys and list indices joined by dots
  (``results.methods.A2C-R2.paired.0.fixed``); a key that holds dots itself is read whole
  (``runs.lr3e-04-kl0.05.score``). ``{a,b}`` expands as in the shell (``paired.{0,1}.{fixed,broken}`` is
  four paths, in that order), and the first part may be a short name from the fence's opening comment.
- A number agrees with its value rounded to the decimal places quoted (``0.78`` for 0.7786; ``16`` for 16),
  to the significant digits of a ``2.3e-25``, and with the value × 100 where a ``%`` follows it.
- ``<!-- unbound: why -->`` right after one number says that the file does not hold it (a setting that
  lives in code, a figure derived by hand) and why. It is the only way to leave a number unchecked.

:func:`check` returns one line per problem: a number that disagrees with its value, a number without a
binding, a path the file does not hold, a comment naming more or fewer paths than numbers. Run
``python -m drivekit.evaluation.quotes FILE...`` to list every bound number with its value.
"""
from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

COMMENT = re.compile(r"<!--(.*?)-->", re.S)
OPENER = re.compile(r"\s*numbers:\s*(?P<file>\S+)(?P<names>.*)", re.S)
CLOSER = re.compile(r"\s*/numbers\s*")
NAME = re.compile(r"\s*(?P<name>[\w-]+)\s*=\s*(?P<path>[^\s,=]+)\s*,?")
# A number starts after no word character or dot and ends before none (nor before ".5"): "F1", "256M",
# "8x4" and "3.11.7" are names.
NUMBER = re.compile(r"(?<![\w.])[-−+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:e[-−+]?\d+)?(?!\w|\.\d)"
                    r"(?P<percent> ?%)?")


@dataclass
class Quote:
    """One number of a fence and what it is bound to."""

    text: str                # as written: "0.78", "−1.12", "1,503", "5.2e-16"
    percent: bool            # followed by "%": compared with the value × 100
    start: int               # offset of the number in the document
    line: int
    path: str | None = None  # as written in the binding, after brace expansion
    full: str | None = None  # with a short name replaced
    value: float | None = None
    why: str | None = None   # the reason of an <!-- unbound: ... -->


def expand(pattern: str) -> list[str]:
    """Shell-style brace expansion: ``"a.{b,c}.{d,e}"`` -> a.b.d, a.b.e, a.c.d, a.c.e (braces nest)."""
    start = pattern.find("{")
    if start < 0:
        return [pattern]
    parts, depth, last = [], 0, start + 1
    for end in range(start, len(pattern)):
        depth += {"{": 1, "}": -1}.get(pattern[end], 0)
        if depth == 1 and pattern[end] == ",":
            parts.append(pattern[last:end])
            last = end + 1
        if depth == 0:
            break
    else:
        raise ValueError(f"{pattern}: a brace is not closed")
    parts.append(pattern[last:end])
    return [path for part in parts for path in expand(pattern[:start] + part + pattern[end + 1:])]


def lookup(data, path: str):
    """The value at a dotted key path; a dict key holding dots is matched whole (the longest one that fits)."""
    keys, node, here, i = path.split("."), data, [], 0
    while i < len(keys):
        where = ".".join(here) or "the file"
        if isinstance(node, dict):
            for j in range(len(keys), i, -1):
                if ".".join(keys[i:j]) in node:
                    break
            else:
                raise LookupError(f"{where} has no key {keys[i]!r}")
            key = ".".join(keys[i:j])
        elif isinstance(node, list):
            key, j = keys[i], i + 1
            if not key.isdigit() or int(key) >= len(node):
                raise LookupError(f"{where} has no item {key!r} (a list of {len(node)})")
        else:
            raise LookupError(f"{where} holds {node!r}, not a dict or list with {keys[i]!r}")
        node, i = node[int(key) if isinstance(node, list) else key], j
        here.append(key)
    return node


def rounded(quote: Quote, value: float) -> str:
    """``value`` as ``quote`` writes it: "0.78 at 2 places", "23 as a whole number", "5.2e-16 at 2 significant
    digits"."""
    v, text = (100 * value if quote.percent else value), quote.text.replace("−", "-").replace(",", "")
    if "e" in text:
        digits = len(text.split("e")[0].lstrip("+-").replace(".", "")) - 1
        return f"{v:.{digits}e} at {digits + 1} significant digit{'s' * (digits > 0)}"
    places, percent = len(text.partition(".")[2]), " %" * quote.percent
    return f"{v:.{places}f}{percent} " + (f"at {places} place{'s' * (places != 1)}" if places else "as a whole number")


def agrees(quote: Quote, value: float) -> bool:
    """Whether ``value`` (× 100 for a percent) rounds to the number quoted, at the precision quoted."""
    v, text = (100 * value if quote.percent else value), quote.text.replace("−", "-").replace(",", "")
    if "e" in text:  # 2.3e-25: the mantissa at its own digits
        mantissa, exponent = text.split("e")
        v, text = v / 10 ** int(exponent), mantissa
    half = 0.5 * 10 ** -len(text.partition(".")[2])
    return abs(v - float(text)) <= half * (1 + 1e-9)


@dataclass
class Fence:
    """The fence being read: its results file (None where it is missing), short names, opening line."""

    data: object
    names: dict[str, str]
    line: int
    numbers: int = 0  # bound so far


def problem(name: str, where: Quote | int, message: str) -> str:
    return f"{name}:{where.line if isinstance(where, Quote) else where}: {message}"


def check(text: str, root: Path, name: str = "", quotes: list[Quote] | None = None) -> list[str]:
    """Every problem of the fences of ``text`` (results files relative to ``root``, ``name`` starting each line);
    every number bound, to a path or as unbound, is appended to ``quotes`` where a list is given."""
    found: list[str] = []
    quotes = [] if quotes is None else quotes
    line_of = lambda offset: text.count("\n", 0, offset) + 1  # noqa: E731
    fence: Fence | None = None
    position, pending = 0, []  # where the text not yet read starts; its numbers not yet bound
    for comment in COMMENT.finditer(text):
        content, here = comment[1], line_of(comment.start())
        if fence is not None:
            pending += [Quote(n[0].removesuffix(n["percent"] or ""), bool(n["percent"]), n.start(), line_of(n.start()))
                        for n in NUMBER.finditer(text, position, comment.start())]
        position = comment.end()
        if OPENER.fullmatch(content):
            if fence is not None:
                found.append(problem(name, here, f"a fence opens inside the fence opened at line {fence.line}"))
            fence, pending = _open(OPENER.fullmatch(content), root, name, here, found), []
        elif CLOSER.fullmatch(content):
            if fence is None:
                found.append(problem(name, here, "<!-- /numbers --> closes no fence"))
                continue
            found += [problem(name, q, f'"{q.text}" has no binding: a comment after it names its key path '
                                       f"(or <!-- unbound: why -->)") for q in pending]
            if fence.numbers + len(pending) == 0:
                found.append(problem(name, fence.line, "the fence binds no number"))
            fence, pending = None, []
        elif fence is not None:
            found += _bind_all(pending, content, fence, name, here)
            quotes += [q for q in pending if q.why is not None or q.full is not None]
            fence.numbers += len(pending)
            pending = []
    if fence is not None:
        found.append(problem(name, fence.line, "the fence is not closed (<!-- /numbers -->)"))
    return found


def _bind_all(pending: list[Quote], content: str, fence: Fence, name: str, here: int) -> list[str]:
    """Bind the numbers read since the last comment to the paths of the comment ``<!--content-->``."""
    listed = f" ({', '.join(repr(q.text) for q in pending)})" if pending else ""
    if content.strip().startswith("unbound:"):
        why = content.strip().removeprefix("unbound:").strip()
        for q in pending:
            q.why = why
        if len(pending) == 1 and why:
            return []
        return [problem(name, here, f"<!--{content}--> leaves one number unbound and says why; "
                                    f"{len(pending)} number(s) precede it{listed}")]
    paths = [path for pattern in content.split() for path in expand(pattern)]
    if len(paths) != len(pending):
        return [problem(name, here, f"<!--{content}--> names {len(paths)} path(s) for the {len(pending)} "
                                    f"number(s) before it{listed}")]
    if fence.data is None:
        return []
    return [p for q, path in zip(pending, paths) for p in _bind(q, path, fence.data, fence.names, name)]


def _open(opener: re.Match, root: Path, name: str, line: int, found: list[str]) -> Fence:
    """The fence an opening comment starts; its problems appended to ``found``."""
    fence, rest = Fence(None, {}, line), opener["names"]
    for match in NAME.finditer(rest):
        fence.names[match["name"]] = match["path"]
    if NAME.sub("", rest).strip():
        found.append(problem(name, line, f"cannot read the short names {rest.strip()!r} (name = path, ...)"))
    if not (root / opener["file"]).is_file():
        found.append(problem(name, line, f"{opener['file']}: no such file"))
        return fence
    fence.data = json.loads((root / opener["file"]).read_text())
    found += [problem(name, line, f"the short name {n!r} is also a key of {opener['file']}")
              for n in fence.names if isinstance(fence.data, dict) and n in fence.data]
    return fence


def _bind(quote: Quote, path: str, data, names: dict[str, str], name: str) -> list[str]:
    """Bind ``quote`` to ``path``; the problems of the binding (none where the value agrees)."""
    head, dot, tail = path.partition(".")
    quote.path, quote.full = path, (names[head] + dot + tail if head in names else path)
    shown = quote.path if quote.full == quote.path else f"{quote.path} ({quote.full})"
    try:
        value = lookup(data, quote.full)
    except LookupError as error:
        return [problem(name, quote, f'"{quote.text}" bound to {shown}: {error}')]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return [problem(name, quote, f'"{quote.text}" bound to {shown}, which holds {value!r}, not a number')]
    quote.value = value
    if agrees(quote, value):
        return []
    return [problem(name, quote, f'"{quote.text}" bound to {shown}, which holds {value:.6g} '
                                 f"({rounded(quote, value)})")]


def documents(path: Path, name: str) -> list[tuple[str, str]]:
    """``(name, text)`` of a Markdown file, or of each markdown cell of a notebook (``name cell i``)."""
    if path.suffix != ".ipynb":
        return [(name, path.read_text())]
    cells = json.loads(path.read_text())["cells"]
    return [(f"{name} cell {i}", "".join(c["source"])) for i, c in enumerate(cells)
            if c["cell_type"] == "markdown"]


def check_file(name: str, root: Path, quotes: list[Quote] | None = None) -> list[str]:
    """:func:`check` of a Markdown file or a notebook's markdown cells, ``name`` relative to ``root``."""
    return [p for where, text in documents(root / name, name) for p in check(text, root, where, quotes)]


def main(argv: list[str]) -> int:
    """List every bound number of the files named (from the current folder) with its value; then the problems."""
    problems = []
    for name in argv:
        quotes: list[Quote] = []
        problems += check_file(name, Path.cwd(), quotes)
        for q in quotes:
            print(f"{name}:{q.line}: {q.text:>10}  {q.full or 'unbound: ' + str(q.why)}"
                  + (f" = {q.value:.6g}" if q.value is not None else ""))
    print("\n".join(problems) or "no problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
