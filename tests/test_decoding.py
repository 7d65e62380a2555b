"""Teacher forcing, label smoothing, greedy and beam decoding (tfmcourse.decoding)."""

import math

import pytest
import torch
import torch.nn.functional as F

from tfmcourse.checks._models import scripted_case
from tfmcourse.decoding import beam_search, greedy_decode, label_smoothed_loss, teacher_forcing_batch
from tfmcourse.experiments.lesson09 import ScriptedModel

PAD, BOS, EOS = 0, 1, 2


def test_teacher_forcing_shifts_by_one():
    tgt = torch.tensor([[BOS, 5, 6, 7, EOS], [BOS, 8, EOS, PAD, PAD]])
    inp, lab = teacher_forcing_batch(tgt)
    assert inp.tolist() == [[BOS, 5, 6, 7], [BOS, 8, EOS, PAD]]
    assert lab.tolist() == [[5, 6, 7, EOS], [8, EOS, PAD, PAD]]
    with pytest.raises(ValueError):
        teacher_forcing_batch(torch.tensor([[BOS], [BOS]]))


@pytest.mark.parametrize("eps,ignore", [(0.0, -100), (0.1, 0), (0.3, 4), (1.0, 0)])
def test_label_smoothed_loss_equals_torch_with_gradients(eps, ignore):
    g = torch.Generator().manual_seed(3)
    logits = (torch.randn(23, 9, generator=g) * 3).requires_grad_()
    target = torch.randint(0, 9, (23,), generator=g)
    target[::4] = ignore
    ours = label_smoothed_loss(logits, target, eps, ignore)
    (g1,) = torch.autograd.grad(ours, logits)
    ref = F.cross_entropy(logits, target, label_smoothing=eps, ignore_index=ignore)
    (g2,) = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(g1, g2)


def test_label_smoothing_target_distribution():
    """With ε, the optimum puts 1−ε+ε/V on the true class and ε/V elsewhere."""
    V, eps = 6, 0.3
    q = torch.full((V,), eps / V)
    q[2] += 1 - eps
    best = label_smoothed_loss(q.log()[None], torch.tensor([2]), eps, -100)
    for other in (torch.tensor([0.0, 0, 9, 0, 0, 0]), torch.zeros(V), q.log() * 1.1):
        assert label_smoothed_loss(other[None], torch.tensor([2]), eps, -100) > best


def _planned(ends, max_len=9, V=11, bos=BOS, eos=EOS, pad=PAD, seed=0):
    g = torch.Generator().manual_seed(seed)
    return scripted_case(g, ends=ends, max_len=max_len, vocab_size=V, bos_id=bos, eos_id=eos, pad_id=pad)


def test_greedy_follows_the_plan_and_pads_after_eos():
    ends = [3, 0, None, 8]
    model, src = _planned(ends)
    out = greedy_decode(model, src, 9, BOS, EOS, PAD)
    assert out.shape == (4, 9) and out.dtype == torch.long
    for row, end in zip(out.tolist(), ends):
        assert BOS not in row
        if end is None:
            assert EOS not in row and PAD not in row
        else:
            assert row.index(EOS) == end and all(t == PAD for t in row[end + 1 :])


def test_greedy_stops_once_every_row_is_done():
    model, src = _planned([2, 0, 4], max_len=10, bos=7, eos=4, pad=9, V=12)
    out = greedy_decode(model, src, 10, 7, 4, 9)
    assert out.shape == (3, 5)


def _tiny_transformer():
    from tfmcourse.transformer import Transformer, TransformerConfig

    torch.manual_seed(0)
    cfg = TransformerConfig(
        13,
        11,
        d_model=24,
        n_heads=3,
        num_encoder_layers=2,
        num_decoder_layers=2,
        d_ff=37,
        dropout=0.0,
        max_len=32,
        pad_id=PAD,
    )
    return Transformer(cfg).eval()


def test_greedy_on_a_transformer_equals_incremental_decoding():
    model = _tiny_transformer()
    src = torch.randint(3, 13, (3, 7))
    src[1, 5:] = PAD
    out = greedy_decode(model, src, 12, BOS, EOS, PAD)
    with torch.no_grad():
        memory = model.encode(src)
        tok = torch.full((3, 1), BOS)
        logits, cache = model.decode_step(tok, memory, src)
        steps = []
        for _ in range(out.shape[1]):
            tok = logits[:, -1].argmax(-1, keepdim=True)
            steps.append(tok)
            logits, cache = model.decode_step(tok, memory, src, cache)
    manual = torch.cat(steps, 1)
    done = (manual == EOS).long().cumsum(1) - (manual == EOS).long() > 0
    assert torch.equal(out, manual.masked_fill(done, PAD))


def test_beam_of_one_is_greedy():
    model, src = _planned([3, 0, None, 8], seed=5)
    tokens, scores = beam_search(model, src, 9, BOS, EOS, PAD, beam_size=1)
    assert torch.equal(tokens, greedy_decode(model, src, 9, BOS, EOS, PAD))
    assert scores.shape == (4,)
    model = _tiny_transformer()
    src = torch.randint(3, 13, (2, 6))
    tokens, _ = beam_search(model, src, 10, BOS, EOS, PAD, beam_size=1)
    assert torch.equal(tokens, greedy_decode(model, src, 10, BOS, EOS, PAD))


def _trap_model():
    """Greedy takes 'a' (p=.55) then has to choose among flat options; 'b' (p=.45) ends surely."""
    V, A, B_ = 5, 3, 4
    logp = torch.full((1, 4, V, V), math.log(1e-6))
    logp[0, 0, BOS, A], logp[0, 0, BOS, B_] = math.log(0.55), math.log(0.45)
    logp[0, 1, A, [A, B_, EOS]] = math.log(0.33)
    logp[0, 1, A, EOS] = math.log(0.34)
    logp[0, 1, B_, EOS] = math.log(0.99)
    logp[0, 2:, :, EOS] = 0.0
    return ScriptedModel(logp, n_src_tokens=4), torch.tensor([[0, 1, 2]])


def test_beam_finds_the_more_likely_sequence_greedy_misses():
    model, src = _trap_model()
    greedy = greedy_decode(model, src, 3, BOS, EOS, PAD)
    tokens, score = beam_search(model, src, 3, BOS, EOS, PAD, beam_size=2)
    assert greedy.tolist() == [[3, EOS]]
    assert tokens.tolist() == [[4, EOS]]
    assert float(score) == pytest.approx((math.log(0.45) + math.log(0.99)) / 2, rel=2e-2)


def test_beam_pads_after_eos_and_normalises_length():
    model, src = _planned([1, None, 4, 2], seed=2)
    tokens, scores = beam_search(model, src, 9, BOS, EOS, PAD, beam_size=3)
    for row in tokens.tolist():
        if EOS in row:
            assert all(t == PAD for t in row[row.index(EOS) + 1 :])
    assert torch.isfinite(scores).all() and (scores <= 0).all()
    # the returned score is the mean log-probability per generated token
    with torch.no_grad():
        mem = model.encode(src)
        for b in range(src.shape[0]):
            row = [t for t in tokens[b].tolist() if t != PAD]
            ys = torch.tensor([[BOS] + row])
            lp = torch.log_softmax(model.decode(ys, mem[b : b + 1], src[b : b + 1])[0, :-1], -1)
            total = lp.gather(1, torch.tensor(row)[:, None]).sum()
            assert float(scores[b]) == pytest.approx(float(total) / len(row), rel=1e-4)
