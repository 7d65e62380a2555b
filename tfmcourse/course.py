"""The course outline: every lesson's file, title and estimated study time, in order.

Lesson 00's course map and the "next lesson" link at the end of every
exercise notebook (written by ``tfmcourse build``) both come from here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Lesson:
    number: int
    stem: str  # file name without ".ipynb", the same in notebooks/ and exercises/
    title: str
    minutes: int  # estimated study time: reading and running the lesson, then its exercises

    @property
    def notebook(self) -> str:
        return f"{self.stem}.ipynb"


LESSONS: tuple[Lesson, ...] = (
    Lesson(0, "00_start_here", "start here", 15),
    Lesson(1, "01_seq2seq_bottleneck", "seq2seq and the bottleneck", 60),
    Lesson(2, "02_bahdanau_attention", "Bahdanau attention", 75),
    Lesson(3, "03_layernorm_vs_batchnorm", "layer norm vs batch norm", 60),
    Lesson(4, "04_residual_connections", "residual connections", 45),
    Lesson(5, "05_positional_encoding", "positional encoding", 60),
    Lesson(6, "06_scaled_dot_product_attention", "scaled dot-product attention and masks", 75),
    Lesson(7, "07_multi_head_attention", "multi-head attention", 90),
    Lesson(8, "08_transformer", "the Transformer", 105),
    Lesson(9, "09_training_and_inference", "training and inference", 105),
    Lesson(10, "10_gpt", "GPT: the decoder-only Transformer", 105),
    Lesson(11, "11_fast_inference", "fast inference: the KV cache and FlashAttention's idea", 90),
)


def lesson(number: int) -> Lesson:
    for item in LESSONS:
        if item.number == number:
            return item
    raise KeyError(f"no lesson {number:02d}")


def next_lesson(number: int) -> Lesson | None:
    later = [item for item in LESSONS if item.number > number]
    return later[0] if later else None
