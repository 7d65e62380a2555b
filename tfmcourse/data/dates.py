"""Dates written in many Korean and English formats → ISO 8601: a small translation task (lesson 09).

    "2021년 9월 13일 월요일"        → "2021-09-13"
    "Monday, September 13, 2021"   → "2021-09-13"
    "13/09/21"                     → "2021-09-13"

The task needs real *reordering*: the year comes first in Korean formats and
last in most English ones, the day comes before or after the month, months
are spelled out or numbered, and two-digit years must be expanded (00-49 →
20xx, 50-99 → 19xx). Everything is generated offline from ``datetime`` with
a seeded generator; nothing is downloaded.

The held-out test set uses calendar dates that never occur in training, in
any format (:func:`split_dates`), so exact-match on it measures
generalisation, not memorisation.

>>> data = DateData(seed=0)
>>> src, tgt = data.train_batch(step=1, batch_size=64)        # (B, S), (B, T) padded
>>> data.src_vocab.decode(src[0]), data.tgt_vocab.decode(tgt[0])
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

PAD, BOS, EOS = 0, 1, 2
SPECIALS = ("<pad>", "<bos>", "<eos>")

FIRST_YEAR, LAST_YEAR = 1950, 2049  # two-digit years are unambiguous in this range

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
WEEKDAYS_KO = ("월요일", "화요일", "수요일", "목요일", "금요일", "토요일", "일요일")

# name -> how a date is written in that format
FORMATS: dict[str, Callable[[dt.date], str]] = {
    "ko_weekday": lambda d: f"{d.year}년 {d.month}월 {d.day}일 {WEEKDAYS_KO[d.weekday()]}",
    "ko": lambda d: f"{d.year}년 {d.month}월 {d.day}일",
    "ko_dots": lambda d: f"{d.year}. {d.month}. {d.day}.",
    "ymd_dots": lambda d: f"{d.year}.{d.month:02d}.{d.day:02d}",
    "en_weekday_long": lambda d: f"{WEEKDAYS[d.weekday()]}, {MONTHS[d.month - 1]} {d.day}, {d.year}",
    "en_long": lambda d: f"{MONTHS[d.month - 1]} {d.day}, {d.year}",
    "en_short": lambda d: f"{MONTHS[d.month - 1][:3]} {d.day} {d.year}",
    "en_day_first": lambda d: f"{d.day} {MONTHS[d.month - 1]} {d.year}",
    "en_weekday_short": lambda d: f"{WEEKDAYS[d.weekday()][:3]}, {d.day} {MONTHS[d.month - 1][:3]} {d.year}",
    "dd_mm_yy": lambda d: f"{d.day:02d}/{d.month:02d}/{d.year % 100:02d}",
    "us_m_d_yyyy": lambda d: f"{d.month}/{d.day}/{d.year}",
    "dd_mon_yyyy": lambda d: f"{d.day:02d}-{MONTHS[d.month - 1][:3]}-{d.year}",
}


def to_iso(d: dt.date) -> str:
    return d.isoformat()  # "2021-09-13"


class Vocab:
    """A character vocabulary with ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2."""

    def __init__(self, chars: Sequence[str]):
        self.itos: list[str] = list(SPECIALS) + sorted(set(chars))
        self.stoi: dict[str, int] = {c: i for i, c in enumerate(self.itos)}
        self.pad_id, self.bos_id, self.eos_id = PAD, BOS, EOS

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str, *, bos: bool = False, eos: bool = True) -> list[int]:
        """Token ids of ``text`` (one per character), optionally framed by BOS/EOS."""
        try:
            ids = [self.stoi[c] for c in text]
        except KeyError as exc:
            raise ValueError(f"character {exc.args[0]!r} is not in the vocabulary") from None
        return ([BOS] if bos else []) + ids + ([EOS] if eos else [])

    def decode(self, ids: Sequence[int] | Tensor) -> str:
        """The text of ``ids``: stops at the first EOS, skips PAD and BOS."""
        if isinstance(ids, Tensor):
            ids = ids.tolist()
        out = []
        for i in ids:
            if i == EOS:
                break
            if i in (PAD, BOS):
                continue
            out.append(self.itos[i])
        return "".join(out)

    def tokens(self, ids: Sequence[int] | Tensor) -> list[str]:
        """Readable token labels (for plots): specials shown as ``<eos>`` etc., spaces as ``␣``."""
        if isinstance(ids, Tensor):
            ids = ids.tolist()
        return [self.itos[i].replace(" ", "␣") for i in ids]


def all_dates(first_year: int = FIRST_YEAR, last_year: int = LAST_YEAR) -> list[dt.date]:
    start, end = dt.date(first_year, 1, 1), dt.date(last_year, 12, 31)
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def split_dates(n_test: int = 2000, seed: int = 0) -> tuple[list[dt.date], list[dt.date]]:
    """Disjoint (train, test) lists of calendar dates: a test date never appears in training."""
    dates = all_dates()
    rng = random.Random(seed)
    test = set(rng.sample(dates, n_test))
    return [d for d in dates if d not in test], sorted(test)


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int = PAD) -> Tensor:
    """Right-pad integer sequences into a ``(B, L)`` long tensor."""
    width = max(len(s) for s in seqs)
    out = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


def _build_vocabs() -> tuple[Vocab, Vocab]:
    chars: set[str] = set()
    for fmt in FORMATS.values():  # every character any format can produce
        for d in (dt.date(2000, m, 10 + m) for m in range(1, 13)):
            for wd in range(7):
                chars.update(fmt(d + dt.timedelta(days=wd)))
    chars.update("0123456789")
    return Vocab(chars), Vocab("0123456789-")


SRC_VOCAB, TGT_VOCAB = _build_vocabs()


@dataclass
class Example:
    date: dt.date
    format: str
    source: str
    target: str


@dataclass
class DateData:
    """The train stream and the fixed held-out test set of the dates task.

    Training examples are drawn afresh for every step (a random training date
    in a random format, seeded by ``(seed, step)``); the test set is a fixed
    list of ``n_test`` held-out dates, each in one format (the formats rotate
    so that each is equally represented).
    """

    seed: int = 0
    n_test: int = 2000
    formats: tuple[str, ...] = tuple(FORMATS)
    src_vocab: Vocab = field(default=SRC_VOCAB, repr=False)
    tgt_vocab: Vocab = field(default=TGT_VOCAB, repr=False)

    def __post_init__(self):
        unknown = set(self.formats) - set(FORMATS)
        if unknown:
            raise ValueError(f"unknown formats {sorted(unknown)}; choose from {list(FORMATS)}")
        self.train_dates, self.test_dates = split_dates(self.n_test, self.seed)
        rng = random.Random(self.seed + 1)
        order = list(self.test_dates)
        rng.shuffle(order)
        self.test_examples = [
            self.example(d, self.formats[i % len(self.formats)]) for i, d in enumerate(order)
        ]

    @staticmethod
    def example(date: dt.date, fmt: str) -> Example:
        return Example(date, fmt, FORMATS[fmt](date), to_iso(date))

    def sample_train(self, n: int, step: int = 0) -> list[Example]:
        """``n`` fresh training examples; the same ``step`` always gives the same examples."""
        rng = random.Random(self.seed * 1_000_003 + step)
        return [self.example(rng.choice(self.train_dates), rng.choice(self.formats)) for _ in range(n)]

    def encode(self, examples: Sequence[Example]) -> tuple[Tensor, Tensor]:
        """``src (B, S)`` (characters + EOS) and ``tgt (B, T)`` (BOS + characters + EOS), padded."""
        src = pad_batch([self.src_vocab.encode(e.source) for e in examples])
        tgt = pad_batch([self.tgt_vocab.encode(e.target, bos=True) for e in examples])
        return src, tgt

    def train_batch(self, step: int, batch_size: int = 64) -> tuple[Tensor, Tensor]:
        return self.encode(self.sample_train(batch_size, step))

    def test_batches(self, batch_size: int = 500, limit: int | None = None):
        """The held-out set in fixed order, as ``(examples, src, tgt)`` chunks."""
        examples = self.test_examples[:limit]
        for i in range(0, len(examples), batch_size):
            chunk = examples[i : i + batch_size]
            yield (chunk, *self.encode(chunk))

    @property
    def max_target_len(self) -> int:
        return len("2021-09-13") + 1  # ten characters and EOS


def exact_match(pred: Tensor, tgt: Tensor, eos_id: int = EOS, pad_id: int = PAD) -> Tensor:
    """Per row, whether the decoded tokens equal the target exactly (up to and including EOS).

    Shape:
        pred ``(B, L)`` without BOS (as :func:`tfmcourse.decoding.greedy_decode`
        returns); tgt ``(B, T)`` starting with BOS; returns ``(B,)`` bool.
    """
    gold = tgt[:, 1:]  # (B, T-1) without BOS
    width = max(pred.shape[1], gold.shape[1])
    p = torch.full((pred.shape[0], width), pad_id, dtype=torch.long)
    q = torch.full((gold.shape[0], width), pad_id, dtype=torch.long)
    p[:, : pred.shape[1]] = pred
    q[:, : gold.shape[1]] = gold
    # anything after the first EOS is irrelevant
    after_p = (p == eos_id).long().cumsum(1) - (p == eos_id).long() > 0
    after_q = (q == eos_id).long().cumsum(1) - (q == eos_id).long() > 0
    return (p.masked_fill(after_p, pad_id) == q.masked_fill(after_q, pad_id)).all(dim=1)
