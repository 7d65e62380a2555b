"""The dates translation data set (tfmcourse.data.dates)."""

import datetime as dt

import torch

from tfmcourse.data.dates import (
    BOS,
    EOS,
    FORMATS,
    PAD,
    SRC_VOCAB,
    TGT_VOCAB,
    DateData,
    exact_match,
    split_dates,
)


def test_formats_write_the_same_date_many_ways():
    d = dt.date(2021, 9, 13)
    written = {name: fmt(d) for name, fmt in FORMATS.items()}
    assert written["ko_weekday"] == "2021년 9월 13일 월요일"
    assert written["en_weekday_long"] == "Monday, September 13, 2021"
    assert written["dd_mm_yy"] == "13/09/21"
    assert written["en_short"] == "Sep 13 2021"
    assert len(set(written.values())) == len(FORMATS) >= 10


def test_two_digit_years_are_unambiguous_in_range():
    data = DateData(seed=0, n_test=50)
    for e in data.sample_train(500, step=3):
        if e.format == "dd_mm_yy":
            yy = int(e.source[-2:])
            assert e.date.year == (2000 + yy if yy < 50 else 1900 + yy)


def test_test_dates_never_seen_in_training():
    data = DateData(seed=0)
    train, test = set(data.train_dates), set(data.test_dates)
    assert train.isdisjoint(test) and len(test) == 2000
    assert {e.date for e in data.test_examples} == test
    seen = {e.date for step in range(1, 200) for e in data.sample_train(64, step)}
    assert seen.isdisjoint(test)
    # every format is represented in the test set
    assert {e.format for e in data.test_examples} == set(FORMATS)
    # and the split is a function of the seed
    assert split_dates(2000, 0)[1] == data.test_dates != split_dates(2000, 1)[1]


def test_vocab_round_trip_and_specials():
    for v in (SRC_VOCAB, TGT_VOCAB):
        assert v.itos[:3] == ["<pad>", "<bos>", "<eos>"] and (v.pad_id, v.bos_id, v.eos_id) == (PAD, BOS, EOS)
    text = "2021년 9월 13일 월요일"
    ids = SRC_VOCAB.encode(text)
    assert ids[-1] == EOS and SRC_VOCAB.decode(ids) == text
    assert TGT_VOCAB.encode("2021-09-13", bos=True)[0] == BOS
    assert TGT_VOCAB.decode([BOS, *TGT_VOCAB.encode("1999-01-02"), PAD, 5]) == "1999-01-02"


def test_batches_are_padded_and_deterministic():
    data = DateData(seed=0, n_test=100)
    src, tgt = data.train_batch(step=7, batch_size=32)
    assert src.dtype == tgt.dtype == torch.long and src.shape[0] == tgt.shape[0] == 32
    assert tgt.shape[1] == 12 and (tgt[:, 0] == BOS).all() and (tgt[:, -1] == EOS).all()
    for row, e in zip(src, data.sample_train(32, step=7)):
        n = len(e.source)
        assert row[n] == EOS and (row[n + 1 :] == PAD).all() and SRC_VOCAB.decode(row) == e.source
    src2, _ = data.train_batch(step=7, batch_size=32)
    assert torch.equal(src, src2)


def test_exact_match_ignores_what_follows_eos():
    tgt = torch.tensor([[BOS, 5, 6, EOS], [BOS, 5, 6, EOS], [BOS, 5, 6, EOS]])
    pred = torch.tensor([[5, 6, EOS, PAD, PAD], [5, 6, EOS, 9, 9], [5, 7, EOS, PAD, PAD]])
    assert exact_match(pred, tgt).tolist() == [True, True, False]
    assert exact_match(torch.tensor([[5, 6], [5, 6], [5, 6]]), tgt).tolist() == [False] * 3
